"""Recording plans: how one declared event is recorded as span data, worked out once.

Most of an emit's span work is the same for every emit of an event: which arguments become
which attributes, how the span is named, which argument pairs an end with its start. A plan
settles that the first time a recorder records the event, and a
:class:`~spanhooks.tracing.recorder.SpanRecorder` keeps it until its tracer provider or
attribute policy changes. Then an emit of a start, an end or a point that passes exactly its
declared arguments, positionally, is recorded from that tuple: no dict of bound arguments,
no per-emit look-ups of the declaration.

Everything else takes the general path (the arguments bound by name, the recorder's
:meth:`~spanhooks.tracing.recorder.SpanRecorder.begin` and ``finish``): keyword or extra
arguments, an end that names its call, an end whose innermost open call is not its own,
frames that already ended, typed payloads, attribute extractors, redactors and key
functions. Both paths record the same span data for the same emit.

Like the general path, a plan never raises: a failure to map an event is logged and the
emit goes on. Plans are immutable once built and shared by every thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextvars import Token
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import Span, Tracer

from spanhooks.events.spec import EventSpec, FailureIn, Phase, template_fields
from spanhooks.tracing.attributes import AttributePolicy, from_positions
from spanhooks.tracing.bounds import MAX_SPAN_NAME_LENGTH, bounded_name
from spanhooks.tracing.spans import (
    FRAME_KEY,
    Frame,
    PointFrame,
    SpanMapper,
    attach_context,
    current_context,
    live_context,
    positional_template,
    span_name,
)
from spanhooks.util.log import rate_limited

__all__ = [
    "Begun",
    "EventPlan",
    "GeneralPath",
    "bind",
    "call_id_of",
    "log_mapping_failure",
    "plan_for",
]

Begun = tuple[
    Span | None, Frame | PointFrame | None, Token[Context] | None, str | None, dict[str, Any] | None
]
"""What :meth:`EventPlan.begin` returns: the span the event went to, the frame its
:meth:`~EventPlan.finish` closes after the callbacks, the context token to detach then, the
call id of a start or end (a point's may be None: see :func:`call_id_of`), and the arguments
by name if they were bound (None on a plan's own path)."""

_NOTHING: Begun = (None, None, None, None, None)


class GeneralPath(Protocol):
    """What a plan needs of its recorder (:class:`~spanhooks.tracing.recorder.SpanRecorder`):
    the general path for what it cannot read by position, and the parts it shares with it."""

    name: str
    mapper: SpanMapper

    @property
    def policy(self) -> AttributePolicy: ...

    def begin(
        self, spec: EventSpec, args: tuple[Any, ...], bound: Mapping[str, Any], call_id: object
    ) -> tuple[Span | None, Frame | PointFrame | None, Token[Context] | None, str | None]: ...

    def finish(
        self,
        spec: EventSpec,
        bound: Mapping[str, Any],
        frame: Frame | PointFrame,
        token: Token[Context] | None,
    ) -> None: ...


def bind(spec: EventSpec, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """An emit's arguments by the names its spec declares; extra positionals as ``argN``."""
    names = spec.args
    bound = dict(zip(names, args))  # noqa: B905  (strict=False, as a keyword, doubles the cost)
    if len(args) > len(names):
        for index in range(len(names), len(args)):
            bound[f"arg{index}"] = args[index]
    if kwargs:
        bound.update(kwargs)
    return bound


def call_id_of(span: Span | None) -> str | None:
    """The call id of the span an event went to (a point's), None for no real span."""
    if span is None:
        return None
    span_context = span.get_span_context()
    return "%016x" % span_context.span_id if span_context.is_valid else None  # noqa: UP031


def log_mapping_failure(name: str, what: str, spec: EventSpec, exc: Exception) -> None:
    """Log (rate limited) that recording ``spec`` as span data failed; the emit goes on."""
    rate_limited.log(
        logging.ERROR,
        "span-mapping",
        "%s: %s for %s: %r",
        name,
        what,
        spec.name,
        exc,
        exc_info=exc,
    )


class EventPlan:
    """The general plan: the arguments bound by name, recorded by the recorder's general
    path. The base of the positional plans, which hand it what they cannot read by position.
    """

    __slots__ = ("recorder", "spec")

    def __init__(self, recorder: GeneralPath, spec: EventSpec) -> None:
        self.recorder = recorder
        self.spec = spec

    def begin(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], call_id: object) -> Begun:
        """The span side of an emit, before its callbacks run (see :data:`Begun`)."""
        bound = bind(self.spec, args, kwargs)
        span, frame, token, new_id = self.recorder.begin(self.spec, args, bound, call_id)
        return span, frame, token, new_id, bound

    def finish(
        self,
        frame: Frame | PointFrame,
        token: Token[Context] | None,
        args: tuple[Any, ...],
        bound: dict[str, Any] | None,
    ) -> None:
        """The span side of an end (or of a point event with a span of its own) after its
        callbacks: restore the context, close the span."""
        if bound is None:  # begun on a plan's own path
            self._finish_read(frame, token, args)
        else:
            self.recorder.finish(self.spec, bound, frame, token)

    def _finish_read(
        self, frame: Frame | PointFrame, token: Token[Context] | None, args: tuple[Any, ...]
    ) -> None:
        """:meth:`finish` for an emit whose arguments a plan read by position."""
        self.recorder.finish(self.spec, bind(self.spec, args, {}), frame, token)

    def record(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], call_id: object
    ) -> str | None:
        """:meth:`begin` and :meth:`finish` at once, for an emit with no callbacks to run in
        between; returns the call id of a start, else None."""
        _, frame, token, new_id, bound = self.begin(args, kwargs, call_id)
        if frame is not None:
            self.finish(frame, token, args, bound)
        return new_id if self.spec.phase is Phase.START else None


def _binder(names: tuple[str, ...]) -> Callable[[tuple[Any, ...]], dict[str, Any]]:
    """A function that binds a tuple of exactly ``names``' length to ``names``: made from
    source, as dataclasses make ``__init__``, because a dict display costs a third of
    ``dict(zip(names, args))``. The names are validated identifiers (see ``EventSet``)."""
    items = ", ".join(f"{name!r}: args[{index}]" for index, name in enumerate(names))
    made: Callable[[tuple[Any, ...]], dict[str, Any]] = eval(f"lambda args: {{{items}}}")
    return made


class _PositionalPlan(EventPlan):
    """What the positional plans share: the arity they read, their tracer, the attributes'
    positions and a binder for what still takes arguments by name (error extractors)."""

    __slots__ = (
        "arity",
        "bind",
        "error",
        "failure_at",
        "key_index",
        "mapper",
        "policy",
        "positions",
        "read_failure",
        "tracer",
    )

    def __init__(
        self,
        recorder: GeneralPath,
        spec: EventSpec,
        tracer: Tracer,
        positions: tuple[tuple[int, str, bool], ...],
    ) -> None:
        super().__init__(recorder, spec)
        self.arity = len(spec.args)
        self.tracer = tracer
        self.mapper = recorder.mapper
        self.policy = recorder.policy
        self.positions = positions
        self.bind = _binder(spec.args)
        self.error = spec.error
        # An extractor that reads one argument reads it by position, without binding.
        reads = spec.error if isinstance(spec.error, FailureIn) else None
        self.failure_at = spec.args.index(reads.argument) if reads is not None else -1
        self.read_failure = reads.read if reads is not None else None
        self.key_index = spec.args.index(spec.key) if isinstance(spec.key, str) else -1
        self._prepare(spec)

    def _prepare(self, spec: EventSpec) -> None:
        """What a phase's plan works out beyond the common part."""

    def _failure(self, args: tuple[Any, ...]) -> BaseException | str | None:
        """What :func:`~spanhooks.tracing.spans.failure_of` gives for these arguments; for
        a plan with an error extractor (callers test ``error`` first, saving a call)."""
        assert self.error is not None
        try:
            if self.read_failure is not None:
                return self.read_failure(args[self.failure_at])
            return self.error(self.bind(args))
        except Exception:  # an extractor that cannot read the payload: no failure
            return None

    def _failed(self, what: str, exc: Exception) -> None:
        log_mapping_failure(self.recorder.name, what, self.spec, exc)


class _StartPlan(_PositionalPlan):
    """A start: opens its span, named from the arguments' positions, under the live context."""

    __slots__ = ("fixed_name", "name_format", "operation", "plain_format")

    def _prepare(self, spec: EventSpec) -> None:
        self.operation = spec.operation
        self.name_format = positional_template(spec)
        template = spec.span_name
        fixed = not template or (isinstance(template, str) and not template_fields(template))
        # No template (the pair's name) or one without fields: the same name every emit.
        self.fixed_name = span_name(spec, {}, self.policy) if fixed else None
        # A template that needs no scrubbing is filled in record() itself; others in _name().
        self.plain_format = None if self.policy.redact_patterns else self.name_format

    def record(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], call_id: object
    ) -> str | None:
        if kwargs or len(args) != self.arity:
            return EventPlan.begin(self, args, kwargs, call_id)[3]
        try:
            ctx = current_context()
            parent = ctx.get(FRAME_KEY)
            if parent is not None and (type(parent) is not Frame or parent.ended):
                ctx, parent = live_context()
            attributes = from_positions(self.positions, args, self.policy)
            if self.operation:
                attributes["gen_ai.operation.name"] = self.operation
            name = self.fixed_name
            if name is None and self.plain_format is not None:
                try:
                    name = self.plain_format.format(*args)
                except Exception:  # _name() knows the fallbacks
                    name = None
            if name is None or len(name) > MAX_SPAN_NAME_LENGTH:
                name = self._name(args)
            key = args[self.key_index] if self.key_index >= 0 else None
            frame = self.mapper.open(self.tracer, self.spec, name, attributes, ctx, parent, key)
        except Exception as exc:  # instrumentation must not break the caller
            self._failed("span mapping failed", exc)
            return None
        return frame.call_id if frame is not None else None

    def begin(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], call_id: object) -> Begun:
        if kwargs or len(args) != self.arity:
            return EventPlan.begin(self, args, kwargs, call_id)
        new_id = self.record(args, kwargs, call_id)
        if new_id is None:
            return _NOTHING
        frame: Frame = current_context().get(FRAME_KEY)  # type: ignore[assignment]
        # record() made the new call current: its frame is the context's
        return frame.span, None, None, new_id, None

    def _name(self, args: tuple[Any, ...]) -> str:
        """:func:`~spanhooks.tracing.spans.span_name` of these arguments, filled by position
        where the template allows (its fallbacks, for a value that fails to format, by name)."""
        policy = self.policy
        if self.name_format is None:  # a namer function
            return span_name(self.spec, self.bind(args), policy)
        try:
            name = self.name_format.format(*args)
        except Exception:
            return span_name(self.spec, self.bind(args), policy)
        if policy.redact_patterns:
            name = policy.scrub(name)
        return name if len(name) <= MAX_SPAN_NAME_LENGTH else bounded_name(name)


