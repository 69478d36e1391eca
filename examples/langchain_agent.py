"""A LangChain tool-calling agent traced by spanhooks with one line, offline.

    python examples/langchain_agent.py

``instrument()`` is the one line; the rest is LangChain as usual. The agent is
``create_agent`` over LangChain's fake chat model (no network, no API key), scripted to ask for
the ``multiply`` tool and then answer. The trace (``invoke_agent calculator`` > ``model`` >
``chat fake-chat-1``, ``tools`` > ``execute_tool multiply``, ``model`` > ``chat fake-chat-1``)
goes to ``./spanhooks-traces.jsonl`` and is printed at the end; a spanhooks callback prints
each model and tool call as it ends, the same callback any other framework's calls reach.

Needs ``pip install 'spanhooks[langchain]'``.
"""

from __future__ import annotations

from typing import Any

import spanhooks
from spanhooks.export.reader import read_spans
from spanhooks.export.trees import build_trees, format_trees
from spanhooks.integrations.langchain import instrument
from spanhooks.vocab.genai import GenAICallback


class PrintCalls(GenAICallback):
    def on_llm_end(self, model: Any, output: Any, error: Any) -> None:
        usage = output.get("usage", {}) if output else {}
        print(f"model {model}: {usage.get('input_tokens')} in, {usage.get('output_tokens')} out")

    def on_tool_call_end(self, tool_name: Any, result: Any, error: Any) -> None:
        print(f"tool {tool_name} -> {result!r}")


def run() -> None:
    from langchain.agents import create_agent
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool

    class ScriptedChat(GenericFakeChatModel):
        model: str = "fake-chat-1"

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

    @tool
    def multiply(a: int, b: int) -> int:
        """Multiply two numbers."""
        return a * b

    replies = iter(
        [
            AIMessage(
                content="",
                tool_calls=[{"name": "multiply", "args": {"a": 6, "b": 7}, "id": "call_1"}],
                usage_metadata={"input_tokens": 15, "output_tokens": 9, "total_tokens": 24},
            ),
            AIMessage(
                content="6 x 7 = 42",
                usage_metadata={"input_tokens": 30, "output_tokens": 6, "total_tokens": 36},
            ),
        ]
    )
    agent = create_agent(ScriptedChat(messages=replies), [multiply], name="calculator")
    result = agent.invoke({"messages": [("user", "What is 6 times 7?")]})
    print("answer:", result["messages"][-1].content)


def main() -> None:
    telemetry = spanhooks.setup()
    instrument()  # the one line: every LangChain run is a spanhooks event from here on
    spanhooks.register(PrintCalls())
    run()
    spanhooks.shutdown()
    traces = read_spans(telemetry.jsonl_path or "spanhooks-traces.jsonl")
    print(format_trees(build_trees(traces.spans)))


if __name__ == "__main__":
    main()
