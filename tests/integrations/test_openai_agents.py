"""The OpenAI Agents SDK 0.24, run for real against a local model server, traced by one
instrument() call.

The agents talk to a scripted OpenAI-compatible server on 127.0.0.1 (``model_server``) through
the SDK's own ``OpenAIChatCompletionsModel`` and ``OpenAIResponsesModel``: a triage agent hands
off to a weather agent, which calls a ``@function_tool`` and then answers. Also a tool that
raises, a model call that fails, a streamed run, runs in threads, guardrails, custom spans and
uninstrumenting mid-run. The SDK's own processors (which upload to OpenAI) are swapped out for
each test, so nothing reaches the network.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip(
    "agents", reason="openai-agents not installed: pip install 'spanhooks[openai-agents]'"
)

from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    custom_span,
    function_tool,
    input_guardrail,
    set_trace_processors,
    set_tracing_disabled,
    trace,
)
from agents.tracing import TracingProcessor, get_trace_provider
from openai import APIStatusError, AsyncOpenAI
from opentelemetry.trace import SpanKind, StatusCode

from spanhooks.integrations import openai_agents as traced
from spanhooks.testing import Capture, capture
from spanhooks.vocab.genai import GenAICallback

from .model_server import MODEL_SUFFIX, ModelServer, Reply, failure, text, tool_call

MODEL = "gpt-4o-mini"


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


@function_tool
def explode(reason: str) -> str:
    """Always fails."""
    raise ValueError(reason)


def _handoff_script() -> list[Reply]:
    return [
        tool_call("transfer_to_weather_agent", {}, call_id="call_handoff"),
        tool_call("get_weather", {"city": "Paris"}, call_id="call_weather"),
        text("It is sunny in Paris."),
    ]


def _triage(model: Any) -> Agent[Any]:
    weather = Agent(name="Weather agent", instructions="Report.", tools=[get_weather], model=model)
    return Agent(name="Triage", instructions="Route.", handoffs=[weather], model=model)


HANDOFF_TREE = [
    ("workflow Agent workflow", None),
    ("run Agent workflow", "workflow Agent workflow"),
    ("invoke_agent Triage", "run Agent workflow"),
    ("turn 1", "invoke_agent Triage"),
    (f"chat {MODEL}", "turn 1"),
    ("handoff Triage -> Weather agent", "turn 1"),
    ("invoke_agent Weather agent", "run Agent workflow"),
    ("turn 2", "invoke_agent Weather agent"),
    (f"chat {MODEL}", "turn 2"),
    ("execute_tool get_weather", "turn 2"),
    ("turn 3", "invoke_agent Weather agent"),
    (f"chat {MODEL}", "turn 3"),
]


def _model(server: ModelServer, api: str = "chat") -> tuple[Any, AsyncOpenAI]:
    client = AsyncOpenAI(base_url=server.url, api_key="test", max_retries=0)
    if api == "responses":
        return OpenAIResponsesModel(model=MODEL, openai_client=client), client
    return OpenAIChatCompletionsModel(model=MODEL, openai_client=client), client


def _ask(
    replies: list[Reply] | Callable[[dict[str, Any]], Reply],
    build: Callable[[Any], Agent[Any]] = _triage,
    question: str = "Weather in Paris?",
    *,
    api: str = "chat",
    streamed: bool = False,
    run_config: RunConfig | None = None,
) -> Any:
    """The final output of one run of ``build(model)`` on ``question``."""

    async def run() -> Any:
        with ModelServer(replies) as server:
            model, client = _model(server, api)
            try:
                if streamed:
                    result = Runner.run_streamed(build(model), question, run_config=run_config)
                    async for _ in result.stream_events():
                        pass
                    return result.final_output
                result = await Runner.run(build(model), question, run_config=run_config)
                return result.final_output
            finally:
                await client.close()

    return asyncio.run(run())


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def _registered() -> list[Any]:
    return list(get_trace_provider()._multi_processor._processors)  # type: ignore[attr-defined]


class Sentinel(TracingProcessor):
    """Stands in for the SDK's default processor: counts the traces it is given."""

    def __init__(self) -> None:
        self.traces = 0

    def on_trace_start(self, trace: Any) -> None:
        self.traces += 1

    def on_trace_end(self, trace: Any) -> None: ...
    def on_span_start(self, span: Any) -> None: ...
    def on_span_end(self, span: Any) -> None: ...
    def shutdown(self) -> None: ...
    def force_flush(self) -> None: ...


