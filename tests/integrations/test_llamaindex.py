"""LlamaIndex 0.14, run for real offline with its mock LLMs and embeddings, traced by one
instrument() call.

A query engine over an in-memory ``VectorStoreIndex`` of two documents (``MockLLM``,
``MockEmbedding``), the same with an LLM that reports a hosted model's response payload, a
``FunctionAgent`` over ``MockFunctionCallingLLM`` that calls a ``FunctionTool``, a two-step
workflow, streaming model calls and queries, batched embeddings, failures of a tool and of a
model, and queries in threads. No network.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

pytest.importorskip(
    "llama_index.core",
    reason="llama-index-core not installed: pip install 'spanhooks[llamaindex]'",
)

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import (
    ChatMessage,
    CompletionResponse,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.llms import MockLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Event, StartEvent, StopEvent, Workflow, step
from opentelemetry.trace import SpanKind, StatusCode

from spanhooks.integrations import llamaindex as traced
from spanhooks.testing import Capture, capture
from spanhooks.vocab.genai import GenAICallback

# A workflow lists its members with inspect.getmembers() when it is made, which reads
# pydantic's deprecated model attributes (LlamaIndex's doing, not spanhooks').
pytestmark = pytest.mark.filterwarnings(
    "ignore::pydantic.warnings.PydanticDeprecationWarning:inspect"
)

QUESTION = "What traces requests?"

QUERY_TREE = [
    ("workflow RetrieverQueryEngine.query", None),
    ("retrieval VectorIndexRetriever", "workflow RetrieverQueryEngine.query"),
    ("embeddings MockEmbedding", "retrieval VectorIndexRetriever"),
    ("CompactAndRefine.synthesize", "workflow RetrieverQueryEngine.query"),
    ("text_completion MockLLM", "CompactAndRefine.synthesize"),
]


class HostedLLM(MockLLM):
    """LlamaIndex's mock LLM answering as a hosted model does: a model name in its metadata,
    and a response whose ``raw`` payload has an id, the model, a finish reason and usage."""

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="hosted-1", is_chat_model=self.is_chat_model)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(
            text="OpenTelemetry does.",
            raw={
                "id": "resp-7",
                "model": "hosted-1-0601",
                "choices": [{"finish_reason": "stop"}],
                "usage": {"prompt_tokens": 42, "completion_tokens": 4},
            },
        )


class BrokenLLM(MockLLM):
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        raise ConnectionError("model unreachable")


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def explode(reason: str = "no fuse") -> str:
    """Always fails."""
    raise ValueError(reason)


def _script(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
    """The agent's model: ask for ``add(2, 3)``, then answer with the tool's result."""
    if any(message.role == MessageRole.TOOL for message in messages):
        return ChatMessage(role="assistant", content="5")
    call = ToolCallBlock(tool_call_id="call_1", tool_name="add", tool_kwargs={"a": 2, "b": 3})
    return ChatMessage(role="assistant", blocks=[call])


class Topic(Event):
    text: str


class TwoSteps(Workflow):
    """An async step, then a sync one (LlamaIndex runs it in a thread) that calls a model."""

    @step
    async def pick(self, ev: StartEvent) -> Topic:
        return Topic(text=ev.topic)

    @step
    def answer(self, ev: Topic) -> StopEvent:
        return StopEvent(result=MockLLM().complete(f"echo {ev.text}").text)


def _index() -> VectorStoreIndex:
    documents = [
        Document(text="OpenTelemetry traces requests.", id_="d1"),
        Document(text="Prometheus scrapes metrics.", id_="d2"),
    ]
    return VectorStoreIndex.from_documents(documents, embed_model=MockEmbedding(embed_dim=8))


@pytest.fixture(scope="module")
def index() -> VectorStoreIndex:
    return _index()  # built before tracing: its embeddings calls are not part of the tests


def _query(index: VectorStoreIndex, llm: Any = None) -> str:
    engine = index.as_query_engine(llm=llm or MockLLM(max_tokens=5), similarity_top_k=1)
    return str(engine.query(QUESTION))


def _agent() -> FunctionAgent:
    return FunctionAgent(
        name="calc",
        description="Adds numbers.",
        tools=[FunctionTool.from_defaults(add)],
        llm=MockFunctionCallingLLM(response_generator=_script),
    )


async def _ask(agent: FunctionAgent, question: str = "2+3?") -> str:
    return str(await agent.run(user_msg=question))


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def _ours(handlers: list[Any]) -> list[Any]:
    return [h for h in handlers if type(h).__module__ == traced.__name__]


class Recorder(GenAICallback):
    """A callback registered once on spanhooks, as it would be for any framework."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def on_workflow_start(self, name: Any, inputs: Any) -> None:
        self.seen.append(("workflow_start", (name, inputs)))

    def on_workflow_end(self, name: Any, output: Any, error: Any) -> None:
        self.seen.append(("workflow_end", (name, output, error)))

    def on_agent_start(self, agent_name: Any, inputs: Any) -> None:
        self.seen.append(("agent_start", (agent_name, inputs)))

    def on_agent_end(self, agent_name: Any, output: Any, error: Any) -> None:
        self.seen.append(("agent_end", (agent_name, output, error)))

    def on_task_start(self, name: Any, inputs: Any) -> None:
        self.seen.append(("task_start", name))

    def on_task_end(self, name: Any, output: Any, error: Any) -> None:
        self.seen.append(("task_end", name))

    def on_retrieval_start(self, data_source: Any, query: Any) -> None:
        self.seen.append(("retrieval_start", (data_source, query)))

    def on_retrieval_end(self, data_source: Any, documents: Any, error: Any) -> None:
        shapes = [(sorted(d), round(d["score"], 3)) for d in documents]
        self.seen.append(("retrieval_end", (data_source, shapes, error)))

    def on_embedding_start(self, model: Any, inputs: Any, provider: Any) -> None:
        self.seen.append(("embedding_start", (model, inputs, provider)))

    def on_embedding_end(self, model: Any, output: Any, error: Any) -> None:
        self.seen.append(("embedding_end", (model, [len(vector) for vector in output])))

    def on_llm_start(self, model: Any, inputs: Any, provider: Any, operation: Any) -> None:
        last = inputs["messages"][-1] if "messages" in inputs else inputs["prompts"][0][:12]
        self.seen.append(("llm_start", (model, provider, operation, last)))

    def on_llm_end(self, model: Any, output: Any, error: Any) -> None:
        self.seen.append(("llm_end", (model, output, error)))

    def on_tool_call_start(self, tool_name: Any, arguments: Any) -> None:
        self.seen.append(("tool_call_start", (tool_name, arguments)))

    def on_tool_call_end(self, tool_name: Any, result: Any, error: Any) -> None:
        self.seen.append(("tool_call_end", (tool_name, result, error)))


