"""LlamaIndex workloads for ``bench/integrations.py``: one mock model call, one tool call.

The model call is ``MockLLM.complete`` (LlamaIndex's own mock, through the same callback wrapper
and dispatcher span every LLM integration has), the tool call ``FunctionTool.call``. Each is one
LlamaIndex span, so both instrumentations make one span per call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llama_index.core.llms import MockLLM
from llama_index.core.tools import FunctionTool
from opentelemetry import trace

VARIANTS = ("uninstrumented", "spanhooks", "openinference")
SPANS_PER_CALL = {"model call": 1, "tool call": 1}
"""Spans an instrumented call makes: ``text_completion MockLLM``, ``execute_tool add``."""


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def prepare(variant: str) -> dict[str, Callable[[], Any]]:
    """The two calls, with ``variant``'s instrumentation on."""
    if variant == "spanhooks":
        from spanhooks.integrations import llamaindex

        llamaindex.instrument()
    elif variant == "openinference":
        from openinference.instrumentation.llama_index import LlamaIndexInstrumentor

        LlamaIndexInstrumentor().instrument(tracer_provider=trace.get_tracer_provider())
    model = MockLLM(max_tokens=1)
    tool = FunctionTool.from_defaults(add)
    return {
        "model call": lambda: model.complete("hi"),
        "tool call": lambda: tool.call(a=2, b=3),
    }