class _EndPlan(_PositionalPlan):
    """An end: closes the innermost open call when it is this end's own (same pair, same
    key); any other case goes to the general path's search."""

    __slots__ = ("event_set", "pair")

    def _prepare(self, spec: EventSpec) -> None:
        self.pair = spec.pair
        self.event_set = spec.event_set

    def begin(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], call_id: object) -> Begun:
        frame = self._own_call(args, kwargs, call_id)
        if frame is None:
            return EventPlan.begin(self, args, kwargs, call_id)
        ctx = current_context()
        token = None if ctx is frame.ctx else attach_context(frame.ctx)
        return frame.span, frame, token, frame.call_id, None

    def record(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], call_id: object
    ) -> str | None:
        frame = self._own_call(args, kwargs, call_id)
        if frame is None:
            return EventPlan.record(self, args, kwargs, call_id)
        self._close(frame, args)  # no callbacks to run inside the call's context
        return None

    def _own_call(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], call_id: object
    ) -> Frame | None:
        """The innermost open call in the current context if this end closes it and reads
        its arguments by position; None sends the emit to the general path."""
        if kwargs or call_id is not None or len(args) != self.arity:
            return None
        frame = current_context().get(FRAME_KEY)
        if (
            type(frame) is not Frame
            or frame.ended
            or frame.spec.pair != self.pair
            or frame.spec.event_set != self.event_set
        ):
            return None
        if self.key_index < 0 or frame.key_value is args[self.key_index]:
            return frame
        try:
            return frame if frame.key_value == args[self.key_index] else None
        except Exception:  # keys that cannot be compared: the general path decides
            return None

    def _finish_read(
        self, frame: Frame | PointFrame, token: Token[Context] | None, args: tuple[Any, ...]
    ) -> None:
        if token is not None:
            otel_context.detach(token)
        if type(frame) is Frame:
            self._close(frame, args)

    def _close(self, frame: Frame, args: tuple[Any, ...]) -> None:
        try:
            if frame.ended:
                return
            failure = None
            if self.read_failure is not None:  # _failure(), inlined: ends are the hot path
                try:
                    failure = self.read_failure(args[self.failure_at])
                except Exception:
                    failure = None
            elif self.error is not None:
                failure = self._failure(args)
            ended = from_positions(self.positions, args, self.policy) if self.positions else {}
            self.mapper.close(frame, ended, failure)
        except Exception as exc:
            self._failed("closing span failed", exc)