# -- the span tree ---------------------------------------------------------------------------


def test_query_is_a_workflow_over_retrieval_and_synthesis(
    cap: Capture, edges: Any, index: VectorStoreIndex
) -> None:
    assert _query(index) == "text text text text text"

    assert edges(cap) == QUERY_TREE
    kinds = {span.name: span.kind for span in cap.spans()}
    assert kinds == {
        "workflow RetrieverQueryEngine.query": SpanKind.INTERNAL,
        "retrieval VectorIndexRetriever": SpanKind.INTERNAL,
        "embeddings MockEmbedding": SpanKind.CLIENT,
        "CompactAndRefine.synthesize": SpanKind.INTERNAL,
        "text_completion MockLLM": SpanKind.CLIENT,
    }
    workflow = _attrs(cap.span("workflow RetrieverQueryEngine.query"))
    assert workflow["gen_ai.operation.name"] == "workflow"
    assert workflow["llamaindex.span_id"].startswith("RetrieverQueryEngine.query-")
    assert cap.manager.stats()["open_spans"] == 0


def test_async_query_keeps_the_same_tree(cap: Capture, edges: Any, index: VectorStoreIndex) -> None:
    engine = index.as_query_engine(llm=MockLLM(max_tokens=5), similarity_top_k=1)
    asyncio.run(engine.aquery(QUESTION))

    assert edges(cap) == [
        ("workflow RetrieverQueryEngine.aquery", None),
        ("retrieval VectorIndexRetriever", "workflow RetrieverQueryEngine.aquery"),
        ("embeddings MockEmbedding", "retrieval VectorIndexRetriever"),
        ("CompactAndRefine.asynthesize", "workflow RetrieverQueryEngine.aquery"),
        ("text_completion MockLLM", "CompactAndRefine.asynthesize"),
    ]
    assert cap.manager.stats()["open_spans"] == 0


