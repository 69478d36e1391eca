"""OpenAI Agents SDK workloads for ``bench/integrations.py``: one agent run that makes one model
call, and one that makes one model call and one tool call.

The SDK runs tools only inside an agent run, so "tool call" is a run whose one model call asks
for a tool and whose agent stops at the tool's result (``tool_use_behavior="stop_on_first_tool"``):
the same run as "model call" plus the tool. The model is the SDK's own
``OpenAIChatCompletionsModel`` over a real ``AsyncOpenAI`` client whose HTTP transport answers
in-process (``httpx.MockTransport``), so no socket is opened and the time is the SDK's and the
instrumentation's. Every variant starts with the SDK's own processors removed (its default one
uploads to OpenAI); the instrumented ones then put their processor on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_trace_processors,
    set_tracing_disabled,
)
from openai import AsyncOpenAI
from opentelemetry import trace

VARIANTS = ("uninstrumented", "spanhooks", "openinference")
SPANS_PER_CALL = {"model call": 5, "tool call": 6}
"""Spans an instrumented call makes: workflow, run, agent, turn and model call (and the tool)."""

MODEL = "gpt-4o-mini"
USAGE = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}


@function_tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def _answer(request: httpx.Request) -> httpx.Response:
    """Chat Completions: call ``add`` when it is offered, else say hello."""
    body = json.loads(request.content)
    message: dict[str, Any] = {"role": "assistant", "content": "hello"}
    if body.get("tools"):
        arguments = json.dumps({"a": 2, "b": 3})
        function = {"name": "add", "arguments": arguments}
        message = {"role": "assistant", "content": None, "tool_calls": []}
        message["tool_calls"].append({"id": "call_1", "type": "function", "function": function})
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": USAGE,
    }
    return httpx.Response(200, json=completion)


def prepare(variant: str) -> dict[str, Callable[[], Any]]:
    """The two calls, with ``variant``'s instrumentation on."""
    set_tracing_disabled(False)
    set_trace_processors([])
    if variant == "spanhooks":
        from spanhooks.integrations import openai_agents

        openai_agents.instrument()
    elif variant == "openinference":
        from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

        OpenAIAgentsInstrumentor().instrument(tracer_provider=trace.get_tracer_provider())
    client = AsyncOpenAI(
        base_url="http://model.invalid/v1",
        api_key="bench",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(_answer)),
    )
    model = OpenAIChatCompletionsModel(model=MODEL, openai_client=client)
    chat = Agent(name="Chat", model=model)
    tools = Agent(name="Adder", model=model, tools=[add], tool_use_behavior="stop_on_first_tool")
    loop = asyncio.new_event_loop()
    return {
        "model call": lambda: loop.run_until_complete(Runner.run(chat, "hi")),
        "tool call": lambda: loop.run_until_complete(Runner.run(tools, "2+3?")),
    }
