"""Turning event payloads into span attributes that are bounded, valid and private by default.

Primitives are kept as they are; anything else is serialised to JSON that stays valid when it is
truncated. Values under sensitive keys (``api_key``, ``password``, ...) are redacted, and content
arguments (prompts, messages, tool arguments and results) are left out unless capture is on.
None of these functions raises: a value that cannot be represented becomes a placeholder.

Redaction of your own runs here too, so no span processor or exporter ever sees the original:
``redact_patterns`` (regular expressions; every match inside a string, a JSON document or a
string sequence becomes ``[REDACTED]`` before truncation) and ``redactor``, a callable
``(attribute key, value) -> value | None`` that sees each attribute as it would be recorded.
A redactor that raises fails closed: that attribute is dropped, counted and logged (rate
limited, with the exception's type only, never its message, which could quote the value).
"""

from __future__ import annotations

import datetime
import itertools
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any

from prometheus_client.core import Metric

from spanhooks.events.spec import Bound, EventSpec, Phase
from spanhooks.metrics.families import REDACTION_FAILURES, count_value, counter, register_source
from spanhooks.util.log import rate_limited

__all__ = [
    "REDACTED",
    "REDACT_PATTERN_ENV",
    "AttributePolicy",
    "Redactor",
    "active_policy",
    "capture_content_from_env",
    "coerce",
    "compile_redact_patterns",
    "redact_pattern_from_env",
    "redaction_failures_total",
    "safe_str",
    "set_active_policy",
    "to_json",
    "truncate",
]

AttributeValue = str | bool | int | float | tuple[str, ...] | tuple[int, ...] | tuple[float, ...]

REDACTED = "[REDACTED]"
UNREPRESENTABLE = "<unrepresentable>"
_SENSITIVE = re.compile(
    r"(?i)^(.*[_-])?(api[_-]?key|apikey|authorization|auth|password|passwd|secret|"
    r"client[_-]?secret|token|access[_-]?token|refresh[_-]?token|cookie|credentials?)$"
)
_MAX_DEPTH = 8
_MISSING = object()
_Plan = tuple[tuple[tuple[str, str, bool], ...], frozenset[str], bool]
"""How a policy records one event: its steps (argument, attribute key, redact), the names of
its declared arguments (anything else bound is an extra argument), and whether it records
nothing but extra arguments (no steps, no extractors): an end event that only repeats its
start's key and carries content, for example."""
_RESERVED_ATTRIBUTES = 3  # gen_ai.operation.name, error.type, spanhooks.abandoned
REDACT_PATTERN_ENV = "SPANHOOKS_REDACT_PATTERN"
"""One regular expression (alternatives joined with ``|``) redacted wherever it matches."""

Redactor = Callable[[str, Any], Any]
"""``(attribute key, value as it would be recorded) -> value to record, or None to drop it``."""


def compile_redact_patterns(
    patterns: Iterable[str | re.Pattern[str]] | str | re.Pattern[str] | None,
) -> re.Pattern[str] | None:
    """One compiled alternation of ``patterns`` (None when there are none).

    Raises TypeError for something that is not a str or compiled pattern, and ValueError for
    a pattern that does not compile or that matches the empty string (it would redact between
    every character).
    """
    if patterns is None:
        return None
    if isinstance(patterns, str | re.Pattern):
        patterns = [patterns]
    sources: list[str] = []
    for pattern in patterns:
        if isinstance(pattern, re.Pattern):
            if not isinstance(pattern.pattern, str):
                raise TypeError(f"redact patterns must match str, not bytes: {pattern!r}")
            letters = "".join(
                letter for flag, letter in _SCOPED_FLAGS if pattern.flags & flag
            )  # a compiled pattern keeps its flags inside the alternation
            source = f"(?{letters}:{pattern.pattern})" if letters else pattern.pattern
        elif isinstance(pattern, str):
            source = pattern
        else:
            raise TypeError(f"redact patterns must be str or re.Pattern, got {pattern!r}")
        try:
            compiled = re.compile(source)
        except re.error as error:
            raise ValueError(f"redact pattern {source!r} does not compile: {error}") from None
        if compiled.fullmatch(""):
            raise ValueError(f"redact pattern {source!r} matches the empty string")
        sources.append(f"(?:{source})")
    return re.compile("|".join(sources)) if sources else None