class _PointPlan(_PositionalPlan):
    """A point: a span event on the live context's span (or on a span of its own)."""

    __slots__ = ("name",)

    def _prepare(self, spec: EventSpec) -> None:
        self.name = bounded_name(spec.name)

    def begin(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], call_id: object) -> Begun:
        if kwargs or len(args) != self.arity:
            return EventPlan.begin(self, args, kwargs, call_id)
        spec = self.spec
        try:
            ctx = current_context()
            frame = ctx.get(FRAME_KEY)
            if frame is not None and (type(frame) is not Frame or frame.ended):
                ctx, _ = live_context()
            span, own = self.mapper.mark(
                self.tracer,
                spec,
                self.name,
                ctx,
                from_positions(self.positions, args, self.policy) if self.positions else {},
                None if self.error is None else self._failure(args),
            )
        except Exception as exc:
            self._failed("span mapping failed", exc)
            return _NOTHING
        # No call id: a point's is its span's, which only the history needs (call_id_of).
        return span, PointFrame(span) if own else None, None, None, None

    def _finish_read(
        self, frame: Frame | PointFrame, token: Token[Context] | None, args: tuple[Any, ...]
    ) -> None:
        try:
            frame.span.end()  # the point's own span
        except Exception as exc:
            self._failed("closing span failed", exc)


_PLANS = {Phase.START: _StartPlan, Phase.END: _EndPlan, Phase.POINT: _PointPlan}


def plan_for(recorder: GeneralPath, spec: EventSpec, tracer: Tracer) -> EventPlan:
    """The plan that records ``spec`` through ``tracer`` under the recorder's policy: a
    positional one where the declaration allows it, else the general one."""
    if spec.payload_type is not None or not (spec.key is None or isinstance(spec.key, str)):
        return EventPlan(recorder, spec)
    positions = recorder.policy.positions(spec)
    if positions is None:
        return EventPlan(recorder, spec)
    return _PLANS[spec.phase](recorder, spec, tracer, positions)
