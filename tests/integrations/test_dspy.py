"""DSPy 3.x, run for real offline, traced by one instrument() call.

Programs run on DSPy's ``DummyLM`` (scripted answers in the chat adapter's format) and on a
``dspy.LM("openai/gpt-4o-mini", engine=...)`` whose engine (DSPy's custom-engine interface)
answers with a scripted ``lm15.Response`` carrying an id, usage and a finish reason: a
``Predict``, a ``ChainOfThought``, a ``ReAct`` agent that calls a Python tool and finishes,
failing tools and models, an ``Evaluate`` run over threads, a ``Retrieve``, an optimizer's
``compile`` and an async call. No network.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("dspy", reason="dspy not installed: pip install 'spanhooks[dspy]'")

import dspy
from dspy.lm15 import Message, Request, Response, TextPart, ToolCallPart, Usage
from dspy.teleprompt import LabeledFewShot
from dspy.utils import DummyLM
from dspy.utils.dummies import dummy_rm
from opentelemetry.trace import SpanKind, StatusCode

from spanhooks.integrations import dspy as traced
from spanhooks.testing import Capture, capture
from spanhooks.vocab.genai import GenAICallback

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def explode(reason: str) -> str:
    """Always fails."""
    raise ValueError(reason)


class Scripted:
    """A DSPy engine (``complete(Request) -> Response``) answering as OpenAI would."""

    def __init__(self, *parts: Any, finish_reason: str = "stop") -> None:
        self.parts = list(parts) or [TextPart("[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]")]
        self.finish_reason = finish_reason

    def complete(self, request: Any) -> Response:
        return Response(
            id="chatcmpl-1",
            model="gpt-4o-mini-2024-07-18",
            message=Message.assistant(self.parts),
            finish_reason=self.finish_reason,  # type: ignore[arg-type]
            usage=Usage(input_tokens=12, output_tokens=3, total_tokens=15),
        )


class Unreachable:
    def complete(self, request: Any) -> Response:
        raise ConnectionError("model unreachable")


def _openai(engine: Any = None) -> Any:
    return dspy.LM(
        "openai/gpt-4o-mini",
        engine=engine or Scripted(),
        cache=False,
        num_retries=0,
        temperature=0.2,
        max_tokens=256,
    )


def _react_lm() -> DummyLM:
    return DummyLM(
        [
            {
                "next_thought": "add them",
                "next_tool_name": "add",
                "next_tool_args": {"a": 2, "b": 3},
            },
            {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}},
            {"reasoning": "2+3 is 5", "answer": "5"},
        ]
    )


REACT_TREE = [
    ("invoke_agent ReAct", None),
    ("Predict", "invoke_agent ReAct"),
    ("chat dummy", "Predict"),
    ("execute_tool add", "invoke_agent ReAct"),
    ("Predict", "invoke_agent ReAct"),
    ("chat dummy", "Predict"),
    ("execute_tool finish", "invoke_agent ReAct"),
    ("ChainOfThought", "invoke_agent ReAct"),
    ("Predict", "ChainOfThought"),
    ("chat dummy", "Predict"),
]


@pytest.fixture(autouse=True)
def dspy_settings() -> Iterator[None]:
    """DSPy's global callbacks and LM as they were before the test."""
    before = dspy.settings.get("callbacks"), dspy.settings.get("lm")
    try:
        yield
    finally:
        traced.uninstrument()
        dspy.settings.configure(callbacks=before[0], lm=before[1])


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def _react(question: str = "2+3?") -> Any:
    with dspy.context(lm=_react_lm()):
        return dspy.ReAct("question -> answer", tools=[add])(question=question)


