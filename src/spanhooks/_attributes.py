"""Turning event payloads into span attributes that are bounded, valid and private by default.

Primitives are kept as they are; anything else is serialised to JSON that stays valid when it is
truncated. Values under sensitive keys (``api_key``, ``password``, ...) are redacted, and content
arguments (prompts, messages, tool arguments and results) are left out unless capture is on.
None of these functions raises: a value that cannot be represented becomes a placeholder.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any

from spanhooks._events import Bound, EventSpec, Phase

__all__ = ["AttributePolicy", "coerce", "to_json"]

AttributeValue = str | bool | int | float | tuple[str, ...] | tuple[int, ...] | tuple[float, ...]

REDACTED = "[REDACTED]"
UNREPRESENTABLE = "<unrepresentable>"
_SENSITIVE = re.compile(
    r"(?i)^(.*[_-])?(api[_-]?key|apikey|authorization|auth|password|passwd|secret|"
    r"client[_-]?secret|token|access[_-]?token|refresh[_-]?token|cookie|credentials?)$"
)
_MAX_DEPTH = 8
_MISSING = object()
_PUT, _REDACT, _SKIP = 0, 1, 2
_RESERVED_ATTRIBUTES = 3  # gen_ai.operation.name, error.type, spanhooks.abandoned


def is_sensitive(key: str) -> bool:
    """True for keys whose values are redacted by default (``api_key``, ``token``, ...)."""
    return bool(_SENSITIVE.match(key))


@dataclass(frozen=True)
class AttributePolicy:
    """What may be recorded and how large it may be; immutable, so emit reads it lock-free."""

    capture_content: bool = False
    max_length: int = 4096
    max_attributes: int = 128
    """Attributes per event; past it, arguments and content are left out but ids are kept.

    The SDK evicts the oldest attribute when a span is full, which would drop ids first; so
    spanhooks stops short of the limit itself, keeping room for the attributes it adds.
    """
    redact_keys: bool = True
    extra_sensitive: frozenset[str] = field(default_factory=frozenset)

    _plans: dict[EventSpec, tuple[tuple[str, str, int], ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def sensitive(self, key: str) -> bool:
        return self.redact_keys and (key.lower() in self.extra_sensitive or is_sensitive(key))

    def build(self, spec: EventSpec, bound: Bound) -> dict[str, AttributeValue]:
        """Attributes for one event: computed ids and counts first, then arguments, content last.

        The order matters because the SDK drops attributes past its count limit: what
        identifies a call must survive, bulky content may not. How each declared argument is
        recorded is planned once per event (see :meth:`_plan`), not worked out per emit.
        """
        attrs: dict[str, AttributeValue] = {}
        if spec.extract is not None:
            try:
                extracted = spec.extract(bound)
            except Exception:  # a payload shaped unlike the seed's: keep the other attributes
                extracted = {}
            for key, value in extracted.items():
                self._put(attrs, key, value)
        room = self.max_attributes - _RESERVED_ATTRIBUTES
        seen = 0
        plan = self._plans.get(spec)
        if plan is None:
            plan = self._plan(spec)
        for arg, key, how in plan:
            value = bound.get(arg, _MISSING)
            if value is _MISSING:
                continue
            seen += 1
            if how is _SKIP or len(attrs) >= room:
                continue
            if how is _REDACT:
                attrs[key] = REDACTED
            else:
                self._put(attrs, key, value)
        if len(bound) > seen and spec.record_args:
            self._extra_arguments(spec, bound, attrs, room)
        if self.capture_content and spec.extract_content is not None:
            try:
                extracted = spec.extract_content(bound)
            except Exception:
                extracted = {}
            for key, value in extracted.items():
                self._put(attrs, key, value)
        return attrs

    def _plan(self, spec: EventSpec) -> tuple[tuple[str, str, int], ...]:
        """(argument, attribute key, how) for each declared argument, in recording order:
        semantic-convention names first, other arguments next, content last (skipped unless
        captured)."""
        named: list[tuple[str, str, int]] = []
        other: list[tuple[str, str, int]] = []
        content: list[tuple[str, str, int]] = []
        # An end's key argument equals its start's (that is how they were paired): recorded once.
        repeated = spec.key if spec.phase is Phase.END and isinstance(spec.key, str) else None
        for arg in spec.args:
            mapped = spec.attributes.get(arg)
            if arg == repeated:
                other.append((arg, "", _SKIP))
                continue
            if mapped is None and not spec.record_args:
                continue
            key = mapped if mapped is not None else f"{spec.event_set}.{arg}"
            if arg in spec.content:
                content.append((arg, key, _PUT if self.capture_content else _SKIP))
                continue
            how = _REDACT if self.sensitive(arg) else _PUT
            (named if mapped is not None else other).append((arg, key, how))
        plan = (*named, *other, *content)
        self._plans[spec] = plan
        return plan

    def _extra_arguments(
        self, spec: EventSpec, bound: Bound, attrs: dict[str, AttributeValue], room: int
    ) -> None:
        """Arguments the declaration does not name (extra positionals, unknown keywords)."""
        for arg, value in bound.items():
            if arg in spec.args or len(attrs) >= room:
                continue
            key = f"{spec.event_set}.{arg}"
            if self.sensitive(arg):
                attrs[key] = REDACTED
            else:
                self._put(attrs, key, value)

    def _put(self, attrs: dict[str, AttributeValue], key: str, value: Any) -> None:
        coerced = coerce(value, self)
        if coerced is not None:
            attrs[key] = coerced


def coerce(value: Any, policy: AttributePolicy) -> AttributeValue | None:
    """One attribute value within the policy's length limit, or None to leave the key out."""
    if value is None:
        return None
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _truncate(value, policy.max_length)
    if isinstance(value, Enum):
        return coerce(value.value, policy)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list | tuple) and value and len(value) <= 128:
        homogeneous = _primitive_sequence(value, policy.max_length)
        if homogeneous is not None:
            return homogeneous
    if isinstance(value, Mapping | list | tuple | set | frozenset) or (
        is_dataclass(value) and not isinstance(value, type)
    ):
        return to_json(value, policy)
    return _truncate(_safe_str(value), policy.max_length)