_SCOPED_FLAGS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"), (re.VERBOSE, "x"))


CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CAPTURE_VALUES = frozenset({"1", "true", "yes", "on", "span_only", "span_and_event", "event_only"})


def capture_content_from_env() -> bool:
    """Whether the GenAI content-capture switch is on (``true`` or a ``SPAN_*`` mode)."""
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in _CAPTURE_VALUES


def redact_pattern_from_env() -> re.Pattern[str] | None:
    """The pattern in ``SPANHOOKS_REDACT_PATTERN``, if set; ValueError if it is invalid.

    An invalid pattern is an error rather than a warning: ignoring it would record what the
    operator asked to hide.
    """
    raw = os.environ.get(REDACT_PATTERN_ENV, "")
    if not raw.strip():
        return None
    try:
        return compile_redact_patterns([raw])
    except ValueError as error:
        raise ValueError(f"{REDACT_PATTERN_ENV}: {error}") from None


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
    redactor: Redactor | None = None
    """Called as ``redactor(key, value)`` for every attribute of spans and span events that
    spanhooks builds, with the value as it would be recorded (after truncation and
    ``redact_patterns``); returns the value to record (coerced and bounded again) or None to
    leave the attribute out. If it raises, the attribute is dropped (fail closed), counted in
    :attr:`redaction_failures` and logged without the value. It runs on the emitting thread,
    so it must be thread-safe and fast."""
    redact_patterns: tuple[str | re.Pattern[str], ...] = ()
    """Regular expressions; each match in any recorded string (arguments, content, JSON
    documents, string sequences, span names, exception messages) becomes ``[REDACTED]``.
    Compiled once into one alternation when the policy is made."""

    _plans: dict[EventSpec, _Plan] = field(default_factory=dict, compare=False, repr=False)
    _pattern: re.Pattern[str] | None = field(default=None, init=False, compare=False, repr=False)
    _failures: itertools.count[int] = field(
        default_factory=itertools.count, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        """Validate and precompute, so building attributes does no configuration work."""
        if not isinstance(self.max_length, int) or self.max_length < 16:
            raise ValueError(f"max_length must be an int >= 16, got {self.max_length!r}")
        if not isinstance(self.max_attributes, int) or self.max_attributes <= _RESERVED_ATTRIBUTES:
            raise ValueError(
                f"max_attributes must be an int > {_RESERVED_ATTRIBUTES}, "
                f"got {self.max_attributes!r}"
            )
        if self.redactor is not None and not callable(self.redactor):
            raise TypeError(
                f"redactor must be callable (key, value) -> value | None, got {self.redactor!r}"
            )
        patterns = self.redact_patterns
        if isinstance(patterns, str | re.Pattern):
            patterns = (patterns,)
        patterns = tuple(patterns)
        object.__setattr__(self, "redact_patterns", patterns)
        object.__setattr__(self, "_pattern", compile_redact_patterns(patterns))
        object.__setattr__(
            self, "extra_sensitive", frozenset(k.lower() for k in self.extra_sensitive)
        )

    @property
    def redaction_failures(self) -> int:
        """Attributes dropped because the redactor raised (fail closed)."""
        return count_value(self._failures)

    def sensitive(self, key: str) -> bool:
        return self.redact_keys and (key.lower() in self.extra_sensitive or is_sensitive(key))

    def scrub(self, text: str) -> str:
        """``text`` with every ``redact_patterns`` match replaced by ``[REDACTED]``."""
        pattern = self._pattern
        return text if pattern is None else pattern.sub(REDACTED, text)

    def build(self, spec: EventSpec, bound: Bound) -> dict[str, AttributeValue]:
        """Attributes for one event: computed ids and counts first, then arguments, content last.

        The order matters because the SDK drops attributes past its count limit: what
        identifies a call must survive, bulky content may not. How each declared argument is
        recorded is planned once per event (see :meth:`_plan`), not worked out per emit.
        """
        steps, declared, silent = self._plans.get(spec) or self._plan(spec)
        if silent and declared.issuperset(bound):
            return {}
        attrs: dict[str, AttributeValue] = {}
        if spec.extract is not None:
            try:
                extracted = spec.extract(bound)
            except Exception:  # a payload shaped unlike the seed's: keep the other attributes
                extracted = {}
            for key, value in extracted.items():
                self._put(attrs, key, value)
        room = self.max_attributes - _RESERVED_ATTRIBUTES
        for arg, key, redact in steps:
            value = bound.get(arg, _MISSING)
            if value is _MISSING or len(attrs) >= room:
                continue
            if redact:
                attrs[key] = REDACTED
            else:
                coerced = coerce(value, self)
                if coerced is not None:
                    attrs[key] = coerced
        if spec.record_args and not declared.issuperset(bound):
            self._extra_arguments(declared, spec.event_set, bound, attrs, room)
        if self.capture_content and spec.extract_content is not None:
            try:
                extracted = spec.extract_content(bound)
            except Exception:
                extracted = {}
            for key, value in extracted.items():
                self._put(attrs, key, value)
        if self.redactor is not None:
            return self.redact(attrs)
        return attrs

    def redact(self, attrs: Mapping[str, Any]) -> dict[str, AttributeValue]:
        """Run the redactor over built attributes; what it returns is coerced and bounded."""
        redactor = self.redactor
        if redactor is None:
            return dict(attrs)
        kept: dict[str, AttributeValue] = {}
        for key, value in attrs.items():
            try:
                replaced = redactor(key, value)
            except Exception as error:  # fail closed: the value is dropped, never recorded
                next(self._failures)
                next(_all_failures)
                rate_limited.log(
                    logging.WARNING,
                    "redactor",
                    "redactor raised %s for attribute %r; the attribute was dropped",
                    type(error).__name__,
                    key,
                )
                continue
            if replaced is None:
                continue
            coerced = replaced if replaced is value else coerce(replaced, self)
            if coerced is not None:
                kept[key] = coerced
        return kept

    def _plan(self, spec: EventSpec) -> _Plan:
        """The declared arguments this policy records, as (argument, attribute key, redact),
        in recording order: semantic-convention names first, other arguments next, content
        last (left out unless captured); the set of declared argument names; and whether
        nothing but extra arguments can be recorded (see :data:`_Plan`)."""
        named: list[tuple[str, str, bool]] = []
        other: list[tuple[str, str, bool]] = []
        content: list[tuple[str, str, bool]] = []
        # An end's key argument equals its start's (that is how they were paired): recorded once.
        repeated = spec.key if spec.phase is Phase.END and isinstance(spec.key, str) else None
        for arg in spec.args:
            mapped = spec.attributes.get(arg)
            if arg == repeated or (mapped is None and not spec.record_args):
                continue
            key = mapped if mapped is not None else f"{spec.event_set}.{arg}"
            if arg in spec.content:
                if self.capture_content:
                    content.append((arg, key, False))
                continue
            (named if mapped is not None else other).append((arg, key, self.sensitive(arg)))
        steps = (*named, *other, *content)
        extracts = spec.extract is not None or (
            self.capture_content and spec.extract_content is not None
        )
        plan = (steps, frozenset(spec.args), not steps and not extracts)
        self._plans[spec] = plan
        return plan

    def _extra_arguments(
        self,
        declared: frozenset[str],
        event_set: str,
        bound: Bound,
        attrs: dict[str, AttributeValue],
        room: int,
    ) -> None:
        """Arguments the declaration does not name (extra positionals, unknown keywords)."""
        for arg, value in bound.items():
            if arg in declared or len(attrs) >= room:
                continue
            key = f"{event_set}.{arg}"
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
    if isinstance(value, str):  # the common case first
        if policy._pattern is not None:
            value = policy._pattern.sub(REDACTED, value)
        return truncate(value, policy.max_length)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _INT64_MAX else _big_int(value, policy.max_length)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Enum):
        return coerce(value.value, policy)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, datetime.date | datetime.time):
        return truncate(value.isoformat(), policy.max_length)
    if isinstance(value, list | tuple) and value and len(value) <= 128:
        homogeneous = _primitive_sequence(value, policy)
        if homogeneous is not None:
            return homogeneous
    if isinstance(value, Mapping | list | tuple | set | frozenset) or (
        is_dataclass(value) and not isinstance(value, type)
    ):
        return to_json(value, policy)
    return truncate(policy.scrub(safe_str(value)), policy.max_length)


