"""How large the names and texts spanhooks records may be, whatever the payload: span and span
event names, attribute keys, status descriptions.

Within bounds a cut costs one ``len()``; past them the text is cut with an ellipsis
(:func:`spanhooks.util.text.truncate`). Attribute values have their own limit, the policy's
``max_length`` (:class:`spanhooks.AttributePolicy`).
"""

from __future__ import annotations

from spanhooks.util.text import truncate

__all__ = [
    "MAX_ATTRIBUTE_KEY_LENGTH",
    "MAX_SPAN_NAME_LENGTH",
    "MAX_STATUS_DESCRIPTION_LENGTH",
    "bounded_key",
    "bounded_name",
]

MAX_SPAN_NAME_LENGTH = 256
"""Characters in a span name or span event name, however it was built (a template such as
``execute_tool {tool_name}``, a namer function, a declaration).

Backends group, index and list spans by name, and the conventions ask for a low-cardinality
``{operation} {target}`` of a few dozen characters. 256 keeps every such name whole (a
200-character tool or model name included), while a 10 MB tool name no longer makes every span,
JSONL line and OTLP request 10 MB; the full value, cut to ``max_length``, stays in its attribute
(``gen_ai.tool.name``). Some backends keep fewer characters still, so a longer limit would
mostly carry text that is dropped later."""

MAX_ATTRIBUTE_KEY_LENGTH = 128
"""Characters in an attribute key. Declared keys are semantic-convention names (all under 64
characters) or ``<set>.<argument>``; the keys that come from user input are those of extra
keyword arguments and of user extractors, and none of them needs more than this."""

MAX_STATUS_DESCRIPTION_LENGTH = 1024
"""Characters in a span status description (``ValueError: message``): a human-readable summary;
the whole message, cut to ``max_length``, is in the ``exception`` event."""


def bounded_name(name: str) -> str:
    """A span or span event name cut to :data:`MAX_SPAN_NAME_LENGTH`."""
    return name if len(name) <= MAX_SPAN_NAME_LENGTH else truncate(name, MAX_SPAN_NAME_LENGTH)


def bounded_key(key: str) -> str:
    """An attribute key cut to :data:`MAX_ATTRIBUTE_KEY_LENGTH`."""
    if len(key) <= MAX_ATTRIBUTE_KEY_LENGTH:
        return key
    return truncate(key, MAX_ATTRIBUTE_KEY_LENGTH)