class Recorder(GenAICallback):
    """A callback registered once on spanhooks, as it would be for any framework."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def on_agent_start(self, agent_name: Any, inputs: Any) -> None:
        self.seen.append(("agent_start", (agent_name, inputs)))

    def on_agent_end(self, agent_name: Any, output: Any, error: Any) -> None:
        self.seen.append(("agent_end", (agent_name, output["answer"], error)))

    def on_task_start(self, name: Any, inputs: Any) -> None:
        self.seen.append(("task_start", name))

    def on_task_end(self, name: Any, output: Any, error: Any) -> None:
        self.seen.append(("task_end", (name, sorted(output))))

    def on_llm_start(self, model: Any, inputs: Any, provider: Any, operation: Any) -> None:
        roles = [message["role"] for message in inputs["messages"]]
        self.seen.append(("llm_start", (model, provider, operation, roles)))

    def on_llm_end(self, model: Any, output: Any, error: Any) -> None:
        self.seen.append(("llm_end", (model, output["usage"], output["choices"])))

    def on_tool_call_start(self, tool_name: Any, arguments: Any) -> None:
        self.seen.append(("tool_call_start", (tool_name, arguments)))

    def on_tool_call_end(self, tool_name: Any, result: Any, error: Any) -> None:
        self.seen.append(("tool_call_end", (tool_name, result, error)))


# -- span trees -------------------------------------------------------------------------------


def test_predict_is_a_task_span_over_a_chat_span(cap: Capture, edges: Any) -> None:
    with dspy.context(lm=DummyLM([{"answer": "4"}])):
        prediction = dspy.Predict("question -> answer")(question="2+2?")

    assert prediction.answer == "4"
    assert edges(cap) == [("Predict", None), ("chat dummy", "Predict")]
    assert cap.span("Predict").kind is SpanKind.INTERNAL
    assert cap.span("chat dummy").kind is SpanKind.CLIENT
    assert cap.manager.stats()["open_spans"] == 0


def test_chain_of_thought_is_a_task_over_its_predict(cap: Capture, edges: Any) -> None:
    with dspy.context(lm=DummyLM([{"reasoning": "2 and 2", "answer": "4"}])):
        prediction = dspy.ChainOfThought("question -> answer")(question="2+2?")

    assert prediction.answer == "4"
    assert edges(cap) == [
        ("ChainOfThought", None),
        ("Predict", "ChainOfThought"),
        ("chat dummy", "Predict"),
    ]


def test_react_is_an_agent_span_over_its_steps_and_tool_calls(cap: Capture, edges: Any) -> None:
    prediction = _react()

    assert prediction.answer == "5"
    assert prediction.trajectory["observation_0"] == 5
    assert edges(cap) == REACT_TREE
    agent = cap.span("invoke_agent ReAct")
    assert agent.kind is SpanKind.INTERNAL
    attributes = _attrs(agent)
    assert (attributes["gen_ai.operation.name"], attributes["gen_ai.agent.name"]) == (
        "invoke_agent",
        "ReAct",
    )
    assert attributes["gen_ai.agent.id"] == attributes["dspy.call_id"]
    assert cap.manager.stats()["open_spans"] == 0


def test_spans_carry_dspy_call_ids_that_chain_like_the_tree(cap: Capture) -> None:
    with dspy.context(lm=DummyLM([{"reasoning": "r", "answer": "4"}])):
        dspy.ChainOfThought("question -> answer")(question="2+2?")

    outer, predict, chat = (
        _attrs(cap.span(name)) for name in ("ChainOfThought", "Predict", "chat dummy")
    )
    assert "dspy.parent_call_id" not in outer
    assert predict["dspy.parent_call_id"] == outer["dspy.call_id"]
    assert chat["dspy.parent_call_id"] == predict["dspy.call_id"]
    assert len({outer["dspy.call_id"], predict["dspy.call_id"], chat["dspy.call_id"]}) == 3


# -- GenAI attributes -------------------------------------------------------------------------


def test_chat_span_carries_the_conventions_model_call_attributes(cap: Capture) -> None:
    with dspy.context(lm=_openai()):
        assert dspy.Predict("question -> answer")(question="2+2?").answer == "4"

    chat = cap.span("chat gpt-4o-mini")
    assert chat.kind is SpanKind.CLIENT
    attributes = _attrs(chat)
    assert {
        key: attributes[key]
        for key in (
            "gen_ai.operation.name",
            "gen_ai.provider.name",
            "gen_ai.request.model",
            "gen_ai.request.temperature",
            "gen_ai.request.max_tokens",
            "gen_ai.response.id",
            "gen_ai.response.model",
            "gen_ai.response.finish_reasons",
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.output_tokens",
        )
    } == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 256,
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 3,
    }
    assert "gen_ai.input.messages" not in attributes  # content: off by default


def test_dummy_lm_has_a_model_but_no_provider(cap: Capture) -> None:
    with dspy.context(lm=DummyLM([{"answer": "4"}])):
        dspy.Predict("question -> answer")(question="2+2?")

    attributes = _attrs(cap.span("chat dummy"))
    assert attributes["gen_ai.request.model"] == "dummy"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert "gen_ai.provider.name" not in attributes


def test_tool_span_carries_the_tools_name_type_and_description(cap: Capture) -> None:
    _react()

    attributes = _attrs(cap.span("execute_tool add"))
    assert {
        key: attributes[key]
        for key in (
            "gen_ai.operation.name",
            "gen_ai.tool.name",
            "gen_ai.tool.type",
            "gen_ai.tool.description",
        )
    } == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.description": "Add two numbers.",
    }
    assert "gen_ai.tool.call.arguments" not in attributes
    assert "gen_ai.tool.call.result" not in attributes


def test_a_models_tool_calls_reach_llm_end_and_its_finish_reason_the_span(cap: Capture) -> None:
    recorder = Recorder()
    cap.manager.register(recorder)
    lm = _openai(
        Scripted(
            ToolCallPart(id="call_1", name="add", input={"a": 2, "b": 3}), finish_reason="tool_call"
        )
    )

    lm("2+3?")

    [(_, (_, usage, choices))] = [seen for seen in recorder.seen if seen[0] == "llm_end"]
    assert (usage, choices) == (
        {"input_tokens": 12, "output_tokens": 3},
        [{"finish_reason": "tool_call"}],
    )
    assert _attrs(cap.span("chat gpt-4o-mini"))["gen_ai.response.finish_reasons"] == ("tool_call",)


def test_model_output_carries_the_tool_calls_the_model_asked_for(cap: Capture) -> None:
    outputs: list[Any] = []
    cap.manager.register("llm_end", lambda model, output, error: outputs.append(output))
    lm = _openai(Scripted(ToolCallPart(id="call_1", name="add", input={"a": 2, "b": 3})))

    lm("2+3?")

    [output] = outputs
    assert output["message"]["tool_calls"] == [
        {"id": "call_1", "type": "function", "name": "add", "arguments": '{"a": 2, "b": 3}'}
    ]
    assert output["id"] == "chatcmpl-1"


def test_explicit_request_call_reads_the_response_it_returns(cap: Capture) -> None:
    lm = _openai()

    response = lm(Request(model="openai/gpt-4o-mini", messages=(Message.user("2+2?"),)))

    assert isinstance(response, Response)
    attributes = _attrs(cap.span("chat gpt-4o-mini"))
    assert attributes["gen_ai.response.id"] == "chatcmpl-1"
    assert attributes["gen_ai.usage.output_tokens"] == 3


# -- failures ---------------------------------------------------------------------------------


def test_failing_model_ends_the_chat_and_predict_spans_as_errors(cap: Capture, edges: Any) -> None:
    with dspy.context(lm=_openai(Unreachable())), pytest.raises(Exception, match="unreachable"):
        dspy.Predict("question -> answer")(question="2+2?")

    assert edges(cap) == [("Predict", None), ("chat gpt-4o-mini", "Predict")]
    for span in cap.spans():
        assert span.status.status_code is StatusCode.ERROR
        assert [event.name for event in span.events] == ["exception"]
        assert _attrs(span)["error.type"] == "dspy.utils.exceptions.LMUnexpectedError"
    assert cap.manager.stats()["open_spans"] == 0


def test_failing_tool_is_an_error_span_while_react_goes_on(cap: Capture) -> None:
    lm = DummyLM(
        [
            {
                "next_thought": "try",
                "next_tool_name": "explode",
                "next_tool_args": {"reason": "no fuse"},
            },
            {"next_thought": "give up", "next_tool_name": "finish", "next_tool_args": {}},
            {"reasoning": "it failed", "answer": "unknown"},
        ]
    )
    with dspy.context(lm=lm):
        prediction = dspy.ReAct("question -> answer", tools=[explode])(question="boom?")

    assert "no fuse" in prediction.trajectory["observation_0"]
    tool = cap.span("execute_tool explode")
    assert tool.status.status_code is StatusCode.ERROR
    assert _attrs(tool)["error.type"] == "ValueError"
    assert [event.name for event in tool.events] == ["exception"]
    assert cap.span("invoke_agent ReAct").status.status_code is StatusCode.UNSET
    assert cap.manager.stats()["open_spans"] == 0


def test_tool_called_directly_that_raises_ends_its_span_as_an_error(cap: Capture) -> None:
    with pytest.raises(ValueError, match="no fuse"):
        dspy.Tool(explode)(reason="no fuse")

    span = cap.span("execute_tool explode")
    assert span.status.status_code is StatusCode.ERROR
    assert _attrs(span)["error.type"] == "ValueError"


# -- callbacks and content --------------------------------------------------------------------


def test_callback_registered_once_sees_the_genai_events_in_order(cap: Capture) -> None:
    recorder = Recorder()
    cap.manager.register(recorder)

    _react()

    llm = ("llm_start", ("dummy", None, "chat", ["system", "user"]))
    done = (
        "llm_end",
        ("dummy", {"input_tokens": 0, "output_tokens": 0}, [{"finish_reason": "stop"}]),
    )
    react_fields = ["next_thought", "next_tool_args", "next_tool_name"]
    assert recorder.seen == [
        ("agent_start", ("ReAct", {"question": "2+3?"})),
        ("task_start", "Predict"),
        llm,
        done,
        ("task_end", ("Predict", react_fields)),
        ("tool_call_start", ("add", {"a": 2, "b": 3})),
        ("tool_call_end", ("add", 5, None)),
        ("task_start", "Predict"),
        llm,
        done,
        ("task_end", ("Predict", react_fields)),
        ("tool_call_start", ("finish", {})),
        ("tool_call_end", ("finish", "Completed.", None)),
        ("task_start", "ChainOfThought"),
        ("task_start", "Predict"),
        llm,
        done,
        ("task_end", ("Predict", ["answer", "reasoning"])),
        ("task_end", ("ChainOfThought", ["answer", "reasoning"])),
        ("agent_end", ("ReAct", "5", None)),
    ]


def test_failures_reach_callbacks_as_the_end_events_error(cap: Capture) -> None:
    errors: list[tuple[str, Any]] = []
    cap.manager.register("llm_end", lambda model, output, error: errors.append((model, error)))
    cap.manager.register("task_end", lambda name, output, error: errors.append((name, error)))

    with dspy.context(lm=_openai(Unreachable())), pytest.raises(Exception, match="unreachable"):
        dspy.Predict("question -> answer")(question="2+2?")

    assert [(name, type(error).__name__) for name, error in errors] == [
        ("gpt-4o-mini", "LMUnexpectedError"),
        ("Predict", "LMUnexpectedError"),
    ]


def test_content_is_recorded_only_when_capture_is_on() -> None:
    with capture(capture_content=True) as cap:
        traced.instrument(cap.manager)
        try:
            _react()
        finally:
            traced.uninstrument()
        tool = _attrs(cap.span("execute_tool add"))
        assert tool["gen_ai.tool.call.arguments"] == '{"a":2,"b":3}'
        assert tool["gen_ai.tool.call.result"] == 5
        chat = _attrs(cap.spans("chat dummy")[0])
        assert "2+3?" in chat["gen_ai.input.messages"]
        assert "add them" in chat["gen_ai.output.messages"]
        [answer] = json.loads(_attrs(cap.span("invoke_agent ReAct"))["gen_ai.output.messages"])
        assert answer["role"] == "assistant"
        assert json.loads(answer["parts"][0]["content"])["answer"] == "5"


# -- evaluation, retrieval, optimization, async -----------------------------------------------


def test_evaluate_over_threads_keeps_each_run_under_the_evaluate_span(cap: Capture) -> None:
    threads: set[int] = set()

    def exact(example: Any, prediction: Any, trace: Any = None) -> bool:
        threads.add(threading.get_ident())
        return bool(example.answer == prediction.answer)

    devset = [
        dspy.Example(question=f"{n}+{n}?", answer=str(2 * n)).with_inputs("question")
        for n in range(4)
    ]
    lm = DummyLM({f"{n}+{n}?": {"answer": str(2 * n)} for n in range(4)})
    with dspy.context(lm=lm):
        result = dspy.Evaluate(devset=devset, metric=exact, num_threads=4)(
            dspy.Predict("question -> answer")
        )

    assert result.score == 100.0
    assert threading.get_ident() not in threads  # the program ran in DSPy's worker threads
    [evaluate] = cap.spans("evaluate")
    predicts = cap.spans("Predict")
    assert len(predicts) == 4
    assert all(
        p.parent is not None and p.parent.span_id == evaluate.context.span_id for p in predicts
    )
    chats = cap.spans("chat dummy")
    parents = sorted(chat.parent.span_id for chat in chats if chat.parent is not None)
    assert parents == sorted(p.context.span_id for p in predicts)  # one model call under each
    assert cap.manager.stats()["open_spans"] == 0


def test_evaluate_reports_its_score_to_callbacks(cap: Capture) -> None:
    ends: list[Any] = []
    cap.manager.register("task_end", lambda name, output, error: ends.append((name, output)))
    devset = [dspy.Example(question="2+2?", answer="4").with_inputs("question")]
    with dspy.context(lm=DummyLM([{"answer": "4"}])):
        dspy.Evaluate(devset=devset, metric=lambda e, p, t=None: e.answer == p.answer)(
            dspy.Predict("question -> answer")
        )

    name, output = ends[-1]
    assert (name, output["score"]) == ("evaluate", 100.0)


def test_retrieve_is_a_retrieval_span_with_passages_as_documents() -> None:
    with capture(capture_content=True) as cap:
        traced.instrument(cap.manager)
        try:
            with dspy.context(rm=dummy_rm(["OTel traces", "Prometheus metrics", "cats"])):
                passages = dspy.Retrieve(k=2)("what traces?").passages
        finally:
            traced.uninstrument()

        assert passages[0] == "OTel traces"
        attributes = _attrs(cap.span("retrieval inner"))  # dummy_rm's function is ``inner``
        assert attributes["gen_ai.operation.name"] == "retrieval"
        assert attributes["gen_ai.retrieval.query.text"] == "what traces?"
        assert "OTel traces" in attributes["gen_ai.retrieval.documents"]


def test_optimizer_compile_is_a_task_span(cap: Capture) -> None:
    trainset = [dspy.Example(question="2+2?", answer="4").with_inputs("question")]

    compiled = LabeledFewShot(k=1).compile(dspy.Predict("question -> answer"), trainset=trainset)

    assert len(compiled.demos) == 1
    [span] = cap.spans("compile LabeledFewShot")
    assert span.status.status_code is StatusCode.UNSET


def test_async_call_keeps_the_same_tree(cap: Capture, edges: Any) -> None:
    async def ask() -> Any:
        with dspy.context(lm=DummyLM([{"reasoning": "r", "answer": "4"}])):
            return await dspy.ChainOfThought("question -> answer").acall(question="2+2?")

    assert asyncio.run(ask()).answer == "4"
    assert edges(cap) == [
        ("ChainOfThought", None),
        ("Predict", "ChainOfThought"),
        ("chat dummy", "Predict"),
    ]
    assert cap.manager.stats()["open_spans"] == 0


# -- instrument / uninstrument ----------------------------------------------------------------


def test_instrument_is_idempotent_and_uninstrument_stops_spans() -> None:
    theirs = dspy.utils.BaseCallback()
    dspy.settings.configure(callbacks=[theirs])
    with capture() as cap:
        traced.instrument(cap.manager)
        traced.instrument(cap.manager)
        assert traced.is_instrumented()
        callbacks = dspy.settings.callbacks
        assert callbacks[0] is theirs and len(callbacks) == 2  # appended once
        _react()
        traced.uninstrument()
        traced.uninstrument()
        assert not traced.is_instrumented()
        assert dspy.settings.callbacks == [theirs]
        _react()

        assert len(cap.spans()) == len(REACT_TREE)  # one callback while on, none after


def test_instrument_adds_the_callback_again_after_configure_replaced_them() -> None:
    with capture() as cap:
        traced.instrument(cap.manager)
        dspy.settings.configure(callbacks=[])
        traced.instrument()
        with dspy.context(lm=DummyLM([{"answer": "4"}])):
            dspy.Predict("question -> answer")(question="2+2?")

        assert [span.name for span in cap.spans()] == ["chat dummy", "Predict"]


def test_callback_passed_in_a_context_traces_without_instrument(edges: Any) -> None:
    with capture() as cap:
        handler = traced.callback(cap.manager)
        assert isinstance(handler, dspy.utils.BaseCallback)
        with dspy.context(lm=_react_lm(), callbacks=[handler]):
            dspy.ReAct("question -> answer", tools=[add])(question="2+3?")

        assert edges(cap) == REACT_TREE


def test_uninstrument_during_a_run_still_closes_the_spans_already_open(edges: Any) -> None:
    def stop(a: int, b: int) -> int:
        """Add two numbers, and stop tracing."""
        traced.uninstrument()
        return a + b

    lm = DummyLM(
        [
            {"next_thought": "add", "next_tool_name": "stop", "next_tool_args": {"a": 2, "b": 3}},
            {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}},
            {"reasoning": "5", "answer": "5"},
        ]
    )
    with capture() as cap:
        traced.instrument(cap.manager)
        with dspy.context(lm=lm):
            assert dspy.ReAct("question -> answer", tools=[stop])(question="2+3?").answer == "5"

        assert edges(cap) == [
            ("invoke_agent ReAct", None),
            ("Predict", "invoke_agent ReAct"),
            ("chat dummy", "Predict"),
            ("execute_tool stop", "invoke_agent ReAct"),
        ]
        assert cap.manager.stats()["open_spans"] == 0


def test_callback_never_raises_into_dspy() -> None:
    with capture() as cap:
        handler = traced.callback(cap.manager)
        handler.on_lm_start(call_id="c1", instance=object(), inputs=None)  # not DSPy's shape
        handler.on_lm_end(call_id="c1", outputs=object(), exception=None)
        handler.on_tool_end(call_id="never-started", outputs=None, exception=None)

        assert cap.manager.stats()["open_spans"] == 0


def test_a_pickled_callback_comes_back_switched_off() -> None:
    with capture() as cap:
        copy = pickle.loads(pickle.dumps(traced.callback(cap.manager)))  # dspy.settings.save()
        with dspy.context(lm=DummyLM([{"answer": "4"}]), callbacks=[copy]):
            dspy.Predict("question -> answer")(question="2+2?")

        assert copy.enabled is False
        assert cap.spans() == []


def test_callback_rejects_what_is_not_a_callback_manager() -> None:
    with pytest.raises(TypeError, match="CallbackManager"):
        traced.callback(object())  # type: ignore[arg-type]


def test_instrument_from_a_thread_leaves_dspy_configure_to_the_program() -> None:
    code = (
        "import threading, dspy\n"
        "from dspy.utils import DummyLM\n"
        "from spanhooks.testing import capture\n"
        "from spanhooks.integrations import dspy as traced\n"
        "with capture() as cap:\n"
        "    worker = threading.Thread(target=traced.instrument, args=(cap.manager,))\n"
        "    worker.start(); worker.join()\n"
        "    dspy.configure(lm=DummyLM([{'answer': '4'}]))  # DSPy: only its first caller may\n"
        "    dspy.Predict('question -> answer')(question='2+2?')\n"
        "    print(sorted(span.name for span in cap.spans()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "['Predict', 'chat dummy']"


def test_importing_the_integration_does_not_import_dspy() -> None:
    code = (
        "import sys, spanhooks\n"
        "from spanhooks.integrations import dspy as m\n"
        "assert 'dspy' not in sys.modules, 'imported dspy'\n"
        "sys.modules['dspy'] = None\n"
        "try:\n    m.instrument()\nexcept ImportError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip()
        == "spanhooks.integrations.dspy needs dspy >=3.0,<4.0: pip install 'spanhooks[dspy]'"
    )
