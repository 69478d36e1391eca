"""A small tool-calling agent instrumented with spanhooks' decorators only.

Run it with spanhooks set up from the environment (no setup() call in this file)::

    python -m spanhooks run examples/agent.py
    spanhooks view spanhooks-traces.jsonl

Each run is a ``workflow support`` span holding an ``invoke_agent helpdesk`` span with its model
calls (``chat scripted-model``, the last one streamed, with time to first chunk) and tool calls
(``execute_tool ...``); a registered callback prints every tool call as it happens.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import spanhooks
from spanhooks import GenAIEvent

# The "model" is scripted: it asks for two tools, then streams an answer.
_PLAN = [
    {"tool": "search_docs", "arguments": {"query": "reset password"}},
    {"tool": "create_ticket", "arguments": {"title": "Password reset", "priority": "low"}},
]


@spanhooks.llm(model="scripted-model", provider="example")
def choose_next_step(question: str, step: int) -> dict[str, Any]:
    time.sleep(0.01)
    choice = _PLAN[step] if step < len(_PLAN) else None
    return {
        "id": f"resp-{step}",
        "model": "scripted-model-v1",
        "choice": choice,
        "choices": [{"finish_reason": "tool_calls" if choice else "stop"}],
        "usage": {"input_tokens": 40 + 10 * step, "output_tokens": 12},
    }


@spanhooks.llm(model="scripted-model", provider="example")
def stream_answer(question: str, facts: list[str]) -> Iterator[dict[str, Any]]:
    for word in f"Found {len(facts)} results; a ticket is open.".split():
        time.sleep(0.002)
        yield {"delta": word}
    yield {"model": "scripted-model-v1", "usage": {"input_tokens": 90, "output_tokens": 9}}


@spanhooks.tool
def search_docs(query: str) -> list[str]:
    time.sleep(0.005)
    return [f"doc about {query}", "faq entry"]


@spanhooks.tool
def create_ticket(title: str, priority: str) -> str:
    time.sleep(0.005)
    return "TICKET-7"


TOOLS = {"search_docs": search_docs, "create_ticket": create_ticket}


@spanhooks.agent(name="helpdesk")
def helpdesk(question: str) -> str:
    facts: list[str] = []
    for step in range(len(_PLAN) + 1):
        choice = choose_next_step(question, step)["choice"]
        if choice is None:
            break
        result = TOOLS[choice["tool"]](**choice["arguments"])
        facts.extend(result if isinstance(result, list) else [result])
    return " ".join(chunk["delta"] for chunk in stream_answer(question, facts) if "delta" in chunk)


@spanhooks.workflow(name="support")
def support(question: str) -> str:
    return helpdesk(question)


def print_tool_call(tool_name: str, arguments: dict[str, Any]) -> None:
    print(f"tool call: {tool_name}({', '.join(f'{k}={v!r}' for k, v in arguments.items())})")


def main() -> None:
    spanhooks.register(GenAIEvent.TOOL_CALL_START, print_tool_call)
    print(support("How do I reset my password?"))


if __name__ == "__main__":
    main()