def _primitive_sequence(
    value: list[Any] | tuple[Any, ...], policy: AttributePolicy
) -> AttributeValue | None:
    first = type(value[0])
    if first not in (str, int, float) or any(type(item) is not first for item in value):
        return None
    if first is str:
        limit = policy.max_length
        return tuple(truncate(policy.scrub(item), limit) for item in value)
    if first is float and not all(math.isfinite(item) for item in value):
        return None
    if first is int and not all(_INT64_MIN <= item <= _INT64_MAX for item in value):
        return None
    return tuple(value)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
"""OTLP carries int64: a larger int would make the exporter drop the attribute (and log it)."""


def _big_int(value: int, limit: int) -> str:
    """An int beyond int64 as text (``str`` itself refuses past 4,300 digits)."""
    try:
        return truncate(str(value), limit)
    except ValueError:
        return f"<int of {value.bit_length()} bits>"


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


# What spanhooks records outside an event's own attributes (callback failures, handled errors)
# follows the policy setup() installed; replaced whole, never mutated, so read without a lock.
_active = AttributePolicy()
_all_failures = itertools.count()


def active_policy() -> AttributePolicy:
    """The policy installed by :func:`spanhooks.setup` (defaults until then)."""
    return _active


def set_active_policy(policy: AttributePolicy) -> AttributePolicy:
    """Install ``policy`` process-wide; returns the one it replaces."""
    global _active
    previous, _active = _active, policy
    return previous