def test_queries_in_threads_keep_each_model_call_under_its_own_query(
    cap: Capture, index: VectorStoreIndex
) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: _query(index), range(4)))

    assert answers == ["text text text text text"] * 4
    queries = {s.context.span_id for s in cap.spans("workflow RetrieverQueryEngine.query")}
    synths = cap.spans("CompactAndRefine.synthesize")
    assert len(queries) == 4
    assert sorted(s.parent.span_id for s in synths if s.parent) == sorted(queries)
    by_id = {s.context.span_id: s for s in synths}
    chats = cap.spans("text_completion MockLLM")
    assert sorted(c.parent.span_id for c in chats if c.parent) == sorted(by_id)
    assert cap.manager.stats()["open_spans"] == 0


def test_agent_run_is_an_agent_span_over_its_model_and_tool_calls(cap: Capture, edges: Any) -> None:
    assert asyncio.run(_ask(_agent())) == "5"

    assert edges(cap) == [
        ("invoke_agent calc", None),
        ("chat MockFunctionCallingLLM", "invoke_agent calc"),
        ("execute_tool add", "invoke_agent calc"),
        ("chat MockFunctionCallingLLM", "invoke_agent calc"),
    ]
    agent = _attrs(cap.span("invoke_agent calc"))
    assert (agent["gen_ai.operation.name"], agent["gen_ai.agent.name"]) == ("invoke_agent", "calc")
    assert agent["gen_ai.agent.description"] == "Adds numbers."
    tool = _attrs(cap.span("execute_tool add"))
    assert {
        key: tool[key]
        for key in (
            "gen_ai.operation.name",
            "gen_ai.tool.name",
            "gen_ai.tool.call.id",
            "gen_ai.tool.type",
            "gen_ai.tool.description",
        )
    } == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "gen_ai.tool.call.id": "call_1",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.description": FunctionTool.from_defaults(add).metadata.description,
    }
    assert "gen_ai.tool.call.arguments" not in tool  # content: off by default
    assert cap.manager.stats()["open_spans"] == 0


def test_workflow_steps_are_task_spans_under_the_run(cap: Capture, edges: Any) -> None:
    async def run() -> Any:
        return await TwoSteps(timeout=10).run(topic="otel")

    assert asyncio.run(run()) == "echo otel"
    assert edges(cap) == [
        ("workflow TwoSteps.run", None),
        ("TwoSteps.pick", "workflow TwoSteps.run"),
        ("TwoSteps.answer", "workflow TwoSteps.run"),
        ("text_completion MockLLM", "TwoSteps.answer"),  # from the step's worker thread
    ]
    assert cap.manager.stats()["open_spans"] == 0


def test_a_tool_called_directly_is_one_tool_span(cap: Capture, edges: Any) -> None:
    output = FunctionTool.from_defaults(add)(a=1, b=2)  # __call__, which calls call

    assert output.raw_output == 3
    assert edges(cap) == [("execute_tool add", None)]
    assert "gen_ai.tool.call.id" not in _attrs(cap.span("execute_tool add"))  # no model asked


