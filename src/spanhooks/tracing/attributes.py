"""Turning event payloads into span attributes that are bounded, valid and private by default.

Primitives are kept as they are; anything else is serialised to JSON that stays valid when it is
truncated. Values under sensitive keys (``api_key``, ``password``, ...) are redacted, and content
arguments (prompts, messages, tool arguments and results) are left out unless capture is on.
None of these functions raises: a value that cannot be represented becomes a placeholder.

Payloads that fight back are read without running their code where possible: types are tested
with ``type(value)`` (``isinstance`` would call an instance's ``__getattribute__``), a str, int
or float subclass is copied through the base type's own method, and whatever user code does run
(``__str__``, ``__iter__``, ``items()``, a dataclass field) runs under ``except Exception``, so
an object whose dunders raise is recorded as ``<unrepresentable TYPE>``. KeyboardInterrupt,
SystemExit and cancellation are not Exceptions: they still propagate.

Bounds: each value to ``max_length`` characters (a sequence's strings together), at most
``max_attributes`` per span or span event, and keys as :mod:`spanhooks.tracing.bounds` says.

Redaction of your own runs here too, so no span processor or exporter ever sees the original:
``redact_patterns`` (regular expressions; every match inside a string, a JSON document or a
string sequence becomes ``[REDACTED]`` before truncation) and ``redactor``, a callable
``(attribute key, value) -> value | None`` that sees each attribute as it would be recorded.
A redactor that raises fails closed: that attribute is dropped, counted and logged (rate
limited, with the exception's type only, never its message, which could quote the value).
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from prometheus_client.core import Metric

from spanhooks.events.spec import Bound, EventSpec, Phase
from spanhooks.metrics.families import REDACTION_FAILURES, count_value, counter, register_source
from spanhooks.tracing.bounds import MAX_ATTRIBUTE_KEY_LENGTH, bounded_key
from spanhooks.util.log import rate_limited
from spanhooks.util.redaction import (
    REDACTED,
    compile_redact_patterns,
    install_pattern,
    is_sensitive,
)
from spanhooks.util.text import safe_str, truncate, type_name, unrepresentable

__all__ = [
    "AttributePolicy",
    "ContentCapture",
    "Redactor",
    "active_policy",
    "capture_content_from_env",
    "coerce",
    "content_capture",
    "from_positions",
    "redaction_failures_total",
    "set_active_policy",
    "to_json",
]

AttributeValue = str | bool | int | float | tuple[str, ...] | tuple[int, ...] | tuple[float, ...]

_MAX_DEPTH = 8
_MISSING = object()
_Plan = tuple[tuple[tuple[str, str, bool], ...], frozenset[str], bool]
"""How a policy records one event: its steps (argument, attribute key, redact), the names of
its declared arguments (anything else bound is an extra argument), and whether it records
nothing but extra arguments (no steps, no extractors): an end event that only repeats its
start's key and carries content, for example."""
_RESERVED_ATTRIBUTES = 3  # gen_ai.operation.name, error.type, spanhooks.abandoned
_SENSITIVITY_CACHE = 4096  # keys whose sensitivity a policy remembers

Redactor = Callable[[str, Any], Any]
"""``(attribute key, value as it would be recorded) -> value to record, or None to drop it``."""


CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


class ContentCapture(str, Enum):
    """Where prompt and completion content goes, as opentelemetry-util-genai's
    ``ContentCapturingMode`` names it: nowhere (the default), on spans, only in the
    conventions' ``gen_ai.client.inference.operation.details`` log event, or both."""

    NO_CONTENT = "no_content"
    SPAN_ONLY = "span_only"
    EVENT_ONLY = "event_only"
    SPAN_AND_EVENT = "span_and_event"

    @property
    def on_spans(self) -> bool:
        return self in (ContentCapture.SPAN_ONLY, ContentCapture.SPAN_AND_EVENT)

    @property
    def in_events(self) -> bool:
        return self in (ContentCapture.EVENT_ONLY, ContentCapture.SPAN_AND_EVENT)


