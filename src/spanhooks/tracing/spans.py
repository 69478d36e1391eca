"""Mapping events onto spans: starts open spans, ends close them, points become span events.

A start makes its span current by attaching a new context that also carries a :class:`Frame`
for the call. The attach token is deliberately not kept: an end may come from another task or
thread, where detaching that token is exactly what makes OpenTelemetry log "Failed to detach
context". Instead an end restores the parent context only where its own context is still the
current one, and a later emit in the original context skips frames that have ended
(:func:`live_context`). Spans from other instrumentations started between a start and its end
still see the open span as current and nest under it.

Open frames sit in an :class:`OpenSpans` registry with a cap and an age limit, so a start that
is never ended is closed as "abandoned" instead of growing memory.

User values touched here (span name templates, pairing keys, error extractors, call ids) are
read under ``except Exception``: a payload whose dunders raise still gets its span, named with
``<unrepresentable TYPE>`` where its text could not be read, and its end still finds its start
(:meth:`Frame.matches`, :meth:`Frame.might_match`). KeyboardInterrupt, SystemExit and
cancellation are not caught. Names and status descriptions are cut to the bounds in
:mod:`spanhooks.tracing.attributes`.
"""

from __future__ import annotations

import logging
import re
import string
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk.trace import Span as SDKSpan
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from spanhooks.events.spec import EventSpec, Phase
from spanhooks.tracing.attributes import AttributePolicy
from spanhooks.tracing.bounds import (
    MAX_SPAN_NAME_LENGTH,
    MAX_STATUS_DESCRIPTION_LENGTH,
    bounded_name,
)
from spanhooks.tracing.failures import error_description, exception_attributes
from spanhooks.util.forksafe import renew_in_child
from spanhooks.util.log import rate_limited
from spanhooks.util.text import safe_repr, safe_str, truncate

__all__ = [
    "Frame",
    "OpenSpans",
    "PointFrame",
    "SpanMapper",
    "attach_context",
    "current_context",
    "live_context",
    "positional_template",
]

FRAME_KEY = otel_context.create_key("spanhooks-frame")
# The key under which the API stores the current span, found once so that a frame's context is
# built with one dict copy instead of two (set_span_in_context, then set_value).
[_SPAN_KEY] = trace.set_span_in_context(trace.INVALID_SPAN, Context()).keys()


def _context_access() -> tuple[Callable[[], Context], Callable[[Context], Token[Context]]]:
    """The current-context getter and setter the emit path uses.

    ``opentelemetry.context.get_current`` and ``attach`` are two Python calls around one
    ``ContextVar.get``/``set`` of the runtime context; an emit makes four such calls per span.
    Under the API's default runtime context the var's own methods do the same in one C call;
    any other runtime context (``OTEL_PYTHON_CONTEXT``) gets the public functions.
    """
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(var, ContextVar):
        return var.get, var.set
    return otel_context.get_current, otel_context.attach


current_context, attach_context = _context_access()
"""``opentelemetry.context.get_current`` and ``attach``, as cheap as the runtime allows."""

ABANDONED_ATTRIBUTE = "spanhooks.abandoned"
_ENDED = Context()  # an ended frame's context: it no longer makes anything current
UNREADABLE_KEY = object()
"""The pairing key of an event whose key extractor raised: such an end closes the innermost
open call of its pair, as an event without a key does (see :meth:`Frame.might_match`)."""


