"""LangChain workloads for ``bench/integrations.py``: one fake chat-model call, one tool call."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from opentelemetry import trace

VARIANTS = ("uninstrumented", "spanhooks", "openinference")


class FakeChat(GenericFakeChatModel):
    model: str = "fake-chat-1"


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def prepare(variant: str) -> dict[str, Callable[[], Any]]:
    """The two calls, with ``variant``'s instrumentation on."""
    if variant == "spanhooks":
        from spanhooks.integrations import langchain

        langchain.instrument()
    elif variant == "openinference":
        from openinference.instrumentation.langchain import LangChainInstrumentor

        LangChainInstrumentor().instrument(tracer_provider=trace.get_tracer_provider())
    reply = AIMessage(
        content="hello",
        usage_metadata={"input_tokens": 3, "output_tokens": 1, "total_tokens": 4},
        response_metadata={"finish_reason": "stop"},
    )
    model = FakeChat(messages=itertools.repeat(reply))
    return {
        "model call": lambda: model.invoke("hi"),
        "tool call": lambda: add.invoke({"a": 2, "b": 3}),
    }
