"""A finished span with every string it carries scrubbed of the redaction pattern: its name,
attribute keys and values, span events, links and status description.

Spans spanhooks builds are scrubbed as they are made, by their manager's attribute policy; this
is the last pass, on the way out, for everything else a spanhooks pipeline exports: spans of
other instrumentations (the OpenAI client's, a framework's), and spans of managers that
:func:`spanhooks.setup` did not configure. It costs one regular-expression search over the
span's strings when nothing matches, and a copy of the span only when something does.
Pure function, safe from any thread.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, Status

from spanhooks.util.readable import replaced
from spanhooks.util.redaction import REDACTED

__all__ = ["redacted"]

_SEPARATOR = "\x00"  # between the strings searched at once: no pattern of text spans it


def redacted(span: ReadableSpan, pattern: re.Pattern[str]) -> ReadableSpan:
    """``span`` itself when ``pattern`` matches none of its strings, else a scrubbed copy."""
    if pattern.search(_SEPARATOR.join(_strings(span))) is None:
        return span
    status = span.status
    if status.description:
        status = Status(status.status_code, pattern.sub(REDACTED, status.description))
    return replaced(
        span,
        name=pattern.sub(REDACTED, span.name),
        attributes=_scrubbed(span.attributes, pattern),
        events=[
            Event(
                pattern.sub(REDACTED, event.name),
                _scrubbed(event.attributes, pattern),
                event.timestamp,
            )
            for event in span.events
        ],
        links=[Link(link.context, _scrubbed(link.attributes, pattern)) for link in span.links],
        status=status,
    )


def _strings(span: ReadableSpan) -> Iterator[str]:
    yield span.name
    if span.status.description:
        yield span.status.description
    yield from _attribute_strings(span.attributes)
    for event in span.events:
        yield event.name
        yield from _attribute_strings(event.attributes)
    for link in span.links:
        yield from _attribute_strings(link.attributes)


def _attribute_strings(attributes: Mapping[str, Any] | None) -> Iterator[str]:
    if not attributes:
        return
    for key, value in attributes.items():
        yield key
        if type(value) is str:
            yield value
        elif type(value) is tuple:
            yield from (item for item in value if type(item) is str)


def _scrubbed(attributes: Mapping[str, Any] | None, pattern: re.Pattern[str]) -> dict[str, Any]:
    if not attributes:
        return {}
    return {pattern.sub(REDACTED, key): _value(value, pattern) for key, value in attributes.items()}


def _value(value: Any, pattern: re.Pattern[str]) -> Any:
    if type(value) is str:
        return pattern.sub(REDACTED, value)
    if type(value) is tuple:
        return tuple(pattern.sub(REDACTED, v) if type(v) is str else v for v in value)
    return value