_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"", "0", "false", "no", "off"})


def content_capture(value: bool | str | ContentCapture | None) -> ContentCapture:
    """``value`` as a mode: True is ``SPAN_ONLY``, False ``NO_CONTENT``, a string a mode's name
    in any case (``span_and_event``) or a boolean word; None reads
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``. Raises ``ValueError`` for a value
    that is none of these (an environment value is logged and taken as ``NO_CONTENT``)."""
    if value is None:
        raw = os.environ.get(CAPTURE_CONTENT_ENV, "")
        try:
            return content_capture(raw)
        except ValueError as error:
            rate_limited.log(logging.WARNING, "capture-env", "%s: %s", CAPTURE_CONTENT_ENV, error)
            return ContentCapture.NO_CONTENT
    if isinstance(value, ContentCapture):
        return value
    if isinstance(value, bool):
        return ContentCapture.SPAN_ONLY if value else ContentCapture.NO_CONTENT
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _ON:
            return ContentCapture.SPAN_ONLY
        if word in _OFF:
            return ContentCapture.NO_CONTENT
        try:
            return ContentCapture(word)
        except ValueError:
            pass
    modes = ", ".join(mode.name for mode in ContentCapture)
    raise ValueError(f"content capture must be a bool or one of {modes}, got {value!r}")


def capture_content_from_env() -> bool:
    """Whether the GenAI content-capture variable records content anywhere (a mode other than
    ``NO_CONTENT``, or ``true``)."""
    return content_capture(None) is not ContentCapture.NO_CONTENT


