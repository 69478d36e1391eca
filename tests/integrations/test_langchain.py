"""LangChain 1.x, run for real offline with its fake chat models, traced by one instrument() call.

A ``create_agent`` tool-calling loop (the model asks for a tool, then answers), a plain
``prompt | model | parser`` chain, a retriever, failures of a tool and of a model, the same
agent under asyncio and a batch over threads.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip(
    "langchain_core", reason="langchain-core not installed: pip install 'spanhooks[langchain]'"
)
pytest.importorskip(
    "langchain", reason="langchain not installed: pip install 'spanhooks[langchain]'"
)

from langchain.agents import create_agent
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import tool
from opentelemetry.trace import SpanKind, StatusCode

from spanhooks.integrations import langchain as traced
from spanhooks.testing import Capture, capture
from spanhooks.vocab.genai import GenAICallback


class FakeChat(GenericFakeChatModel):
    """LangChain's fake chat model, with a model name and tool binding (agents bind tools)."""

    model: str = "fake-chat-1"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


class BrokenChat(FakeChat):
    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("model unreachable")


class Shelf(BaseRetriever):
    """A retriever over two in-memory documents."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [
            Document(id="d1", page_content="OTel traces", metadata={"score": 0.9}),
            Document(id="d2", page_content="Prometheus metrics"),
        ]


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise ValueError(reason)


def _replies() -> list[AIMessage]:
    return [
        AIMessage(
            content="",
            tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "call_1"}],
            usage_metadata={"input_tokens": 12, "output_tokens": 7, "total_tokens": 19},
            response_metadata={"finish_reason": "tool_calls", "model_name": "fake-chat-1-0601"},
        ),
        AIMessage(
            content="5",
            usage_metadata={"input_tokens": 20, "output_tokens": 1, "total_tokens": 21},
            response_metadata={"finish_reason": "stop", "model_name": "fake-chat-1-0601"},
        ),
    ]


def _agent() -> Any:
    return create_agent(FakeChat(messages=iter(_replies())), [add], name="calc")


def _question() -> dict[str, Any]:
    return {"messages": [("user", "2+3?")]}


AGENT_TREE = [
    ("invoke_agent calc", None),
    ("model", "invoke_agent calc"),
    ("chat fake-chat-1", "model"),
    ("tools", "invoke_agent calc"),
    ("execute_tool add", "tools"),
    ("model", "invoke_agent calc"),
    ("chat fake-chat-1", "model"),
]


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


class Recorder(GenAICallback):
    """A callback registered once on spanhooks, as it would be for any framework."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def on_agent_start(self, agent_name: Any, inputs: Any) -> None:
        self.seen.append(("agent_start", agent_name))

    def on_agent_end(self, agent_name: Any, output: Any, error: Any) -> None:
        self.seen.append(("agent_end", agent_name))

    def on_llm_start(self, model: Any, inputs: Any, provider: Any, operation: Any) -> None:
        self.seen.append(("llm_start", (model, provider, operation, inputs["messages"][-1])))

    def on_llm_end(self, model: Any, output: Any, error: Any) -> None:
        self.seen.append(("llm_end", (output["usage"], output["choices"])))

    def on_tool_call_start(self, tool_name: Any, arguments: Any) -> None:
        self.seen.append(("tool_call_start", (tool_name, arguments)))

    def on_tool_call_end(self, tool_name: Any, result: Any, error: Any) -> None:
        self.seen.append(("tool_call_end", (tool_name, result, error)))


def test_agent_loop_is_an_agent_span_over_model_and_tool_spans(cap: Capture, edges: Any) -> None:
    result = _agent().invoke(_question())

    assert result["messages"][-1].content == "5"
    assert edges(cap) == AGENT_TREE
    assert cap.span("invoke_agent calc").kind is SpanKind.INTERNAL
    agent = _attrs(cap.span("invoke_agent calc"))
    assert (agent["gen_ai.operation.name"], agent["gen_ai.agent.name"]) == ("invoke_agent", "calc")
    assert agent["gen_ai.agent.id"] == agent["langchain.run_id"]
    assert cap.manager.stats()["open_spans"] == 0


