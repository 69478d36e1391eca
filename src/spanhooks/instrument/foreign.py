"""Callbacks for GenAI spans that other instrumentations make.

A span from another instrumentation (opentelemetry-instrumentation-openai-v2 calling a chat
model, an agent framework running a tool) that follows the OpenTelemetry GenAI conventions
reaches the user's callbacks as the matching event of the ``genai`` set: a model call as
``llm_start``/``llm_end`` with the model, provider and token usage, a tool call as
``tool_call_start``/``tool_call_end``, an agent invocation as ``agent_start``/``agent_end``.
Callbacks of every style receive them as they receive spanhooks' own events; the span itself
is already OpenTelemetry data, so nothing new is recorded (:meth:`CallbackManager.notify`).
spanhooks' own spans are skipped: their events were dispatched when they were emitted.

Content (tool arguments and results; the conventions' ``gen_ai.input.messages`` and
``gen_ai.output.messages`` as ``messages`` of the request and response, parsed from their JSON)
is passed to callbacks only when the manager captures content; the metadata (model, usage,
finish reasons, ids) always is.

Threading contract: ``on_start`` runs in the thread that started the span, ``on_end`` in the one
that ended it; callbacks run there, isolated by the dispatch core.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from spanhooks.callbacks.manager import CallbackManager
from spanhooks.events.scope import event_set_of
from spanhooks.tracing.content_events import structured
from spanhooks.tracing.stacked import STACKED_ATTRIBUTE
from spanhooks.vocab.genai import GenAIEvent

__all__ = ["ForeignSpanBridge"]

_MODEL_CALLS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
_AGENT_CALLS = frozenset({"invoke_agent", "create_agent"})
_REQUEST_KEYS = {
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.request.top_k": "top_k",
    "gen_ai.request.seed": "seed",
    "gen_ai.request.stop_sequences": "stop",
}
_USAGE_KEYS = {
    "gen_ai.usage.input_tokens": "input_tokens",
    "gen_ai.usage.prompt_tokens": "input_tokens",  # the conventions' older names
    "gen_ai.usage.output_tokens": "output_tokens",
    "gen_ai.usage.completion_tokens": "output_tokens",
}


class ForeignSpanBridge(SpanProcessor):
    """Dispatches the ``genai`` events for other instrumentations' GenAI spans to ``manager``.

    ``setup()`` adds one for the process-wide manager (``setup(foreign_spans=False)`` or
    ``SPANHOOKS_FOREIGN_SPANS=false`` turns it off); add your own with
    ``provider.add_span_processor(ForeignSpanBridge(manager))``.
    """

    def __init__(self, manager: CallbackManager) -> None:
        if not isinstance(manager, CallbackManager):
            raise TypeError(f"manager must be a CallbackManager, got {manager!r}")
        self.manager = manager

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        operation = _operation(span)
        if operation is None:
            return
        attributes = span.attributes or {}
        manager = self.manager
        if operation in _MODEL_CALLS:
            if manager.has_callbacks(GenAIEvent.LLM_START):
                request = _request(attributes)
                messages = self._content(attributes, "gen_ai.input.messages")
                if messages is not None:
                    request["messages"] = structured(messages)
                manager.notify(
                    GenAIEvent.LLM_START,
                    _model(attributes, "gen_ai.request.model"),
                    request,
                    _provider(attributes),
                    operation,
                    span=span,
                )
        elif operation == "execute_tool":
            if manager.has_callbacks(GenAIEvent.TOOL_CALL_START):
                arguments = self._content(attributes, "gen_ai.tool.call.arguments")
                manager.notify(GenAIEvent.TOOL_CALL_START, _tool(attributes), arguments, span=span)
        elif operation in _AGENT_CALLS and manager.has_callbacks(GenAIEvent.AGENT_START):
            manager.notify(GenAIEvent.AGENT_START, _agent(attributes), {}, span=span)

    def on_end(self, span: ReadableSpan) -> None:
        operation = _operation(span)
        if operation is None:
            return
        attributes = span.attributes or {}
        manager = self.manager
        error = _error(span)
        if operation in _MODEL_CALLS:
            if manager.has_callbacks(GenAIEvent.LLM_END):
                model = _model(attributes, "gen_ai.response.model", "gen_ai.request.model")
                response = _response(attributes)
                messages = self._content(attributes, "gen_ai.output.messages")
                if messages is not None:
                    response["messages"] = structured(messages)
                manager.notify(GenAIEvent.LLM_END, model, response, error)
        elif operation == "execute_tool":
            if manager.has_callbacks(GenAIEvent.TOOL_CALL_END):
                result = self._content(attributes, "gen_ai.tool.call.result")
                manager.notify(GenAIEvent.TOOL_CALL_END, _tool(attributes), result, error)
        elif operation in _AGENT_CALLS and manager.has_callbacks(GenAIEvent.AGENT_END):
            manager.notify(GenAIEvent.AGENT_END, _agent(attributes), None, error)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def _content(self, attributes: Mapping[str, Any], key: str) -> Any:
        return attributes.get(key) if self.manager.capture_content else None


def _operation(span: ReadableSpan) -> str | None:
    """The GenAI operation of a span some other instrumentation made, else None."""
    if event_set_of(span) is not None:  # first: spanhooks' own spans are most, and it is cheap
        return None
    attributes = span.attributes
    if not attributes:
        return None
    operation = attributes.get("gen_ai.operation.name")
    if not isinstance(operation, str):
        return None
    if attributes.get(STACKED_ATTRIBUTE) == "inner":  # a call spanhooks' own span dispatched
        return None
    return operation


def _model(attributes: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _provider(attributes: Mapping[str, Any]) -> str | None:
    return _model(attributes, "gen_ai.provider.name", "gen_ai.system")


def _tool(attributes: Mapping[str, Any]) -> str:
    return _model(attributes, "gen_ai.tool.name") or "tool"


def _agent(attributes: Mapping[str, Any]) -> str:
    return _model(attributes, "gen_ai.agent.name") or "agent"


def _request(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Request settings by their usual argument names (``temperature``, ``max_tokens``...)."""
    request = {name: attributes[key] for key, name in _REQUEST_KEYS.items() if key in attributes}
    model = attributes.get("gen_ai.request.model")
    if model is not None:
        request["model"] = model
    return request


def _response(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The response's metadata in the shape spanhooks' GenAI helpers read: id, model, finish
    reasons and ``usage`` with ``input_tokens``/``output_tokens``."""
    response: dict[str, Any] = {}
    for key, name in (("gen_ai.response.id", "id"), ("gen_ai.response.model", "model")):
        if key in attributes:
            response[name] = attributes[key]
    reasons = attributes.get("gen_ai.response.finish_reasons")
    if reasons:
        response["choices"] = [{"finish_reason": reason} for reason in reasons]
    usage = {name: attributes[key] for key, name in _USAGE_KEYS.items() if key in attributes}
    if usage:
        response["usage"] = usage
    return response


def _error(span: ReadableSpan) -> str | None:
    if span.status.status_code is not StatusCode.ERROR:
        return None
    attributes = span.attributes or {}
    kind = attributes.get("error.type")
    if isinstance(kind, str) and kind.startswith("<class '") and kind.endswith("'>"):
        kind = kind[8:-2]  # str(type(exc)) as some instrumentations record it
    detail = span.status.description
    if kind and detail:
        return f"{kind}: {detail}"
    return str(kind or detail or "error")