@dataclass(frozen=True)
class AttributePolicy:
    """What may be recorded and how large it may be; immutable, so emit reads it lock-free."""

    capture_content: bool = False
    max_length: int = 4096
    """Characters per attribute value: a string, a JSON document, or a sequence's strings
    together (a longer sequence is recorded as truncated JSON instead)."""
    max_attributes: int = 128
    """Attributes per event and per span (start and end together, :meth:`fit`); past it,
    arguments and content are left out but ids are kept.

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

    # init=False: a policy made by dataclasses.replace() must not share its base's plans
    _plans: dict[EventSpec, _Plan] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )
    _sensitivity: dict[str, bool] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )
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
        """Whether values under ``key`` are redacted (``api_key``, ``token``, ``extra_sensitive``
        names). Remembered per key, up to a bound: payloads repeat their keys."""
        known = self._sensitivity.get(key)
        if known is None:
            known = self.redact_keys and (key.lower() in self.extra_sensitive or is_sensitive(key))
            if len(self._sensitivity) < _SENSITIVITY_CACHE:
                self._sensitivity[key] = known
        return known

    def scrub(self, text: str) -> str:
        """``text`` with every ``redact_patterns`` match replaced by ``[REDACTED]``."""
        pattern = self._pattern
        return text if pattern is None else pattern.sub(REDACTED, text)

    def build(self, spec: EventSpec, bound: Bound) -> dict[str, AttributeValue]:
        """Attributes for one event: computed ids and counts first, then arguments, content last.

        The order matters because the SDK drops attributes past its count limit: what
        identifies a call must survive, bulky content may not. How each declared argument is
        recorded is planned once per event (see :meth:`_plan`), not worked out per emit.
        Never raises an Exception: each step is guarded, and should one still fail, the event
        keeps its span with no attributes and the failure is logged.
        """
        try:
            steps, declared, silent = self._plans.get(spec) or self._plan(spec)
            if silent and declared.issuperset(bound):
                return {}
            attrs: dict[str, AttributeValue] = {}
            room = self.max_attributes - _RESERVED_ATTRIBUTES
            if spec.extract is not None:
                self._extracted(spec.extract, bound, attrs, room)
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
                self._extracted(spec.extract_content, bound, attrs, room)
            if self.redactor is not None:
                return self.redact(attrs)
            return attrs
        except Exception as error:  # a defect, not a payload: keep the span, log the type
            rate_limited.log(
                logging.ERROR,
                "attributes",
                "attributes of %s.%s could not be built (%s); recorded without them",
                spec.event_set,
                spec.name,
                type_name(error),
            )
            return {}

    def positions(self, spec: EventSpec) -> tuple[tuple[int, str, bool], ...] | None:
        """How :meth:`build` records an emit that passes exactly the declared arguments,
        positionally: each recorded argument as (position, attribute key, redact), in
        recording order (see :func:`from_positions`); None when the event needs its arguments
        by name (an extractor runs, or a redactor), and so :meth:`build`.

        Worked out once per event (the recorder keeps it per policy), not per emit.
        """
        if (
            spec.extract is not None
            or self.redactor is not None
            or (self.capture_content and spec.extract_content is not None)
        ):
            return None
        steps, _, _ = self._plans.get(spec) or self._plan(spec)
        if len(steps) > self.max_attributes - _RESERVED_ATTRIBUTES:
            return None  # build() stops at the room left; rare enough to leave to it
        position = {arg: index for index, arg in enumerate(spec.args)}
        return tuple((position[arg], key, redact) for arg, key, redact in steps)

    def fit(self, attrs: dict[str, AttributeValue], present: int) -> dict[str, AttributeValue]:
        """``attrs`` cut to what a span holding ``present`` attributes may still take.

        Keeps ``max_attributes`` per span when an end adds to its start's attributes, with two
        slots left for ``error.type`` and ``spanhooks.abandoned``; the first attributes (ids)
        are the ones kept. Returns ``attrs`` itself when it fits.
        """
        room = self.max_attributes - 2 - present
        if len(attrs) <= room:
            return attrs
        return dict(itertools.islice(attrs.items(), max(0, room)))

    def recorded(self, attributes: Mapping[str, Any]) -> dict[str, AttributeValue]:
        """What may be recorded of ``attributes`` set by hand (a subsystem's, an integration's):
        each value coerced and bounded (and scrubbed by ``redact_patterns``), None left out,
        then passed through the redactor, as :meth:`build` does for an event's."""
        kept = {}
        for key, value in attributes.items():
            coerced = coerce(value, self) if value is not None else None
            if coerced is not None:
                kept[key] = coerced
        return self.redact(kept) if self.redactor is not None else kept

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
            if mapped is None and arg in spec.content and spec.extract_content is not None:
                continue  # the content extractor records it, under its own names
            key = bounded_key(mapped if mapped is not None else f"{spec.event_set}.{arg}")
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
        """Arguments the declaration does not name (extra positionals, unknown keywords).

        Their names are user input: the key is cut to :data:`MAX_ATTRIBUTE_KEY_LENGTH` after
        the sensitivity check (which sees the whole name, so a cut cannot hide ``_token``).
        """
        for arg, value in bound.items():
            if len(attrs) >= room:
                return
            try:
                if arg in declared:
                    continue
                name = arg if type(arg) is str else safe_str(arg)
                key = bounded_key(f"{event_set}.{name}")
                if self.sensitive(name):
                    attrs[key] = REDACTED
                else:
                    self._put(attrs, key, value)
            except Exception:  # a keyword name that fights back: leave that argument out
                continue

    def _extracted(
        self,
        extract: Callable[[Bound], Mapping[str, Any]],
        bound: Bound,
        attrs: dict[str, AttributeValue],
        room: int,
    ) -> None:
        """Attributes an extractor computes, up to ``room``; keys cut, values coerced."""
        try:
            extracted = extract(bound)
            for key, value in extracted.items():
                if len(attrs) >= room:
                    return
                self._put(attrs, key if type(key) is str else safe_str(key), value)
        except Exception:  # a payload shaped unlike the seed's: keep the other attributes
            return

    def _put(self, attrs: dict[str, AttributeValue], key: str, value: Any) -> None:
        coerced = coerce(value, self)
        if coerced is not None:
            attrs[key if len(key) <= MAX_ATTRIBUTE_KEY_LENGTH else bounded_key(key)] = coerced


