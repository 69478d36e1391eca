"""LLMProc's callback vocabulary: ``CallbackEvent`` with its fixed argument lists.

Turns, API calls and tool calls are start/end pairs that become ``invoke_agent``, ``chat`` and
``execute_tool`` spans; ``RESPONSE`` and ``STDERR_WRITE`` are span events. Tool arguments and
results, request payloads, responses and stderr text are content, recorded only on opt-in. A
failed tool's status description is the error its result names (an exception, or an
``is_error`` result's ``error``), never the tool's output.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import SpanKind

from spanhooks.events.spec import Bound, EventSet, FailureIn, end, point, start
from spanhooks.util.text import safe_str
from spanhooks.vocab._genai import field, request_attributes, response_attributes
from spanhooks.vocab._messages import input_content, output_content

__all__ = ["LLMPROC", "CallbackEvent", "LLMProcCallback"]


class CallbackEvent(str, Enum):
    """LLMProc's events; the values are the method names class callbacks implement."""

    TOOL_START = "tool_start"
    TOOL_END = "tool_end"
    RESPONSE = "response"
    API_REQUEST = "api_request"
    API_RESPONSE = "api_response"
    TURN_START = "turn_start"
    TURN_END = "turn_end"
    STDERR_WRITE = "stderr_write"


def _agent_name(process: object) -> str:
    name = field(process, "display_name", "name", "model_name")
    return str(name) if name is not None else "llmproc"


def _turn_attributes(bound: Bound) -> dict[str, Any]:
    process = bound.get("process")
    attrs: dict[str, Any] = {gen_ai.GEN_AI_AGENT_NAME: _agent_name(process)}
    model = field(process, "model_name", "model")
    if isinstance(model, str):
        attrs[gen_ai.GEN_AI_REQUEST_MODEL] = model
    provider = field(process, "provider")
    if isinstance(provider, str):
        attrs[gen_ai.GEN_AI_PROVIDER_NAME] = provider
    return attrs


def _turn_end_attributes(bound: Bound) -> dict[str, Any]:
    attrs = response_attributes(bound.get("response_obj"))
    results = bound.get("tool_results")
    if isinstance(results, list | tuple):
        attrs["llmproc.tool_results"] = len(results)
    return attrs


_TOOL_ERROR = "tool returned an error"
"""The status description of a failed tool whose result names no error of its own."""


def _tool_failure(result: Any) -> BaseException | str | None:
    """A tool's failure: an exception as its result, or an ``is_error`` result's ``error``.

    The error (an exception, or its message) is recorded like any exception message: not
    content. The result's ``content`` is the tool's output, so it is content: it is recorded
    (as ``gen_ai.tool.call.result``) only on opt-in, never as the status description, which
    is then "tool returned an error".
    """
    if result is None or type(result) is str:
        return None
    if isinstance(result, BaseException):
        return result
    flag = result.get("is_error") if type(result) is dict else field(result, "is_error")
    if flag is True:
        detail = field(result, "error")
        if isinstance(detail, BaseException):
            return detail
        return safe_str(detail) if detail is not None else _TOOL_ERROR
    return None


def _chat_name(bound: Bound) -> str:
    model = field(bound.get("payload_dict"), "model")
    return f"chat {model}" if model else "chat"


LLMPROC = EventSet(
    "llmproc",
    [
        start(
            "tool_start",
            "tool_name",
            "tool_args",
            span_name="execute_tool {tool_name}",
            operation="execute_tool",
            attributes={
                "tool_name": gen_ai.GEN_AI_TOOL_NAME,
                "tool_args": gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS,
            },
            content={"tool_args"},
            key="tool_name",
            doc="A tool is about to be executed.",
        ),
        end(
            "tool_end",
            "tool_name",
            "result",
            attributes={
                "tool_name": gen_ai.GEN_AI_TOOL_NAME,
                "result": gen_ai.GEN_AI_TOOL_CALL_RESULT,
            },
            content={"result"},
            key="tool_name",
            error=FailureIn("result", _tool_failure),
            doc="A tool execution completed (an exception or an ``is_error`` result: span ERROR).",
        ),
        point(
            "response",
            "text",
            content={"text"},
            extract_content=lambda b: output_content(b.get("text")),
            doc="The model generated a response.",
        ),
        start(
            "api_request",
            "payload_dict",
            span_name=_chat_name,
            kind=SpanKind.CLIENT,
            operation="chat",
            extract=lambda b: request_attributes(b.get("payload_dict")),
            content={"payload_dict"},
            extract_content=lambda b: input_content(b.get("payload_dict")),
            doc="An API request is about to be sent.",
        ),
        end(
            "api_response",
            "response_obj",
            extract=lambda b: response_attributes(b.get("response_obj")),
            content={"response_obj"},
            extract_content=lambda b: output_content(b.get("response_obj")),
            doc="An API response was received.",
        ),
        start(
            "turn_start",
            "process",
            span_name=lambda b: f"invoke_agent {_agent_name(b.get('process'))}",
            operation="invoke_agent",
            extract=_turn_attributes,
            record_args=False,
            doc="A turn starts.",
        ),
        end(
            "turn_end",
            "process",
            "response_obj",
            "tool_results",
            extract=_turn_end_attributes,
            record_args=False,
            doc="A turn ends.",
        ),
        point("stderr_write", "text", content={"text"}, doc="Text was appended to the stderr log."),
    ],
    enum=CallbackEvent,
)


class LLMProcCallback:
    """Base for LLMProc-style class callbacks: one no-op method per :class:`CallbackEvent`.

    Override any; the manager calls only the methods a subclass defines (also accepted without
    the ``on_`` prefix, e.g. ``tool_start``). Methods may be sync or async.
    """

    def on_tool_start(self, tool_name: Any, tool_args: Any) -> Any: ...
    def on_tool_end(self, tool_name: Any, result: Any) -> Any: ...
    def on_response(self, text: Any) -> Any: ...
    def on_api_request(self, payload_dict: Any) -> Any: ...
    def on_api_response(self, response_obj: Any) -> Any: ...
    def on_turn_start(self, process: Any) -> Any: ...
    def on_turn_end(self, process: Any, response_obj: Any, tool_results: Any) -> Any: ...
    def on_stderr_write(self, text: Any) -> Any: ...