class Recorder(GenAICallback):
    """One spanhooks callback, registered once, for every framework's GenAI events."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[Any, ...]]] = []

    def on_workflow_start(self, name: Any, inputs: Any) -> None:
        self.seen.append(("workflow_start", (name,)))

    def on_workflow_end(self, name: Any, output: Any, error: Any) -> None:
        self.seen.append(("workflow_end", (name, output, error)))

    def on_agent_start(self, agent_name: Any, inputs: Any) -> None:
        self.seen.append(("agent_start", (agent_name,)))

    def on_agent_end(self, agent_name: Any, output: Any, error: Any) -> None:
        self.seen.append(("agent_end", (agent_name, output, error)))

    def on_tool_call_start(self, tool_name: Any, arguments: Any) -> None:
        self.seen.append(("tool_call_start", (tool_name, arguments)))

    def on_tool_call_end(self, tool_name: Any, result: Any, error: Any) -> None:
        self.seen.append(("tool_call_end", (tool_name, result, error)))

    def on_llm_start(self, model: Any, inputs: Any, provider: Any, operation: Any) -> None:
        self.seen.append(("llm_start", (model, inputs, provider, operation)))

    def on_llm_end(self, model: Any, output: Any, error: Any) -> None:
        self.seen.append(("llm_end", (model, output, error)))


@pytest.fixture(autouse=True)
def no_sdk_processors() -> Iterator[None]:
    """Each test starts with tracing on and no processor but what it adds (the SDK's default
    one would upload to OpenAI), and leaves the SDK's processors as it found them."""
    saved = _registered()
    set_tracing_disabled(False)
    set_trace_processors([])
    try:
        yield
    finally:
        traced.uninstrument()
        set_trace_processors(saved)


def test_handoff_run_is_a_workflow_of_agents_turns_model_and_tool_spans(
    cap: Capture, edges: Any
) -> None:
    assert _ask(_handoff_script()) == "It is sunny in Paris."

    assert edges(cap) == HANDOFF_TREE
    assert {span.kind for span in cap.spans(f"chat {MODEL}")} == {SpanKind.CLIENT}
    assert {span.kind for span in cap.spans() if not span.name.startswith("chat")} == {
        SpanKind.INTERNAL
    }
    assert all(span.status.status_code is StatusCode.UNSET for span in cap.spans())
    assert cap.manager.stats()["open_spans"] == 0


def test_without_task_and_turn_spans_agents_sit_under_the_workflow(
    cap: Capture, edges: Any
) -> None:
    config = RunConfig(tracing={"include_task_and_turn_spans": False})
    _ask(_handoff_script(), run_config=config)

    assert edges(cap) == [
        ("workflow Agent workflow", None),
        ("invoke_agent Triage", "workflow Agent workflow"),
        (f"chat {MODEL}", "invoke_agent Triage"),
        ("handoff Triage -> Weather agent", "invoke_agent Triage"),
        ("invoke_agent Weather agent", "workflow Agent workflow"),
        (f"chat {MODEL}", "invoke_agent Weather agent"),
        ("execute_tool get_weather", "invoke_agent Weather agent"),
        (f"chat {MODEL}", "invoke_agent Weather agent"),
    ]
    assert _attrs(cap.span("execute_tool get_weather"))["gen_ai.tool.call.id"] == "call_weather"


def test_without_sensitive_data_the_sdk_keeps_usage_but_no_content(cap: Capture) -> None:
    recorder = Recorder()
    cap.manager.register(recorder)
    _ask(_handoff_script(), run_config=RunConfig(trace_include_sensitive_data=False))

    tool = _attrs(cap.span("execute_tool get_weather"))
    assert "gen_ai.tool.call.id" not in tool  # read from the model's output, not recorded
    assert dict(recorder.seen)["tool_call_start"] == ("get_weather", None)
    assert dict(recorder.seen)["llm_end"] == (
        MODEL,
        {"usage": {"input_tokens": 20, "output_tokens": 8}},  # the last one's
        None,
    )
    assert _attrs(cap.spans(f"chat {MODEL}")[0])["gen_ai.usage.input_tokens"] == 15


