"""A finished span copied with some of its parts replaced: how setup's pipeline changes what
its processors and exporters see (a scrubbed span, a priced one, one without content, a child
re-parented) without touching the span the SDK ended, which other processors also hold.

Pure function, safe from any thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, SpanContext, Status

__all__ = ["replaced"]

_KEEP: Any = object()


def replaced(
    span: ReadableSpan,
    *,
    name: str = _KEEP,
    parent: SpanContext | None = _KEEP,
    attributes: Mapping[str, Any] = _KEEP,
    events: Sequence[Event] = _KEEP,
    links: Sequence[Link] = _KEEP,
    status: Status = _KEEP,
) -> ReadableSpan:
    """``span`` with the given parts in place of its own; every other part is the same."""
    return ReadableSpan(
        name=span.name if name is _KEEP else name,
        context=span.context,
        parent=span.parent if parent is _KEEP else parent,
        resource=span.resource,
        attributes=span.attributes if attributes is _KEEP else attributes,
        events=span.events if events is _KEEP else events,
        links=span.links if links is _KEEP else links,
        kind=span.kind,
        status=span.status if status is _KEEP else status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