class Frame:
    """One open call: the span a start opened, where it came from, and whether it has ended."""

    __slots__ = (
        "call_id",
        "ctx",
        "ended",
        "key_value",
        "opened",
        "parent",
        "parent_ctx",
        "span",
        "span_id",
        "spec",
    )

    def __init__(
        self,
        spec: EventSpec,
        span: Span,
        span_id: int,
        parent_ctx: Context,
        parent: Frame | None,
        key_value: object,
    ) -> None:
        self.spec = spec
        self.span = span
        self.span_id = span_id
        self.call_id = "%016x" % span_id  # noqa: UP031  (faster than format() here)
        self.parent_ctx = parent_ctx
        self.parent = parent
        self.key_value = key_value
        self.opened = time.monotonic()
        self.ended = False
        # The context that makes this call current, while it is open. It holds the frame, so
        # it is replaced by _ENDED when the call ends: ended calls are then freed by reference
        # counting, not left as cycles for the garbage collector (which cost more than the span).
        self.ctx = Context({**parent_ctx, _SPAN_KEY: span, FRAME_KEY: self})

    @property
    def parent_call_id(self) -> str | None:
        """The call id of the span this one was started under, if any."""
        parent = trace.get_current_span(self.parent_ctx).get_span_context()
        return format(parent.span_id, "016x") if parent.is_valid else None

    def matches(self, spec: EventSpec, key_value: object) -> bool:
        """Whether an end of ``spec`` with ``key_value`` closes this call: same pair, still
        open, and the same key (identical, or equal; a comparison that raises is no match)."""
        if self.ended or self.spec.pair != spec.pair or self.spec.event_set != spec.event_set:
            return False
        mine = self.key_value
        if spec.key is None or mine is key_value:
            return True
        try:
            return bool(mine == key_value)
        except Exception:
            return False

    def might_match(self, spec: EventSpec, key_value: object) -> bool:
        """Whether this call is a candidate when no call :meth:`matches`: same pair, still
        open, and keys that cannot be told apart (either unreadable, or comparing them raised).
        """
        if self.ended or self.spec.pair != spec.pair or self.spec.event_set != spec.event_set:
            return False
        mine = self.key_value
        if mine is UNREADABLE_KEY or key_value is UNREADABLE_KEY:
            return True
        try:
            bool(mine == key_value)
        except Exception:
            return True
        return False  # compared: matches() has already said no


class PointFrame:
    """The span a point event made for itself (no span was recording): ended by
    :meth:`SpanRecorder.finish <spanhooks.tracing.recorder.SpanRecorder.finish>` after the
    event's callbacks, like an end's frame."""

    __slots__ = ("opened", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.opened = time.monotonic()


def live_context() -> tuple[Context, Frame | None]:
    """The current context with frames that already ended (in another task) skipped."""
    ctx = current_context()
    frame = ctx.get(FRAME_KEY)
    while isinstance(frame, Frame) and frame.ended and trace.get_current_span(ctx) is frame.span:
        ctx, frame = frame.parent_ctx, frame.parent
    return ctx, frame if isinstance(frame, Frame) else None


class OpenSpans:
    """Open frames by span id, oldest first, bounded by count and age.

    Adding and removing are single dict operations (atomic under the GIL), so the emit path
    takes no lock; only closing abandoned frames, which is rare, takes one.

    Fork: a forked child starts with an empty registry and a fresh lock. The spans its parent
    had open are the parent's to end and export; were they kept, the child's shutdown would
    export each again (same span id) as "abandoned". The child still runs under the inherited
    context, so its own spans nest under them as before.
    """

    def __init__(
        self,
        max_open: int = 10_000,
        max_age: float = 3600.0,
        on_abandon: Callable[[Frame], None] | None = None,
    ) -> None:
        if max_open < 1:
            raise ValueError(f"max_open must be at least 1, got {max_open}")
        if not max_age > 0:
            raise ValueError(f"max_age must be positive seconds, got {max_age}")
        self.max_open = max_open
        self.max_age = max_age
        self.abandoned = 0
        self._next_age_check = 0.0
        self._frames: dict[int, Frame] = {}
        self._lock = threading.Lock()
        self._on_abandon = on_abandon
        renew_in_child(self)

    def after_fork_in_child(self) -> None:
        # The parent's lock may have been held by a thread that does not exist in the child.
        self._lock = threading.Lock()
        self._frames = {}

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, frame: Frame) -> None:
        frames = self._frames
        frames[frame.span_id] = frame
        if len(frames) > self.max_open or frame.opened >= self._next_age_check:
            self.admitted(frame)

    def admitted(self, frame: Frame) -> None:
        """The bounds' part of :meth:`add`, for a frame already in the registry: evict past the
        cap, and check the oldest's age at most a few times per ``max_age``. (The mapper adds
        frames itself and calls this only when either bound may be reached.)"""
        frames = self._frames
        if len(frames) > self.max_open:
            self._evict(frame.opened)
        elif frame.opened >= self._next_age_check:
            self._next_age_check = frame.opened + min(1.0, self.max_age / 4)
            try:
                oldest = next(iter(frames.values()))
            except (StopIteration, RuntimeError):  # emptied or resized by another thread
                return
            if frame.opened - oldest.opened > self.max_age:
                self._evict(frame.opened)

    def get(self, span_id: int) -> Frame | None:
        return self._frames.get(span_id)

    def discard(self, frame: Frame) -> None:
        self._frames.pop(frame.span_id, None)

    def latest(self, spec: EventSpec, key_value: object, *, loosely: bool = False) -> Frame | None:
        """The most recently opened frame that ``spec`` (an end) would close; ``loosely``:
        that it :meth:`~Frame.might_match`."""
        for frame in reversed(list(self._frames.values())):
            if frame.might_match(spec, key_value) if loosely else frame.matches(spec, key_value):
                return frame
        return None

    def _evict(self, now: float) -> None:
        with self._lock:
            frames = self._frames
            victims: list[Frame] = []
            for frame in list(frames.values()):
                if (
                    len(frames) - len(victims) <= self.max_open
                    and now - frame.opened <= self.max_age
                ):
                    break
                victims.append(frame)
            for frame in victims:
                frames.pop(frame.span_id, None)
        for frame in victims:
            self._abandon(frame, "never ended (open-span cap or age limit reached)")

    def close_all(self, reason: str) -> int:
        """Close every open frame as abandoned (at shutdown); returns how many there were."""
        with self._lock:
            victims = list(self._frames.values())
            self._frames.clear()
        for frame in victims:
            self._abandon(frame, reason)
        return len(victims)

    def _abandon(self, frame: Frame, reason: str) -> None:
        if frame.ended:
            return
        frame.ended = True
        frame.ctx = _ENDED
        self.abandoned += 1
        span = frame.span
        description = truncate(f"abandoned: {safe_str(reason)}", MAX_STATUS_DESCRIPTION_LENGTH)
        span.set_attribute(ABANDONED_ATTRIBUTE, True)
        span.set_status(Status(StatusCode.ERROR, description))
        span.end()
        rate_limited.log(
            logging.WARNING,
            "abandoned",
            "span %r (call %s) closed as %s",
            frame.spec.pair,
            frame.call_id,
            description,
        )
        if self._on_abandon is not None:
            self._on_abandon(frame)