def test_model_call_spans_carry_genai_request_and_usage_attributes(cap: Capture) -> None:
    _ask(_handoff_script())

    first, _, last = cap.spans(f"chat {MODEL}")
    attributes = _attrs(first)
    assert {key: attributes[key] for key in attributes if key.startswith("gen_ai.")} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
        "gen_ai.usage.input_tokens": 15,
        "gen_ai.usage.output_tokens": 9,
        "gen_ai.usage.cache_read.input_tokens": 0,
    }
    assert attributes["server.address"] == "127.0.0.1"
    assert isinstance(attributes["server.port"], int)
    assert (
        _attrs(last)["gen_ai.usage.input_tokens"],
        _attrs(last)["gen_ai.usage.output_tokens"],
    ) == (
        20,
        8,
    )
    assert "gen_ai.input.messages" not in attributes  # content: off by default
    assert "gen_ai.output.messages" not in attributes


def test_responses_model_call_has_response_id_model_and_finish_reason(cap: Capture) -> None:
    answer = _ask(
        [tool_call("get_weather", {"city": "Oslo"}), text("Snow in Oslo.")],
        lambda model: Agent(name="Weather agent", tools=[get_weather], model=model),
        api="responses",
    )

    assert answer == "Snow in Oslo."
    # The SDK's response span names no model until the response is back: the response's.
    calls = cap.spans(f"chat {MODEL}{MODEL_SUFFIX}")
    assert [_attrs(span)["gen_ai.response.id"] for span in calls] == ["resp_1", "resp_2"]
    attributes = _attrs(calls[1])
    assert attributes["gen_ai.response.model"] == MODEL + MODEL_SUFFIX
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.provider.name"] == "openai"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (
        20,
        8,
    )
    tool = _attrs(cap.span("execute_tool get_weather"))
    assert tool["gen_ai.tool.call.id"] == "call_1"


def test_tool_span_carries_the_call_id_the_model_gave(cap: Capture) -> None:
    _ask(_handoff_script())

    attributes = _attrs(cap.span("execute_tool get_weather"))
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["gen_ai.tool.name"] == "get_weather"
    assert attributes["gen_ai.tool.call.id"] == "call_weather"
    assert attributes["gen_ai.tool.type"] == "function"
    assert "gen_ai.tool.call.arguments" not in attributes  # content
    assert "gen_ai.tool.call.result" not in attributes


def test_agent_spans_carry_name_id_tools_and_handoffs(cap: Capture) -> None:
    _ask(_handoff_script())

    triage = _attrs(cap.span("invoke_agent Triage"))
    weather = _attrs(cap.span("invoke_agent Weather agent"))
    assert triage["gen_ai.operation.name"] == "invoke_agent"
    assert triage["gen_ai.agent.name"] == "Triage"
    assert triage["gen_ai.agent.id"] == triage["openai_agents.span_id"]
    assert triage["openai_agents.agent.handoffs"] == ("Weather agent",)
    assert weather["openai_agents.agent.tools"] == ("get_weather",)
    assert weather["openai_agents.agent.output_type"] == "str"
    handoff = _attrs(cap.span("handoff Triage -> Weather agent"))
    assert (
        handoff["openai_agents.handoff.from_agent"],
        handoff["openai_agents.handoff.to_agent"],
    ) == (
        "Triage",
        "Weather agent",
    )


def test_spans_carry_the_sdk_ids_and_a_named_trace_its_group_as_conversation(
    cap: Capture, edges: Any
) -> None:
    async def two_runs() -> None:
        with ModelServer([text("Hello."), text("Bye.")]) as server:
            model, client = _model(server)
            agent = Agent(name="Greeter", model=model)
            with trace("Front desk", group_id="conversation-7"):
                await Runner.run(agent, "Hi")
                await Runner.run(agent, "Bye")
            await client.close()

    asyncio.run(two_runs())

    # each Runner run is a task span named after the run's own workflow name (its RunConfig's)
    assert edges(cap) == [
        ("workflow Front desk", None),
        ("run Agent workflow", "workflow Front desk"),
        ("invoke_agent Greeter", "run Agent workflow"),
        ("turn 1", "invoke_agent Greeter"),
        (f"chat {MODEL}", "turn 1"),
        ("run Agent workflow", "workflow Front desk"),
        ("invoke_agent Greeter", "run Agent workflow"),
        ("turn 1", "invoke_agent Greeter"),
        (f"chat {MODEL}", "turn 1"),
    ]
    workflow = _attrs(cap.span("workflow Front desk"))
    assert workflow["gen_ai.conversation.id"] == "conversation-7"
    assert workflow["openai_agents.trace_id"].startswith("trace_")
    agent = _attrs(cap.spans("invoke_agent Greeter")[0])
    run = _attrs(cap.spans("run Agent workflow")[0])
    chat = _attrs(cap.spans(f"chat {MODEL}")[0])
    turn = _attrs(cap.spans("turn 1")[0])
    assert agent["openai_agents.parent_id"] == run["openai_agents.span_id"]
    assert chat["openai_agents.parent_id"] == turn["openai_agents.span_id"]
    assert "openai_agents.parent_id" not in run  # under the trace itself
    assert {chat["openai_agents.trace_id"], run["openai_agents.trace_id"]} == {
        workflow["openai_agents.trace_id"]
    }


