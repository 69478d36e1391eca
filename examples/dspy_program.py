"""A DSPy ReAct agent traced by spanhooks with one line, offline.

    python examples/dspy_program.py

``instrument()`` is the one line; the rest is DSPy as usual. The agent is ``dspy.ReAct`` with a
``multiply`` tool over DSPy's ``DummyLM`` (no network, no API key), scripted to call the tool,
finish, and answer. The trace (``invoke_agent ReAct`` > ``Predict`` > ``chat dummy``,
``execute_tool multiply``, ``execute_tool finish``, ``ChainOfThought`` > ``Predict`` >
``chat dummy``) goes to ``./spanhooks-traces.jsonl`` and is printed at the end; a spanhooks
callback prints each model and tool call as it ends, the same callback any other framework's
calls reach.

Needs ``pip install 'spanhooks[dspy]'``.
"""

from __future__ import annotations

from typing import Any

import spanhooks
from spanhooks.export.reader import read_spans
from spanhooks.export.trees import build_trees, format_trees
from spanhooks.integrations.dspy import instrument
from spanhooks.vocab.genai import GenAICallback


class PrintCalls(GenAICallback):
    def on_llm_end(self, model: Any, output: Any, error: Any) -> None:
        reasons = [choice["finish_reason"] for choice in (output or {}).get("choices", [])]
        print(f"model {model}: finished {reasons}")

    def on_tool_call_end(self, tool_name: Any, result: Any, error: Any) -> None:
        print(f"tool {tool_name} -> {result!r}")


def multiply(a: int, b: int) -> int:
    """Multiply two numbers."""
    return a * b


def run() -> None:
    import dspy
    from dspy.utils import DummyLM

    lm = DummyLM(
        [
            {
                "next_thought": "I should multiply 6 by 7.",
                "next_tool_name": "multiply",
                "next_tool_args": {"a": 6, "b": 7},
            },
            {
                "next_thought": "I have the product.",
                "next_tool_name": "finish",
                "next_tool_args": {},
            },
            {"reasoning": "The tool said 6 x 7 = 42.", "answer": "42"},
        ]
    )
    agent = dspy.ReAct("question -> answer", tools=[multiply])
    with dspy.context(lm=lm):
        prediction = agent(question="What is 6 times 7?")
    print("answer:", prediction.answer)


def main() -> None:
    telemetry = spanhooks.setup()
    instrument()  # the one line: every DSPy module, LM and tool call is traced from here on
    spanhooks.register(PrintCalls())
    run()
    spanhooks.shutdown()
    traces = read_spans(telemetry.jsonl_path or "spanhooks-traces.jsonl")
    print(format_trees(build_trees(traces.spans)))


if __name__ == "__main__":
    main()