# -- the GenAI attributes ----------------------------------------------------------------------


def test_model_call_carries_the_conventions_attributes(
    cap: Capture, index: VectorStoreIndex
) -> None:
    assert _query(index, HostedLLM(max_tokens=64, is_chat_model=True)) == "OpenTelemetry does."

    # a chat call through CustomLLM's complete(): one span, the chat's
    [chat] = [
        span for span in cap.spans() if span.kind is SpanKind.CLIENT and "hosted" in span.name
    ]
    assert chat.name == "chat hosted-1"
    assert chat.parent is not None
    assert chat.parent.span_id == cap.span("CompactAndRefine.synthesize").context.span_id
    attributes = _attrs(chat)
    assert {
        key: attributes[key]
        for key in (
            "gen_ai.operation.name",
            "gen_ai.provider.name",
            "gen_ai.request.model",
            "gen_ai.request.max_tokens",
            "gen_ai.response.id",
            "gen_ai.response.model",
            "gen_ai.response.finish_reasons",
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.output_tokens",
        )
    } == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "mock",
        "gen_ai.request.model": "hosted-1",
        "gen_ai.request.max_tokens": 64,
        "gen_ai.response.id": "resp-7",
        "gen_ai.response.model": "hosted-1-0601",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 42,
        "gen_ai.usage.output_tokens": 4,
    }
    assert "gen_ai.input.messages" not in attributes  # content: off by default
    assert "gen_ai.output.messages" not in attributes


def test_retrieval_and_embeddings_spans_carry_their_attributes(
    cap: Capture, index: VectorStoreIndex
) -> None:
    _query(index)

    retrieval = _attrs(cap.span("retrieval VectorIndexRetriever"))
    assert retrieval["gen_ai.operation.name"] == "retrieval"
    assert retrieval["gen_ai.data_source.id"] == "VectorIndexRetriever"
    assert "gen_ai.retrieval.query.text" not in retrieval  # content: off by default
    embeddings = _attrs(cap.span("embeddings MockEmbedding"))
    assert {
        key: embeddings[key]
        for key in (
            "gen_ai.operation.name",
            "gen_ai.provider.name",
            "gen_ai.request.model",
            "gen_ai.embeddings.dimension.count",
        )
    } == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "mock",
        "gen_ai.request.model": "MockEmbedding",
        "gen_ai.embeddings.dimension.count": 8,
    }


def test_batched_embeddings_are_one_span_per_batch(cap: Capture, edges: Any) -> None:
    embedder = MockEmbedding(embed_dim=4, embed_batch_size=2)
    recorder = Recorder()
    cap.manager.register(recorder)

    embedder.get_text_embedding_batch(["a", "b", "c"])
    asyncio.run(embedder.aget_text_embedding_batch(["d", "e", "f"]))  # batches overlap

    assert edges(cap) == [("embeddings MockEmbedding", None)] * 4
    starts = [args[1] for name, args in recorder.seen if name == "embedding_start"]
    ends = [args[1] for name, args in recorder.seen if name == "embedding_end"]
    assert starts == [["a", "b"], ["c"], ["d", "e"], ["f"]]
    assert ends == [[4, 4], [4], [4, 4], [4]]
    assert cap.manager.stats()["open_spans"] == 0


# -- failures ----------------------------------------------------------------------------------


def test_failing_tool_ends_its_span_as_an_error(cap: Capture) -> None:
    with pytest.raises(ValueError, match="no fuse"):
        FunctionTool.from_defaults(explode).call(reason="no fuse")

    span = cap.span("execute_tool explode")
    assert span.status.status_code is StatusCode.ERROR
    assert _attrs(span)["error.type"] == "ValueError"
    assert [event.name for event in span.events] == ["exception"]