def from_positions(
    positions: tuple[tuple[int, str, bool], ...], args: tuple[Any, ...], policy: AttributePolicy
) -> dict[str, Any]:
    """The attributes :meth:`AttributePolicy.build` gives for ``args``, read by the positions
    :meth:`AttributePolicy.positions` gave. Never raises, as :func:`coerce` does not."""
    attrs: dict[str, Any] = {}
    plain = policy._pattern is None
    limit = policy.max_length
    for index, key, redact in positions:
        value = args[index]
        cls = type(value)
        if redact:
            attrs[key] = REDACTED
        elif cls is str and plain and len(value) <= limit:
            attrs[key] = value  # coerce()'s first cases, inlined: most arguments are short text,
        elif cls is int and _INT64_MIN <= value <= _INT64_MAX:  # or counts and indexes
            attrs[key] = value
        else:
            value = coerce(value, policy)
            if value is not None:
                attrs[key] = value
    return attrs


def coerce(value: Any, policy: AttributePolicy) -> AttributeValue | None:
    """One attribute value within the policy's length limit, or None to leave the key out.

    The result is always a plain str, bool, int, float or tuple of one of them, never a
    subclass (an exporter calling ``len()`` on it runs no user code). Never raises an
    Exception: a value whose dunders raise becomes ``<unrepresentable TYPE>``.
    """
    if type(value) is str:  # the common case first: no user code, no copy within bounds
        if policy._pattern is not None:
            value = policy._pattern.sub(REDACTED, value)
        return value if len(value) <= policy.max_length else truncate(value, policy.max_length)
    if value is None:
        return None
    try:
        return _coerce(value, type(value), policy)
    except Exception:
        return truncate(unrepresentable(value), policy.max_length)


def _coerce(value: Any, cls: type, policy: AttributePolicy) -> AttributeValue | None:
    """:func:`coerce` for everything but a plain str: tests on ``cls``, which run no user code."""
    if cls is bool:
        return bool(value)
    if cls is int and _INT64_MIN <= value <= _INT64_MAX:  # token counts, sizes: the usual case
        return value  # type: ignore[no-any-return]
    if cls is dict:
        return to_json(value, policy)
    base = _base_value(value, cls, policy.max_length)
    if base is not _NOT_BASE:
        return base if type(base) in _NUMBERS else coerce(base, policy)  # type: ignore[return-value]
    if issubclass(cls, datetime.date | datetime.time):
        return coerce(safe_str(value.isoformat()), policy)
    if issubclass(cls, list | tuple):
        items = value if cls is list or cls is tuple else tuple(itertools.islice(value, 129))
        if items and len(items) <= 128:
            homogeneous = _primitive_sequence(items, policy)
            if homogeneous is not None:
                return homogeneous
        return to_json(value, policy)
    if issubclass(cls, Mapping | set | frozenset) or hasattr(cls, _DATACLASS_FIELDS):
        return to_json(value, policy)
    return truncate(policy.scrub(safe_str(value)), policy.max_length)


_DATACLASS_FIELDS = "__dataclass_fields__"  # read on the class: is_dataclass(value) would call
# the instance's __getattribute__ (through isinstance), which may raise


def _primitive_sequence(
    value: list[Any] | tuple[Any, ...], policy: AttributePolicy
) -> AttributeValue | None:
    """A tuple of plain strs, ints or finite floats, or None (then JSON): exact types only, so
    no item's code runs; strs that are longer than ``max_length`` together give None."""
    first = type(value[0])
    if first not in (str, int, float) or any(type(item) is not first for item in value):
        return None
    if first is str:
        limit = policy.max_length
        texts = tuple(truncate(policy.scrub(item), limit) for item in value)
        return texts if sum(map(len, texts)) <= limit else None
    if first is float and not all(math.isfinite(item) for item in value):
        return None
    if first is int and not all(_INT64_MIN <= item <= _INT64_MAX for item in value):
        return None
    return tuple(value)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
"""OTLP carries int64: a larger int would make the exporter drop the attribute (and log it)."""


