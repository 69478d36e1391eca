"""A LlamaIndex query engine, and an agent that uses it as a tool, traced by spanhooks with one
line, offline.

    python examples/llamaindex_query.py

``instrument()`` is the one line; the rest is LlamaIndex as usual, on its mock LLMs and mock
embeddings (no network, no API key). A ``VectorStoreIndex`` over three documents answers a
question (``workflow RetrieverQueryEngine.query`` > ``retrieval VectorIndexRetriever`` >
``embeddings MockEmbedding``, and ``CompactAndRefine.synthesize`` > ``text_completion
MockLLM``); then a ``FunctionAgent``, scripted to call the query engine as its ``docs`` tool,
answers another (``invoke_agent librarian`` > ``chat MockFunctionCallingLLM``, ``execute_tool
docs`` > ``RetrieverQueryEngine.aquery`` > ...). The trace goes to ``./spanhooks-traces.jsonl``
and is printed at the end; a spanhooks callback prints each retrieval, model and tool call as
it ends, the same callback any other framework's calls reach.

Needs ``pip install 'spanhooks[llamaindex]'``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import spanhooks
from spanhooks.export.reader import read_spans
from spanhooks.export.trees import build_trees, format_trees
from spanhooks.integrations.llamaindex import instrument
from spanhooks.vocab.genai import GenAICallback


class PrintCalls(GenAICallback):
    def on_retrieval_end(self, data_source: Any, documents: Any, error: Any) -> None:
        print(f"retrieval {data_source}: {len(documents or ())} document(s)")

    def on_llm_end(self, model: Any, output: Any, error: Any) -> None:
        message = (output or {}).get("message") or {}
        calls = [call["name"] for call in message.get("tool_calls") or ()]
        said = repr(message["content"]) if message.get("content") else f"calls {calls}"
        print(f"model {model} -> {said}")

    def on_tool_call_end(self, tool_name: Any, result: Any, error: Any) -> None:
        print(f"tool {tool_name} -> {result!r}")


def run() -> None:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM
    from llama_index.core.llms.mock import MockFunctionCallingLLM
    from llama_index.core.tools import QueryEngineTool

    documents = [
        Document(text="OpenTelemetry traces requests across services."),
        Document(text="Prometheus scrapes metrics from targets."),
        Document(text="Spans nest: a child span runs inside its parent."),
    ]
    index = VectorStoreIndex.from_documents(documents, embed_model=MockEmbedding(embed_dim=8))
    engine = index.as_query_engine(llm=MockLLM(max_tokens=8), similarity_top_k=2)
    print("answer:", engine.query("What traces requests?"))

    def librarian(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        """The agent's model: look the question up with the docs tool, then answer."""
        if any(message.role == MessageRole.TOOL for message in messages):
            return ChatMessage(role="assistant", content="Spans nest inside their parents.")
        ask = ToolCallBlock(
            tool_call_id="call_1", tool_name="docs", tool_kwargs={"input": "How do spans nest?"}
        )
        return ChatMessage(role="assistant", blocks=[ask])

    agent = FunctionAgent(
        name="librarian",
        description="Answers from the docs.",
        tools=[QueryEngineTool.from_defaults(engine, name="docs", description="Search the docs.")],
        llm=MockFunctionCallingLLM(response_generator=librarian),
    )

    async def ask() -> Any:
        return await agent.run(user_msg="How do spans nest?")

    print("agent:", asyncio.run(ask()))


def main() -> None:
    telemetry = spanhooks.setup()
    instrument()  # the one line: every LlamaIndex call is a spanhooks event from here on
    spanhooks.register(PrintCalls())
    run()
    spanhooks.shutdown()
    traces = read_spans(telemetry.jsonl_path or "spanhooks-traces.jsonl")
    print(format_trees(build_trees(traces.spans)))


if __name__ == "__main__":
    main()