def test_tool_that_raises_ends_its_span_as_an_error_and_the_run_goes_on(cap: Capture) -> None:
    answer = _ask(
        [tool_call("explode", {"reason": "no fuse"}), text("The tool failed.")],
        lambda model: Agent(name="Fragile", tools=[explode], model=model),
    )

    assert answer == "The tool failed."  # the SDK tells the model the tool failed
    span = cap.span("execute_tool explode")
    assert span.status.status_code is StatusCode.ERROR
    assert "Error running tool" in (span.status.description or "")
    assert _attrs(span)["error.type"] == "spanhooks.integrations.openai_agents.AgentsSpanError"
    assert [event.name for event in span.events] == ["exception"]
    assert cap.span("invoke_agent Fragile").status.status_code is StatusCode.UNSET


def test_failing_model_call_marks_it_and_every_span_it_ends_as_errors(
    cap: Capture, edges: Any
) -> None:
    with pytest.raises(APIStatusError, match="no such model"):
        _ask([failure(400, "no such model")], lambda model: Agent(name="Lost", model=model))

    assert edges(cap) == [
        ("workflow Agent workflow", None),
        ("run Agent workflow", "workflow Agent workflow"),
        ("invoke_agent Lost", "run Agent workflow"),
        ("turn 1", "invoke_agent Lost"),
        (f"chat {MODEL}", "turn 1"),
    ]
    for span in cap.spans():
        assert span.status.status_code is StatusCode.ERROR, span.name
        assert _attrs(span)["error.type"] == "openai.BadRequestError"
        assert [event.name for event in span.events] == ["exception"]
    assert "gen_ai.usage.input_tokens" not in _attrs(cap.span(f"chat {MODEL}"))
    assert cap.manager.stats()["open_spans"] == 0


def test_a_run_inside_an_except_block_does_not_take_its_exception(cap: Capture) -> None:
    try:
        raise KeyError("handled by the caller")
    except KeyError:
        answer = _ask([text("Fine.")], lambda model: Agent(name="Calm", model=model))

    assert answer == "Fine."
    assert [span.status.status_code for span in cap.spans()] == [StatusCode.UNSET] * 5


def test_a_callback_registered_once_sees_the_genai_events_in_order(cap: Capture) -> None:
    recorder = Recorder()
    cap.manager.register(recorder)
    _ask(_handoff_script())

    assert [name for name, _ in recorder.seen] == [
        "workflow_start",
        "agent_start",
        "llm_start",
        "llm_end",
        "agent_end",
        "agent_start",
        "llm_start",
        "llm_end",
        "tool_call_start",
        "tool_call_end",
        "llm_start",
        "llm_end",
        "agent_end",
        "workflow_end",
    ]
    events = dict(recorder.seen[:4])
    assert events["llm_start"] == (MODEL, {"model": MODEL}, "openai", "chat")
    model, output, error = events["llm_end"]
    assert (model, error) == (MODEL, None)
    assert output["usage"] == {"input_tokens": 15, "output_tokens": 9}
    assert [call["name"] for call in output["message"]["tool_calls"]] == [
        "transfer_to_weather_agent"
    ]
    tool_start, tool_end = recorder.seen[8][1], recorder.seen[9][1]
    assert tool_start == ("get_weather", {"city": "Paris"})
    assert tool_end == ("get_weather", "Sunny in Paris", None)
    assert recorder.seen[-3][1][1]["message"] == {
        "role": "assistant",
        "content": "It is sunny in Paris.",
    }
    assert recorder.seen[4][1] == ("Triage", None, None)  # it handed off: no answer of its own
    assert recorder.seen[-2][1] == ("Weather agent", "It is sunny in Paris.", None)
    assert recorder.seen[-1][1] == ("Agent workflow", "It is sunny in Paris.", None)


def test_the_callback_gets_the_exception_of_a_failed_model_call(cap: Capture) -> None:
    recorder = Recorder()
    cap.manager.register(recorder)
    with pytest.raises(APIStatusError):
        _ask([failure(400, "no such model")], lambda model: Agent(name="Lost", model=model))

    model, output, error = dict(recorder.seen)["llm_end"]
    assert (model, output) == (MODEL, None)
    assert isinstance(error, APIStatusError)
    assert dict(recorder.seen)["workflow_end"][2] is error