def test_chat_span_carries_the_conventions_model_call_attributes(cap: Capture) -> None:
    _agent().invoke(_question())

    first, second = cap.spans("chat fake-chat-1")
    assert first.kind is SpanKind.CLIENT
    attributes = _attrs(first)
    assert {
        key: attributes[key]
        for key in (
            "gen_ai.operation.name",
            "gen_ai.provider.name",
            "gen_ai.request.model",
            "gen_ai.response.model",
            "gen_ai.response.finish_reasons",
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.output_tokens",
        )
    } == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "fake",
        "gen_ai.request.model": "fake-chat-1",
        "gen_ai.response.model": "fake-chat-1-0601",
        "gen_ai.response.finish_reasons": ("tool_calls",),
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 7,
    }
    assert _attrs(second)["gen_ai.response.finish_reasons"] == ("stop",)
    assert "gen_ai.input.messages" not in attributes  # content: off by default


def test_tool_span_carries_the_models_tool_call_id(cap: Capture) -> None:
    _agent().invoke(_question())

    attributes = _attrs(cap.span("execute_tool add"))
    assert {
        key: attributes[key]
        for key in (
            "gen_ai.operation.name",
            "gen_ai.tool.name",
            "gen_ai.tool.call.id",
            "gen_ai.tool.description",
            "gen_ai.tool.type",
        )
    } == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "gen_ai.tool.call.id": "call_1",
        "gen_ai.tool.description": "Add two numbers.",
        "gen_ai.tool.type": "function",
    }
    assert "gen_ai.tool.call.arguments" not in attributes


def test_callback_registered_once_sees_the_genai_events_in_order(cap: Capture) -> None:
    recorder = Recorder()
    cap.manager.register(recorder)

    _agent().invoke(_question())

    assert recorder.seen == [
        ("agent_start", "calc"),
        ("llm_start", ("fake-chat-1", "fake", "chat", {"role": "user", "content": "2+3?"})),
        (
            "llm_end",
            ({"input_tokens": 12, "output_tokens": 7}, [{"finish_reason": "tool_calls"}]),
        ),
        ("tool_call_start", ("add", {"a": 2, "b": 3})),
        ("tool_call_end", ("add", "5", None)),
        (
            "llm_start",
            (
                "fake-chat-1",
                "fake",
                "chat",
                {"role": "tool", "content": "5", "tool_call_id": "call_1"},
            ),
        ),
        ("llm_end", ({"input_tokens": 20, "output_tokens": 1}, [{"finish_reason": "stop"}])),
        ("agent_end", "calc"),
    ]


def test_plain_chain_is_a_workflow_of_task_spans(cap: Capture, edges: Any) -> None:
    prompt = ChatPromptTemplate.from_messages([("user", "Say {word}")])
    chain = prompt | FakeChat(messages=iter([AIMessage(content="hello")])) | StrOutputParser()

    assert chain.invoke({"word": "hello"}) == "hello"
    assert edges(cap) == [
        ("workflow RunnableSequence", None),
        ("ChatPromptTemplate", "workflow RunnableSequence"),
        ("chat fake-chat-1", "workflow RunnableSequence"),
        ("StrOutputParser", "workflow RunnableSequence"),
    ]


def test_retriever_is_a_retrieval_span_with_documents_as_content() -> None:
    with capture(capture_content=True) as cap:
        traced.instrument(cap.manager)
        try:
            documents = Shelf().invoke("what traces?")
        finally:
            traced.uninstrument()

        assert [d.id for d in documents] == ["d1", "d2"]
        span = cap.span("retrieval Shelf")
        attributes = _attrs(span)
        assert attributes["gen_ai.operation.name"] == "retrieval"
        assert attributes["gen_ai.data_source.id"] == "Shelf"
        assert attributes["gen_ai.retrieval.query.text"] == "what traces?"
        assert "Prometheus metrics" in attributes["gen_ai.retrieval.documents"]