_NOT_BASE = object()
_NUMBERS = (int, float)  # exact types: what _base_value returns that needs no further look


def _base_value(value: Any, cls: type, limit: int) -> object:
    """The plain value behind a str, int or float subclass, an Enum member or a bytes-like
    value (read through the base type's own method: no override runs), or ``_NOT_BASE``."""
    if issubclass(cls, str):
        return str.__str__(value)
    if issubclass(cls, int):
        number = int.__int__(value)
        return number if _INT64_MIN <= number <= _INT64_MAX else _big_int(number, limit)
    if issubclass(cls, float):
        real = float.__float__(value)
        return real if math.isfinite(real) else str(real)
    if issubclass(cls, Enum):
        return value.value
    if issubclass(cls, bytes | bytearray | memoryview):
        return f"<{memoryview(value).nbytes} bytes>"
    return _NOT_BASE


def _big_int(value: int, limit: int) -> str:
    """An int beyond int64 as text (``str`` itself refuses past 4,300 digits)."""
    try:
        return truncate(str(value), limit)
    except ValueError:
        return f"<int of {value.bit_length()} bits>"


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
    install_pattern(policy._pattern)  # what has no policy of its own: log lines, /metrics
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
    """Serialise any object to JSON no longer than ``policy.max_length``, still valid JSON.

    A document too long is first kept whole with its longest strings cut (so a long prompt
    keeps its messages and each one's start); only if that is not enough does it become
    ``{"truncated": length, "preview": ...}``.
    """
    plain: Any = None
    limit = policy.max_length
    try:
        text = _flat_json(value, policy) if type(value) is dict else None
        if text is None or len(text) > limit:  # the general way copies what it may shorten
            plain = _plain(value, policy, 0, set())
            text = _compact(plain)
    except Exception:
        text = json.dumps(unrepresentable(value))
    if len(text) <= limit:
        return text
    if isinstance(plain, dict | list):
        shortened = _compact(_shortened(plain, len(text) - limit))
        if len(shortened) <= limit:
            return shortened
    preview = text[: max(0, limit - 40)]
    while True:
        wrapped = json.dumps({"truncated": len(text), "preview": preview}, ensure_ascii=False)
        if len(wrapped) <= limit:
            return wrapped
        if not preview:  # a limit too small for the wrapper: still valid JSON, still bounded
            return _TRUNCATED_JSON
        preview = preview[: len(preview) - (len(wrapped) - limit) - 1]


_TRUNCATED_JSON = json.dumps("<truncated>")  # 13 characters: within the smallest limit (16)
_CUT = "...[truncated]"


def _flat_json(value: dict[Any, Any], policy: AttributePolicy) -> str | None:
    """The text :func:`to_json` gives a dict of plain scalars (str, bool, None, int64, finite
    float) under str keys that nothing redacts, written without the copy ``_plain`` makes
    (results and options are mostly such dicts); None for any other dict."""
    if policy._pattern is not None or len(value) > 256:
        return None
    for key, item in value.items():
        if type(key) is not str or policy.sensitive(key):
            return None
        cls = type(item)
        if cls is str or cls is bool or item is None:
            continue
        if cls is int:
            if _INT64_MIN <= item <= _INT64_MAX:
                continue
        elif cls is float and math.isfinite(item):
            continue
        return None
    return _compact(value)


def _compact(plain: Any) -> str:
    """``json.dumps(plain, ensure_ascii=False, separators=(",", ":"), allow_nan=False)``."""
    return "".join(_encode(plain, 0))