def test_content_is_recorded_only_when_capture_is_on() -> None:
    with capture(capture_content=True) as cap:
        traced.instrument(cap.manager)
        try:
            _ask(_handoff_script())
        finally:
            traced.uninstrument()

        tool = _attrs(cap.span("execute_tool get_weather"))
        assert json.loads(tool["gen_ai.tool.call.arguments"]) == {"city": "Paris"}
        assert tool["gen_ai.tool.call.result"] == "Sunny in Paris"
        answer = _attrs(cap.spans(f"chat {MODEL}")[-1])
        assert "It is sunny in Paris." in answer["gen_ai.output.messages"]
        assert json.loads(
            _attrs(cap.span("invoke_agent Weather agent"))["gen_ai.output.messages"]
        ) == [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "It is sunny in Paris."}],
                "finish_reason": "stop",
            }
        ]


def test_streamed_run_keeps_the_same_tree(cap: Capture, edges: Any) -> None:
    assert _ask(_handoff_script(), streamed=True) == "It is sunny in Paris."

    assert edges(cap) == HANDOFF_TREE
    assert _attrs(cap.span("execute_tool get_weather"))["gen_ai.tool.call.id"] == "call_weather"
    last = _attrs(cap.spans(f"chat {MODEL}")[-1])
    assert (last["gen_ai.usage.input_tokens"], last["gen_ai.usage.output_tokens"]) == (20, 8)
    # the SDK's streamed result has a placeholder id and the request's model: neither is read
    assert "gen_ai.response.id" not in last
    assert "gen_ai.response.model" not in last
    assert cap.manager.stats()["open_spans"] == 0


def _weather_in(request: dict[str, Any]) -> Reply:
    """Call the tool for the city asked about, then answer with its result."""
    messages = request["messages"]
    if messages[-1]["role"] == "tool":
        return text(f"Reported: {messages[-1]['content']}")
    return tool_call("get_weather", {"city": messages[-1]["content"]})