def redaction_failures_total() -> int:
    """Attributes dropped in this process because a redactor raised, under every policy."""
    return count_value(_all_failures)


class _RedactionFailures:
    """Puts :func:`redaction_failures_total` on ``/metrics``."""

    def metric_families(self) -> Iterable[Metric]:
        yield counter(REDACTION_FAILURES, [((), float(redaction_failures_total()))])


_SOURCE = _RedactionFailures()
register_source(_SOURCE)


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
        if len(wrapped) <= limit:
            return wrapped
        if not preview:  # a limit too small for the wrapper: still valid JSON, still bounded
            return _TRUNCATED_JSON
        preview = preview[: len(preview) - (len(wrapped) - limit) - 1]


_TRUNCATED_JSON = json.dumps("<truncated>")  # 13 characters: within the smallest limit (16)


def _plain(value: Any, policy: AttributePolicy, depth: int, seen: set[int]) -> Any:
    """A JSON-ready copy: cycles, depth, odd floats, bytes and failing ``__repr__`` handled."""
    if isinstance(value, str):
        return value if policy._pattern is None else policy._pattern.sub(REDACTED, value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _INT64_MAX else _big_int(value, policy.max_length)
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
                policy.scrub(safe_str(k)): REDACTED
                if policy.sensitive(safe_str(k))
                else _plain(v, policy, depth + 1, seen)
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
        return policy.scrub(safe_str(value))
    finally:
        seen.discard(id(value))


def safe_str(value: object) -> str:
    """``str(value)``, or a placeholder naming its type when ``__str__`` raises."""
    try:
        return str(value)
    except Exception:
        try:
            return f"<{type(value).__name__}>"
        except Exception:
            return UNREPRESENTABLE