def test_failing_tool_ends_its_span_as_an_error(cap: Capture) -> None:
    with pytest.raises(ValueError, match="no fuse"):
        explode.invoke({"reason": "no fuse"})

    span = cap.span("execute_tool explode")
    assert span.status.status_code is StatusCode.ERROR
    assert _attrs(span)["error.type"] == "ValueError"
    assert [event.name for event in span.events] == ["exception"]


def test_failing_model_ends_the_chat_span_and_its_chain_as_errors(cap: Capture, edges: Any) -> None:
    prompt = ChatPromptTemplate.from_messages([("user", "{q}")])
    with pytest.raises(ConnectionError):
        (prompt | BrokenChat(messages=iter([]))).invoke({"q": "hi"})

    assert edges(cap) == [
        ("workflow RunnableSequence", None),
        ("ChatPromptTemplate", "workflow RunnableSequence"),
        ("chat fake-chat-1", "workflow RunnableSequence"),
    ]
    for name in ("chat fake-chat-1", "workflow RunnableSequence"):
        span = cap.span(name)
        assert span.status.status_code is StatusCode.ERROR
        assert _attrs(span)["error.type"] == "ConnectionError"
    assert cap.manager.stats()["open_spans"] == 0


def test_async_agent_keeps_the_same_tree(cap: Capture, edges: Any) -> None:
    result = asyncio.run(_agent().ainvoke(_question()))

    assert result["messages"][-1].content == "5"
    assert edges(cap) == AGENT_TREE


def test_batch_over_threads_keeps_each_run_under_its_own_parent(cap: Capture) -> None:
    prompt = ChatPromptTemplate.from_messages([("user", "{q}")])
    chain = prompt | FakeChat(messages=iter([AIMessage(content=str(n)) for n in range(4)]))

    chain.batch([{"q": str(n)} for n in range(4)], config={"max_concurrency": 4})

    workflows = {s.context.span_id for s in cap.spans("workflow RunnableSequence")}
    chats = cap.spans("chat fake-chat-1")
    assert len(workflows) == 4 and len(chats) == 4
    parents = [chat.parent.span_id for chat in chats if chat.parent is not None]
    assert sorted(parents) == sorted(workflows)  # one model call under each run


def test_content_is_recorded_only_when_capture_is_on() -> None:
    with capture(capture_content=True) as cap:
        traced.instrument(cap.manager)
        try:
            _agent().invoke(_question())
        finally:
            traced.uninstrument()
        tool_span = _attrs(cap.span("execute_tool add"))
        assert tool_span["gen_ai.tool.call.arguments"] == '{"a":2,"b":3}'
        assert tool_span["gen_ai.tool.call.result"] == "5"
        assert "2+3?" in _attrs(cap.spans("chat fake-chat-1")[0])["gen_ai.input.messages"]


def test_uninstrument_stops_tracing_and_instrument_is_idempotent() -> None:
    with capture() as cap:
        traced.instrument(cap.manager)
        traced.instrument(cap.manager)
        assert traced.is_instrumented()
        _agent().invoke(_question())
        traced.uninstrument()
        assert not traced.is_instrumented()
        _agent().invoke(_question())

        assert len(cap.spans()) == len(AGENT_TREE)  # one handler while on, none after


def test_handler_passed_in_config_traces_without_instrument(edges: Any) -> None:
    with capture() as cap:
        handler = traced.callback_handler(cap.manager)
        _agent().invoke(_question(), config={"callbacks": [handler]})

        assert edges(cap) == AGENT_TREE


def test_handler_rejects_what_is_not_a_callback_manager() -> None:
    with pytest.raises(TypeError, match="CallbackManager"):
        traced.callback_handler(object())  # type: ignore[arg-type]
