"""Content as the GenAI conventions' log event, in setup's pipeline, for the ``EVENT_ONLY`` and
``SPAN_AND_EVENT`` capture modes.

As each spanhooks model-call span ends, :class:`ContentEvents` sends one
``gen_ai.client.inference.operation.details`` event through the OpenTelemetry Logs API (as
opentelemetry-util-genai does): the call's metadata (operation, model, provider, response id,
finish reasons, token usage) and its content (``gen_ai.input.messages``,
``gen_ai.output.messages``, ``gen_ai.system_instructions``, ``gen_ai.tool.definitions``) as
structured values, tied to the span by its trace and span ids. In ``EVENT_ONLY`` mode the span
then leaves the pipeline without its content (tool arguments and results, retrieval queries
and documents, and content on span events included), so exporters and processors see none of
it. Content was built, bounded and redacted by the attribute policy before it got here, and
the pipeline's last redaction pass has run: the event carries the same scrubbed text.

Spans of other instrumentations pass untouched: those that follow the conventions read the
same environment variable and send their own events. Threading: runs in the thread that ends
the span; the logger's batch processor exports on its own thread.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import NonRecordingSpan

from spanhooks.events.scope import event_set_of
from spanhooks.tracing.attributes import ContentCapture
from spanhooks.util.readable import replaced

if TYPE_CHECKING:
    from opentelemetry._logs import Logger

__all__ = [
    "CONTENT_ATTRIBUTES",
    "INFERENCE_DETAILS_EVENT",
    "INPUT_MESSAGES",
    "MESSAGE_ATTRIBUTES",
    "OUTPUT_MESSAGES",
    "SYSTEM_INSTRUCTIONS",
    "TOOL_DEFINITIONS",
    "ContentEvents",
    "structured",
]

INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
TOOL_DEFINITIONS = "gen_ai.tool.definitions"
MESSAGE_ATTRIBUTES = frozenset(
    {INPUT_MESSAGES, OUTPUT_MESSAGES, SYSTEM_INSTRUCTIONS, TOOL_DEFINITIONS}
)
"""The conventions' content attributes whose values are JSON documents of messages or parts
(built by :mod:`spanhooks.vocab._messages`)."""

INFERENCE_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
"""The conventions' event for one inference call with its content (GenAI events, 1.37+)."""

CONTENT_ATTRIBUTES = MESSAGE_ATTRIBUTES | {
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.retrieval.query.text",
    "gen_ai.retrieval.documents",
}
"""Every attribute spanhooks records only when content is captured."""

_INFERENCE = frozenset({"chat", "text_completion", "generate_content"})
_DETAILS = (
    "gen_ai.operation.name",
    "gen_ai.request.model",
    "gen_ai.provider.name",
    "gen_ai.request.temperature",
    "gen_ai.request.max_tokens",
    "gen_ai.request.top_p",
    "gen_ai.request.top_k",
    "gen_ai.response.id",
    "gen_ai.response.model",
    "gen_ai.response.finish_reasons",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.conversation.id",
    "server.address",
    "server.port",
    "error.type",
)


class ContentEvents:
    """Sends each model call's content event to ``logger`` and, unless ``mode`` keeps content
    on spans, hands the pipeline the span without it; :attr:`sent` counts the events (pass
    the logs pipeline's own count, so that what it did not export shows as unsent)."""

    def __init__(
        self,
        mode: ContentCapture,
        logger: Logger | None,
        sent: itertools.count[int] | None = None,
    ) -> None:
        self.mode = mode
        self.logger = logger if mode.in_events else None
        self.strip = not mode.on_spans
        self.sent = sent if sent is not None else itertools.count()

    def __call__(self, span: ReadableSpan) -> ReadableSpan:
        attributes = span.attributes
        if not attributes or event_set_of(span) is None:
            return span
        if self.logger is not None and attributes.get("gen_ai.operation.name") in _INFERENCE:
            self._send(span, attributes)
        if self.strip and _has_content(span):
            return _without_content(span)
        return span

    def _send(self, span: ReadableSpan, attributes: Mapping[str, Any]) -> None:
        from opentelemetry._logs import LogRecord  # the logs API, only once events are on

        assert self.logger is not None
        details: dict[str, Any] = {key: attributes[key] for key in _DETAILS if key in attributes}
        for key in MESSAGE_ATTRIBUTES:
            if key in attributes:
                details[key] = structured(attributes[key])
        context = trace.set_span_in_context(NonRecordingSpan(span.context))
        self.logger.emit(
            LogRecord(
                timestamp=span.end_time,
                context=context,
                event_name=INFERENCE_DETAILS_EVENT,
                attributes=details,
            )
        )
        next(self.sent)


def structured(value: Any) -> Any:
    """A JSON attribute as the structure it encodes (a log record's attributes may nest)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _has_content(span: ReadableSpan) -> bool:
    if not CONTENT_ATTRIBUTES.isdisjoint(span.attributes or {}):
        return True
    return any(not CONTENT_ATTRIBUTES.isdisjoint(event.attributes or {}) for event in span.events)


def _kept(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (attributes or {}).items() if k not in CONTENT_ATTRIBUTES}


def _without_content(span: ReadableSpan) -> ReadableSpan:
    return replaced(
        span,
        attributes=_kept(span.attributes),
        events=[Event(e.name, _kept(e.attributes), e.timestamp) for e in span.events],
    )