def test_failing_model_ends_its_span_and_the_query_as_errors(
    cap: Capture, edges: Any, index: VectorStoreIndex
) -> None:
    with pytest.raises(ConnectionError, match="model unreachable"):
        _query(index, BrokenLLM())

    failed = ["text_completion BrokenLLM", "CompactAndRefine.synthesize"]
    failed.append("workflow RetrieverQueryEngine.query")
    for name in failed:
        span = cap.span(name)
        assert span.status.status_code is StatusCode.ERROR
        assert _attrs(span)["error.type"] == "ConnectionError"
        assert [event.name for event in span.events] == ["exception"]
    for name in ("retrieval VectorIndexRetriever", "embeddings MockEmbedding"):
        assert cap.span(name).status.status_code is StatusCode.UNSET
    assert cap.manager.stats()["open_spans"] == 0


def test_a_tool_error_inside_an_agent_marks_the_tool_span(cap: Capture) -> None:
    agent = FunctionAgent(
        name="calc",
        tools=[FunctionTool.from_defaults(explode)],
        llm=MockFunctionCallingLLM(),  # calls every tool it is given, then answers
    )
    answer = asyncio.run(_ask(agent))  # the agent gives the error to its model, which answers

    assert answer == "Tool calls complete."

    span = cap.span("execute_tool explode")
    assert span.status.status_code is StatusCode.ERROR
    assert _attrs(span)["error.type"] == "ValueError"
    assert cap.span("invoke_agent calc").status.status_code is StatusCode.UNSET
    assert cap.manager.stats()["open_spans"] == 0


# -- callbacks and content ---------------------------------------------------------------------


def test_callback_registered_once_sees_the_genai_events_in_order(
    cap: Capture, index: VectorStoreIndex
) -> None:
    recorder = Recorder()
    cap.manager.register(recorder)

    _query(index, HostedLLM())

    documents = [(["content", "id", "score"], 1.0)]  # MockEmbedding: every score is 1
    assert recorder.seen == [
        ("workflow_start", ("RetrieverQueryEngine.query", {"query": QUESTION})),
        ("retrieval_start", ("VectorIndexRetriever", QUESTION)),
        ("embedding_start", ("MockEmbedding", [QUESTION], "mock")),
        ("embedding_end", ("MockEmbedding", [8])),
        ("retrieval_end", ("VectorIndexRetriever", documents, None)),
        ("task_start", "CompactAndRefine.synthesize"),
        ("llm_start", ("hosted-1", "mock", "text_completion", "Context info")),
        (
            "llm_end",
            (
                "hosted-1",
                {
                    "id": "resp-7",
                    "model": "hosted-1-0601",
                    "message": {"role": "assistant", "content": "OpenTelemetry does."},
                    "choices": [{"finish_reason": "stop"}],
                    "usage": {"input_tokens": 42, "output_tokens": 4},
                },
                None,
            ),
        ),
        ("task_end", "CompactAndRefine.synthesize"),
        ("workflow_end", ("RetrieverQueryEngine.query", "OpenTelemetry does.", None)),
    ]


def test_callback_sees_the_agent_loop_with_messages_and_tool_calls(cap: Capture) -> None:
    recorder = Recorder()
    cap.manager.register(recorder)

    asyncio.run(_ask(_agent()))

    call = {"id": "call_1", "type": "function", "name": "add", "arguments": {"a": 2, "b": 3}}
    model = "MockFunctionCallingLLM"
    assert recorder.seen == [
        ("agent_start", ("calc", {"user_msg": "2+3?"})),
        ("llm_start", (model, "mock", "chat", {"role": "user", "content": "2+3?"})),
        (
            "llm_end",
            (
                model,
                {"message": {"role": "assistant", "content": None, "tool_calls": [call]}},
                None,
            ),
        ),
        ("tool_call_start", ("add", {"a": 2, "b": 3})),
        ("tool_call_end", ("add", "5", None)),
        (
            "llm_start",
            (
                model,
                "mock",
                "chat",
                {"role": "tool", "content": "5", "tool_call_id": "call_1"},
            ),
        ),
        ("llm_end", (model, {"message": {"role": "assistant", "content": "5"}}, None)),
        ("agent_end", ("calc", "5", None)),
    ]