class _Missing(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


class SpanMapper:
    """Opens, ends and annotates spans for events, with the given attribute policy."""

    def __init__(self, policy: AttributePolicy, open_spans: OpenSpans) -> None:
        self.policy = policy
        self.open_spans = open_spans
        self.unmatched_ends = 0

    def start(self, tracer: Tracer, spec: EventSpec, bound: Mapping[str, Any]) -> Frame | None:
        """Open the span of a start event under the live context (see :meth:`open`)."""
        parent_ctx, parent = live_context()
        policy = self.policy
        attributes = policy.build(spec, bound)
        if spec.operation:
            attributes["gen_ai.operation.name"] = spec.operation
        return self.open(
            tracer,
            spec,
            span_name(spec, bound, policy),
            attributes,
            parent_ctx,
            parent,
            key_of(spec, bound),
        )

    def open(
        self,
        tracer: Tracer,
        spec: EventSpec,
        name: str,
        attributes: dict[str, Any],
        parent_ctx: Context,
        parent: Frame | None,
        key_value: object,
    ) -> Frame | None:
        """Start a span under ``parent_ctx``, make it current with its frame and register the
        frame; None when the tracer makes no real span (``OTEL_SDK_DISABLED``)."""
        span = tracer.start_span(name, parent_ctx, spec.kind, attributes)  # positionally: faster
        span_context = span.get_span_context()
        if not span_context.is_valid:
            return None
        frame = Frame(spec, span, span_context.span_id, parent_ctx, parent, key_value)
        attach_context(frame.ctx)  # token dropped on purpose: see the module docstring
        registry = self.open_spans  # OpenSpans.add, inlined: a start is the hot path
        frames = registry._frames
        frames[frame.span_id] = frame
        if len(frames) > registry.max_open or frame.opened >= registry._next_age_check:
            registry.admitted(frame)
        return frame

    def find(
        self, spec: EventSpec, bound: Mapping[str, Any], call_id: object, current: Context
    ) -> Frame | None:
        """The open frame an end closes: by call id, else innermost in ``current`` (the
        current context), else the latest opened."""
        key_value = key_of(spec, bound)
        if call_id is not None:
            span_id = _parse_call_id(call_id)
            frame = self.open_spans.get(span_id) if span_id is not None else None
            if frame is None or frame.ended:
                shown = self.policy.scrub(safe_repr(call_id))  # the log filter scrubs it again
                self._unmatched(spec, f"no open call with id {shown}")
                return None
            return frame
        found = current.get(FRAME_KEY)
        innermost = found if isinstance(found, Frame) else None
        frame = innermost
        while frame is not None and not frame.matches(spec, key_value):
            frame = frame.parent
        if frame is None:
            frame = self.open_spans.latest(spec, key_value)
        if frame is None and spec.key is not None:  # keys that could not be compared
            frame = innermost
            while frame is not None and not frame.might_match(spec, key_value):
                frame = frame.parent
            if frame is None:
                frame = self.open_spans.latest(spec, key_value, loosely=True)
        if frame is None:
            self._unmatched(spec, "no open start to close")
        return frame

    def finish(self, frame: Frame, spec: EventSpec, bound: Mapping[str, Any]) -> None:
        """Close ``frame`` with the end event's attributes and outcome (see :meth:`close`)."""
        if not frame.ended:
            self.close(frame, self.policy.build(spec, bound), failure_of(spec, bound))

    def close(
        self,
        frame: Frame,
        ended: Mapping[str, Any],
        failure: BaseException | str | None,
    ) -> None:
        """Record an end's attributes and failure on the frame's span, end it, unregister the
        frame and restore the parent context where the call's own context is current."""
        if frame.ended:
            return
        span = frame.span
        if (ended or failure is not None) and span.is_recording():
            policy = self.policy
            if ended:
                current = getattr(span, "attributes", None) or {}
                # Re-setting an unchanged key would move it to the back, first for eviction.
                changed = {}
                for key, value in ended.items():  # a loop, not a comprehension: no call
                    if current.get(key) != value:
                        changed[key] = value
                if changed:
                    present = len(current)
                    if len(changed) > policy.max_attributes - 2 - present:  # rare: cut to fit
                        changed = policy.fit(changed, present)
                    span.set_attributes(changed)
            if failure is not None:
                record_failure(span, failure, policy)
        frame.ended = True
        span.end()
        self.open_spans._frames.pop(frame.span_id, None)  # OpenSpans.discard, inlined
        ctx, frame.ctx = frame.ctx, _ENDED
        if current_context() is ctx:
            attach_context(frame.parent_ctx)

    def point(self, tracer: Tracer, spec: EventSpec, bound: Mapping[str, Any]) -> tuple[Span, bool]:
        """Mark a point event under the live context (see :meth:`mark`)."""
        ctx, _ = live_context()
        return self.mark(
            tracer,
            spec,
            bounded_name(spec.name),
            ctx,
            self.policy.build(spec, bound),
            failure_of(spec, bound),
        )

    def mark(
        self,
        tracer: Tracer,
        spec: EventSpec,
        name: str,
        ctx: Context,
        attributes: Mapping[str, Any],
        failure: BaseException | str | None,
    ) -> tuple[Span, bool]:
        """Add the event to ``ctx``'s span, or to a span of its own if none records; returns
        the span and whether it is the event's own, which the caller ends once the event's
        callbacks have run (so that what they do, a failure say, is recorded on it)."""
        span = ctx.get(_SPAN_KEY)  # trace.get_current_span(ctx), without its two calls
        if type(span) is not SDKSpan and not isinstance(span, Span):
            span = trace.INVALID_SPAN
        orphan = not span.is_recording()
        if orphan:
            span = tracer.start_span(name, context=ctx, kind=spec.kind)
        span.add_event(name, attributes)
        if failure is not None:
            record_failure(span, failure, self.policy)
        return span, orphan

    def _unmatched(self, spec: EventSpec, why: str) -> None:
        self.unmatched_ends += 1
        rate_limited.log(
            logging.WARNING,
            f"unmatched:{spec.event_set}:{spec.name}",
            "end event %s.%s ignored: %s",
            spec.event_set,
            spec.name,
            why,
        )


def span_name(
    spec: EventSpec, bound: Mapping[str, Any], policy: AttributePolicy | None = None
) -> str:
    """The span's name from the spec's template or namer, scrubbed by ``policy``'s
    ``redact_patterns`` (before the cut, so a cut cannot split a match) and cut to
    :data:`~spanhooks.tracing.bounds.MAX_SPAN_NAME_LENGTH`; never raises an Exception.

    A template's value whose ``__format__`` raises is shown as its ``str``, or as
    ``<unrepresentable TYPE>``; a namer that raises gives the pair's name.
    """
    template = spec.span_name
    if isinstance(template, str) and template:  # a declaration, not a payload
        try:
            name = template.format_map(bound)
        except Exception:  # a missing argument, or a value whose __format__ raises
            name = _retried(spec, template, bound)
    elif callable(template):
        try:
            name = template(bound)
            if type(name) is not str:
                name = safe_str(name)
        except Exception:
            name = _default_name(spec)
    else:
        name = _default_name(spec)
    if policy is not None and policy.redact_patterns:
        name = policy.scrub(name)
    return name if len(name) <= MAX_SPAN_NAME_LENGTH else bounded_name(name)


def positional_template(spec: EventSpec) -> str | None:
    """The spec's span name template with each field naming its argument by position
    (``execute_tool {tool_name}`` becomes ``execute_tool {0}``), so that an emit's positional
    arguments fill it without a dict; None when there is no template or it cannot be
    rewritten (positional or nested fields), and :func:`span_name` must fill it."""
    template = spec.span_name
    if not isinstance(template, str) or not template:
        return None
    position = {arg: index for index, arg in enumerate(spec.args)}
    parts: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return None
    for literal, field, format_spec, conversion in parsed:
        parts.append(literal.replace("{", "{{").replace("}", "}}"))
        if field is None:
            continue
        head = re.split(r"[.\[]", field, maxsplit=1)[0]
        if head not in position or (format_spec and "{" in format_spec):
            return None
        parts.append(
            "{%d%s%s%s}"  # noqa: UP031
            % (
                position[head],
                field[len(head) :],
                f"!{conversion}" if conversion else "",
                f":{format_spec}" if format_spec else "",
            )
        )
    return "".join(parts)


def _retried(spec: EventSpec, template: str, bound: Mapping[str, Any]) -> str:
    """``template`` filled again: missing arguments as ``?``, then every value as its text."""
    for values in (_Missing(bound), _Missing({k: safe_str(v) for k, v in bound.items()})):
        try:
            return template.format_map(values)
        except Exception:
            continue
    return _default_name(spec)


def _default_name(spec: EventSpec) -> str:
    return spec.pair or spec.name if spec.phase is not Phase.POINT else spec.name


def key_of(spec: EventSpec, bound: Mapping[str, Any]) -> object:
    """The value that pairs this start or end with its partner, None if the event has no
    key, :data:`UNREADABLE_KEY` if the key extractor raised."""
    key = spec.key
    if key is None:
        return None
    if isinstance(key, str):
        return bound.get(key)
    try:
        return key(bound)
    except Exception:
        return UNREADABLE_KEY


def failure_of(spec: EventSpec, bound: Mapping[str, Any]) -> BaseException | str | None:
    """The exception or message that marks this event as a failure, if it carries one.

    An extractor that raises, on a payload it cannot read, reports no failure. What it
    returns is only compared with None here; :func:`record_failure` reads it safely.
    """
    if spec.error is None:
        return None
    try:
        return spec.error(bound)
    except Exception:
        return None


def record_failure(span: Span, failure: BaseException | str, policy: AttributePolicy) -> None:
    """Record an event's failure as an exception event and ERROR status.

    The exception event is built here rather than by ``span.record_exception`` so that an
    exception whose ``__str__`` raises still closes its span, and so that the policy's
    ``redact_patterns`` and length limit apply to the message and stack trace. ``failure``
    may be anything an error extractor returned: what is not an exception is recorded as its
    text, read safely.
    """
    if issubclass(type(failure), BaseException):  # not isinstance: it may call user code
        error = cast(BaseException, failure)
        attributes = exception_attributes(error, policy)
        span.add_event("exception", {**attributes, "exception.escaped": "False"})
        span.set_attribute("error.type", attributes["exception.type"])
        span.set_status(Status(StatusCode.ERROR, error_description(error, policy)))
    else:
        description = truncate(policy.scrub(safe_str(failure)), MAX_STATUS_DESCRIPTION_LENGTH)
        span.set_attribute("error.type", "error")
        span.set_status(Status(StatusCode.ERROR, description))


def _parse_call_id(call_id: object) -> int | None:
    """A span id from an end's ``call_id`` (an int, or up to 32 hex digits), else None."""
    kind = type(call_id)
    if kind is bool:
        return None
    try:
        if issubclass(kind, int):
            return int.__int__(cast(int, call_id))
        if issubclass(kind, str):
            text = str.__str__(cast(str, call_id))
            return int(text, 16) if len(text) <= 32 else None
    except (TypeError, ValueError):
        return None
    return None