def _compact_encoder() -> Callable[[Any, int], Iterable[str]]:
    """The encoder :func:`_compact` calls, made once: ``json.dumps`` with arguments makes one
    per call, which costs more than encoding a small dict. What it is given is JSON-ready
    and acyclic (``_plain`` and ``_flat_json`` see to it), so it keeps no cycle markers and
    holds no state between calls (safe from any thread). Where the interpreter has no C
    encoder, or one that writes otherwise than ``dumps``, ``dumps``' own encoder, made once."""
    general = json.JSONEncoder(
        ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
    )
    make: Callable[..., Any] | None = getattr(json.encoder, "c_make_encoder", None)
    with contextlib.suppress(Exception):  # no C encoder, or one with another signature
        if make is not None:
            # markers, default, string encoder, indent, separators, sort_keys, skipkeys, allow_nan
            encode = make(
                None, general.default, json.encoder.encode_basestring, None, ":", ",",
                False, False, False,
            )  # fmt: skip
            probe = {"é": [1, -2.5, 1e300, None, True, '"\n\u2028'], "": {}}
            if "".join(encode(probe, 0)) == _dumps_compact(probe) and _refuses_nan(encode):
                return encode  # type: ignore[no-any-return]
    return lambda plain, _level: (general.encode(plain),)


def _refuses_nan(encode: Callable[[Any, int], Iterable[str]]) -> bool:
    try:
        encode(math.nan, 0)
    except ValueError:
        return True
    return False


def _dumps_compact(plain: Any) -> str:
    return json.dumps(plain, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


_encode = _compact_encoder()


def _shortened(plain: Any, excess: int) -> Any:
    """``plain`` (JSON-ready) with its longest strings cut by about ``excess`` characters in
    all, each cut marked; the strings are cut to a common length, longest first."""
    strings: list[tuple[list[Any] | dict[str, Any], Any, str]] = []
    _collect_strings(plain, strings)
    strings.sort(key=lambda item: len(item[2]), reverse=True)
    for holder, key, text in strings:
        if excess <= 0:
            break
        keep = max(0, len(text) - excess - len(_CUT))
        if keep >= len(text):
            continue
        cut = text[:keep] + _CUT
        holder[key] = cut
        excess -= len(_compact(text)) - len(_compact(cut))
    return plain


def _collect_strings(node: Any, found: list[tuple[list[Any] | dict[str, Any], Any, str]]) -> None:
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        if type(value) is str and len(value) > 2 * len(_CUT):
            found.append((node, key, value))
        elif isinstance(value, dict | list):
            _collect_strings(value, found)


def _plain(value: Any, policy: AttributePolicy, depth: int, seen: set[int]) -> Any:
    """A JSON-ready copy of plain types only: cycles, depth, odd floats, bytes handled; at most
    256 items per container (taken lazily: a huge or endless iterable is not listed whole);
    an item whose code raises becomes ``<unrepresentable TYPE>``, its siblings kept."""
    cls = type(value)
    if cls is str:
        return value if policy._pattern is None else policy._pattern.sub(REDACTED, value)
    if value is None or cls is bool:
        return value
    if cls is int and _INT64_MIN <= value <= _INT64_MAX:
        return value
    try:
        base = _base_value(value, cls, policy.max_length) if cls is not dict else _NOT_BASE
        if base is not _NOT_BASE:
            return base if type(base) in _NUMBERS else _plain(base, policy, depth + 1, seen)
        if depth >= _MAX_DEPTH:
            return "<max depth>"
        marker = id(value)
        if marker in seen:
            return "<cycle>"
        seen.add(marker)
        try:
            if cls is dict or issubclass(cls, Mapping):
                plain: dict[str, Any] = {}
                for k, v in itertools.islice(value.items(), 256):
                    text = k if type(k) is str else safe_str(k)
                    plain[policy.scrub(text) if policy._pattern is not None else text] = (
                        REDACTED if policy.sensitive(text) else _plain(v, policy, depth + 1, seen)
                    )
                return plain
            if issubclass(cls, list | tuple | set | frozenset):
                return [_plain(v, policy, depth + 1, seen) for v in itertools.islice(value, 256)]
            if hasattr(cls, _DATACLASS_FIELDS):
                return {
                    f.name: REDACTED
                    if policy.sensitive(f.name)
                    else _plain(getattr(value, f.name, None), policy, depth + 1, seen)
                    for f in fields(cls)
                }
            return policy.scrub(safe_str(value))
        finally:
            seen.discard(marker)
    except Exception:
        return unrepresentable(value)