def test_content_is_recorded_only_when_capture_is_on(index: VectorStoreIndex) -> None:
    with capture(capture_content=True) as cap:
        traced.instrument(cap.manager)
        try:
            engine = index.as_query_engine(llm=HostedLLM(), similarity_top_k=1)
            [found] = engine.query(QUESTION).source_nodes
            asyncio.run(_ask(_agent()))
        finally:
            traced.uninstrument()

        text = found.node.get_content()
        retrieval = _attrs(cap.span("retrieval VectorIndexRetriever"))
        assert retrieval["gen_ai.retrieval.query.text"] == QUESTION
        assert text in retrieval["gen_ai.retrieval.documents"]
        assert found.node.node_id in retrieval["gen_ai.retrieval.documents"]
        chat = _attrs(cap.span("text_completion hosted-1"))
        assert text in chat["gen_ai.input.messages"]
        assert "OpenTelemetry does." in chat["gen_ai.output.messages"]
        tool = _attrs(cap.span("execute_tool add"))
        assert tool["gen_ai.tool.call.arguments"] == '{"a":2,"b":3}'
        assert tool["gen_ai.tool.call.result"] == "5"
        assert "2+3?" in _attrs(cap.span("invoke_agent calc"))["gen_ai.input.messages"]


# -- streaming -----------------------------------------------------------------------------------


def test_streaming_model_call_ends_when_its_stream_ends(cap: Capture) -> None:
    recorder = Recorder()
    cap.manager.register(recorder)

    stream = MockLLM(max_tokens=3).stream_complete("hi")
    assert cap.spans() == []  # still streaming
    chunks = [chunk.delta for chunk in stream]

    assert chunks == ["text ", "text ", "text"]
    span = cap.span("text_completion MockLLM")
    assert span.status.status_code is StatusCode.UNSET
    assert recorder.seen[-1] == (
        "llm_end",
        ("MockLLM", {"message": {"role": "assistant", "content": "text text"}}, None),
    )
    assert cap.manager.stats()["open_spans"] == 0


def test_streaming_query_ends_when_its_response_stream_ends(
    cap: Capture, edges: Any, index: VectorStoreIndex
) -> None:
    engine = index.as_query_engine(llm=MockLLM(max_tokens=3), streaming=True)
    response = engine.query(QUESTION)
    assert "workflow RetrieverQueryEngine.query" not in [s.name for s in cap.spans()]

    assert "".join(response.response_gen) == "text text text"
    assert edges(cap) == [
        *QUERY_TREE[:4],
        ("text_completion MockLLM", "workflow RetrieverQueryEngine.query"),  # made by the stream
    ]
    assert cap.manager.stats()["open_spans"] == 0


def test_async_streaming_query_ends_when_its_response_stream_ends(
    cap: Capture, edges: Any, index: VectorStoreIndex
) -> None:
    recorder = Recorder()
    cap.manager.register(recorder)

    async def run() -> str:
        engine = index.as_query_engine(llm=MockLLM(max_tokens=3), streaming=True)
        response = await engine.aquery(QUESTION)
        return "".join([text async for text in response.async_response_gen()])

    assert asyncio.run(run()) == "text text text"
    assert edges(cap)[-1] == ("text_completion MockLLM", "workflow RetrieverQueryEngine.aquery")
    assert recorder.seen[-1] == (
        "workflow_end",
        ("RetrieverQueryEngine.aquery", "text text text", None),
    )
    assert cap.manager.stats()["open_spans"] == 0


# -- switching on and off ----------------------------------------------------------------------