def _primitive_sequence(value: list[Any] | tuple[Any, ...], limit: int) -> AttributeValue | None:
    first = type(value[0])
    if first not in (str, int, float) or any(type(item) is not first for item in value):
        return None
    if first is str:
        return tuple(_truncate(item, limit) for item in value)
    if first is float and not all(math.isfinite(item) for item in value):
        return None
    return tuple(value)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def to_json(value: Any, policy: AttributePolicy) -> str:
    """Serialise any object to JSON no longer than ``policy.max_length``, still valid JSON."""
    try:
        text = json.dumps(
            _plain(value, policy, 0, set()),
            ensure_ascii=False,
            separators=(",", ":"),
            allow_nan=False,
        )
    except Exception:
        text = json.dumps(UNREPRESENTABLE)
    limit = policy.max_length
    if len(text) <= limit:
        return text
    preview = text[: max(0, limit - 40)]
    while True:
        wrapped = json.dumps({"truncated": len(text), "preview": preview}, ensure_ascii=False)
        if len(wrapped) <= limit or not preview:
            return wrapped
        preview = preview[: len(preview) - (len(wrapped) - limit) - 1]


def _plain(value: Any, policy: AttributePolicy, depth: int, seen: set[int]) -> Any:
    """A JSON-ready copy: cycles, depth, odd floats, bytes and failing ``__repr__`` handled."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Enum):
        return _plain(value.value, policy, depth, seen)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if depth >= _MAX_DEPTH:
        return "<max depth>"
    if id(value) in seen:
        return "<cycle>"
    seen.add(id(value))
    try:
        if isinstance(value, Mapping):
            return {
                str(k): REDACTED if policy.sensitive(str(k)) else _plain(v, policy, depth + 1, seen)
                for k, v in list(value.items())[:256]
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [_plain(v, policy, depth + 1, seen) for v in list(value)[:256]]
        if is_dataclass(value) and not isinstance(value, type):
            return {
                f.name: REDACTED
                if policy.sensitive(f.name)
                else _plain(getattr(value, f.name, None), policy, depth + 1, seen)
                for f in fields(value)
            }
        return _safe_str(value)
    finally:
        seen.discard(id(value))


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        try:
            return f"<{type(value).__name__}>"
        except Exception:
            return UNREPRESENTABLE