def test_runs_in_threads_keep_each_tree_apart(cap: Capture) -> None:
    answers: dict[str, Any] = {}

    def ask(city: str) -> None:
        answers[city] = _ask(
            _weather_in,
            lambda model: Agent(name="Weather agent", tools=[get_weather], model=model),
            city,
        )

    threads = [threading.Thread(target=ask, args=(city,)) for city in ("Oslo", "Rome", "Lima")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers == {city: f"Reported: Sunny in {city}" for city in ("Oslo", "Rome", "Lima")}
    workflows = cap.spans("workflow Agent workflow")
    assert len(workflows) == 3
    trace_ids = {span.context.trace_id for span in workflows}
    assert len(trace_ids) == 3  # one OpenTelemetry trace per SDK trace
    for span in cap.spans():
        sdk_trace = _attrs(span)["openai_agents.trace_id"]
        [workflow] = [w for w in workflows if _attrs(w)["openai_agents.trace_id"] == sdk_trace]
        assert span.context.trace_id == workflow.context.trace_id
    tools = cap.spans("execute_tool get_weather")
    assert sorted(_attrs(t)["gen_ai.tool.call.id"] for t in tools) == ["call_1"] * 3
    assert cap.manager.stats()["open_spans"] == 0


@input_guardrail
async def polite(context: Any, agent: Any, question: Any) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(output_info=None, tripwire_triggered="please" not in question)


def test_guardrails_and_custom_spans_are_task_spans(cap: Capture) -> None:
    def build(model: Any) -> Agent[Any]:
        return Agent(name="Clerk", model=model, input_guardrails=[polite])

    async def with_custom_span() -> None:
        with ModelServer([text("Sure.")]) as server:
            model, client = _model(server)
            with trace("Desk"):
                with custom_span("lookup", {"table": "cities"}):
                    pass
                await Runner.run(build(model), "Hours, please?")
            await client.close()

    asyncio.run(with_custom_span())
    with pytest.raises(InputGuardrailTripwireTriggered):
        _ask([text("Sure.")], build, "Hours?")

    passed, tripped = cap.spans("guardrail polite")
    assert _attrs(passed)["openai_agents.guardrail.triggered"] is False
    assert _attrs(tripped)["openai_agents.guardrail.triggered"] is True
    lookup = cap.span("lookup")
    assert lookup.parent is not None
    assert lookup.parent.span_id == cap.span("workflow Desk").context.span_id
    workflows = cap.spans("workflow Agent workflow")
    assert workflows[0].status.status_code is StatusCode.ERROR
    assert _attrs(workflows[0])["error.type"] == "agents.exceptions.InputGuardrailTripwireTriggered"


def test_custom_span_data_is_content() -> None:
    with capture(capture_content=True) as cap:
        traced.instrument(cap.manager)
        try:
            with trace("Desk"), custom_span("lookup", {"table": "cities"}) as span:
                span.span_data.data["rows"] = 3
        finally:
            traced.uninstrument()
        lookup = _attrs(cap.span("lookup"))
        [given] = json.loads(lookup["gen_ai.input.messages"])  # one value: its text
        assert given == {"role": "user", "parts": [{"type": "text", "content": "cities"}]}
        [kept] = json.loads(lookup["gen_ai.output.messages"])
        assert json.loads(kept["parts"][0]["content"]) == {"table": "cities", "rows": 3}


def test_instrument_replaces_the_sdk_processors_and_uninstrument_puts_them_back() -> None:
    default = Sentinel()
    set_trace_processors([default])
    with capture() as cap:
        traced.instrument(cap.manager)
        assert len(_registered()) == 1 and _registered()[0] is not default
        _ask([text("Hi.")], lambda model: Agent(name="Greeter", model=model))
        traced.uninstrument()
        assert _registered() == [default]
        _ask([text("Hi.")], lambda model: Agent(name="Greeter", model=model))

        assert default.traces == 1  # only the run after uninstrument()
        assert len(cap.spans("invoke_agent Greeter")) == 1


def test_instrument_not_exclusive_keeps_the_sdk_processors() -> None:
    default = Sentinel()
    set_trace_processors([default])
    with capture() as cap:
        traced.instrument(cap.manager, exclusive=False)
        _ask([text("Hi.")], lambda model: Agent(name="Greeter", model=model))
        traced.uninstrument()

        assert default.traces == 1
        assert len(cap.spans("invoke_agent Greeter")) == 1
        assert _registered() == [default]


def test_instrument_is_idempotent_and_uninstrument_stops_spans() -> None:
    with capture() as cap:
        traced.instrument(cap.manager)
        traced.instrument(cap.manager)
        assert traced.is_instrumented()
        assert len(_registered()) == 1
        _ask(_handoff_script())
        traced.uninstrument()
        traced.uninstrument()
        assert not traced.is_instrumented()
        assert _registered() == []
        _ask(_handoff_script())

        assert len(cap.spans()) == len(HANDOFF_TREE)  # one processor while on, none after


def test_uninstrument_mid_run_still_ends_the_runs_spans() -> None:
    @function_tool
    def hang_up(city: str) -> str:
        """Switches tracing off."""
        traced.uninstrument()
        return "done"

    with capture() as cap:
        traced.instrument(cap.manager)
        _ask(
            [tool_call("hang_up", {"city": "Oslo"}), text("Bye.")],
            lambda model: Agent(name="Operator", tools=[hang_up], model=model),
        )
        assert _registered() == []  # it left once the run in flight had ended
        _ask([text("Bye.")], lambda model: Agent(name="Operator", model=model))

        assert len(cap.spans("workflow Agent workflow")) == 1
        assert len(cap.spans(f"chat {MODEL}")) == 2
        assert cap.manager.stats()["open_spans"] == 0


def test_processor_registered_by_hand_traces_without_instrument(edges: Any) -> None:
    with capture() as cap:
        set_trace_processors([traced.tracing_processor(cap.manager)])
        _ask(_handoff_script())

        assert edges(cap) == HANDOFF_TREE
        assert not traced.is_instrumented()


def test_tracing_processor_rejects_what_is_not_a_callback_manager() -> None:
    with pytest.raises(TypeError, match="CallbackManager"):
        traced.tracing_processor(object())  # type: ignore[arg-type]


def test_importing_the_integration_does_not_import_the_sdk() -> None:
    code = (
        "import sys, spanhooks\n"
        "from spanhooks.integrations import openai_agents as m\n"
        "assert 'agents' not in sys.modules, 'imported agents'\n"
        "sys.modules['agents'] = None\n"
        "try:\n    m.instrument()\nexcept ImportError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "spanhooks.integrations.openai_agents needs openai-agents >=0.24,<0.25: "
        "pip install 'spanhooks[openai-agents]'"
    )