def test_uninstrument_stops_tracing_and_instrument_is_idempotent(index: VectorStoreIndex) -> None:
    root = get_dispatcher()
    with capture() as cap:
        traced.instrument(cap.manager)
        traced.instrument(cap.manager)
        assert traced.is_instrumented()
        assert len(_ours(root.span_handlers)) == len(_ours(root.event_handlers)) == 1
        _query(index)
        traced.uninstrument()
        traced.uninstrument()
        assert not traced.is_instrumented()
        assert _ours(root.span_handlers) == _ours(root.event_handlers) == []
        _query(index)

        assert len(cap.spans()) == len(QUERY_TREE)  # one handler pair while on, none after


def test_instrument_adds_the_handlers_again_if_they_were_taken_off(
    index: VectorStoreIndex,
) -> None:
    root = get_dispatcher()
    with capture() as cap:
        traced.instrument(cap.manager)
        try:
            root.span_handlers = [
                h for h in root.span_handlers if h not in _ours(root.span_handlers)
            ]
            traced.instrument()
            assert len(_ours(root.span_handlers)) == 1
            _query(index)
        finally:
            traced.uninstrument()
        assert len(cap.spans()) == len(QUERY_TREE)


def test_uninstrument_lets_the_spans_in_flight_end() -> None:
    root = get_dispatcher()
    with capture() as cap:
        traced.instrument(cap.manager)
        stream = MockLLM(max_tokens=2).stream_complete("hi")
        traced.uninstrument()
        assert len(_ours(root.span_handlers)) == 1  # until the model call in flight ends
        list(stream)

        assert [span.name for span in cap.spans()] == ["text_completion MockLLM"]
        assert _ours(root.span_handlers) == _ours(root.event_handlers) == []
        assert cap.manager.stats()["open_spans"] == 0


def test_handlers_added_by_hand_trace_without_instrument(
    edges: Any, index: VectorStoreIndex
) -> None:
    root = get_dispatcher()
    with capture() as cap:
        span_handler, event_handler = traced.handlers(cap.manager)
        root.add_span_handler(span_handler)
        root.add_event_handler(event_handler)
        try:
            _query(index)
        finally:
            root.span_handlers = [h for h in root.span_handlers if h is not span_handler]
            root.event_handlers = [h for h in root.event_handlers if h is not event_handler]
        assert not traced.is_instrumented()
        assert edges(cap) == QUERY_TREE


def test_handlers_reject_what_is_not_a_callback_manager() -> None:
    with pytest.raises(TypeError, match="CallbackManager"):
        traced.handlers(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="CallbackManager"):
        traced.instrument(object())  # type: ignore[arg-type]


def test_a_failing_handler_never_reaches_llamaindex(
    cap: Capture, index: VectorStoreIndex, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("handler bug")

    monkeypatch.setattr(traced._Tracer, "span_enter", broken)
    monkeypatch.setattr(traced._Tracer, "handle", broken)

    assert _query(index) == "text text text text text"
    assert cap.spans() == []
    assert "handler bug" in caplog.text


def test_importing_the_integration_does_not_import_llamaindex() -> None:
    code = (
        "import sys\n"
        "from spanhooks.integrations import llamaindex as m\n"
        "assert not any(n.startswith('llama_index') for n in sys.modules), 'imported it'\n"
        "sys.modules['llama_index'] = None\n"
        "try:\n    m.instrument()\nexcept ImportError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "spanhooks.integrations.llamaindex needs llama-index-core >=0.14,<0.15: "
        "pip install 'spanhooks[llamaindex]'"
    )


def test_the_handlers_are_thread_safe_under_concurrent_instrument_calls() -> None:
    root = get_dispatcher()
    with capture() as cap:
        threads = [
            threading.Thread(target=traced.instrument, args=(cap.manager,)) for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        try:
            assert len(_ours(root.span_handlers)) == len(_ours(root.event_handlers)) == 1
        finally:
            traced.uninstrument()
