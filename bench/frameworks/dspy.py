"""DSPy workloads for ``bench/integrations.py``: one LM call, one tool call.

The LM is a real ``dspy.LM("openai/gpt-4o-mini")`` whose engine (DSPy's custom-engine interface,
``complete(Request) -> Response``) answers in-process with a scripted response carrying usage,
so the time is DSPy's request building, history and callbacks, and the instrumentation's. DSPy's
response cache is off, so every call runs the whole path. The tool is a ``dspy.Tool`` over a
Python function, called as ReAct calls its tools.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dspy
from dspy.lm15 import Message, Response, TextPart, Usage
from opentelemetry import trace

VARIANTS = ("uninstrumented", "spanhooks", "openinference")
SPANS_PER_CALL = {"model call": 1, "tool call": 1}
"""Spans an instrumented call makes: the model call, or the tool call."""


class _Scripted:
    """A DSPy engine that answers every request with the same response."""

    def __init__(self) -> None:
        self.response = Response(
            id="chatcmpl-1",
            model="gpt-4o-mini-2024-07-18",
            message=Message.assistant([TextPart("hello")]),
            finish_reason="stop",
            usage=Usage(input_tokens=3, output_tokens=1, total_tokens=4),
        )

    def complete(self, request: Any) -> Response:
        return self.response


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def prepare(variant: str) -> dict[str, Callable[[], Any]]:
    """The two calls, with ``variant``'s instrumentation on."""
    if variant == "spanhooks":
        from spanhooks.integrations import dspy as traced

        traced.instrument()
    elif variant == "openinference":
        from openinference.instrumentation.dspy import DSPyInstrumentor

        DSPyInstrumentor().instrument(tracer_provider=trace.get_tracer_provider())
    lm = dspy.LM("openai/gpt-4o-mini", engine=_Scripted(), cache=False, num_retries=0)
    tool = dspy.Tool(add)
    return {
        "model call": lambda: lm("hi"),
        "tool call": lambda: tool(a=2, b=3),
    }
