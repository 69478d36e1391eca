"""Recording an emit as span data: finding the tracer, then opening, ending or marking a span.

The manager's emit calls :meth:`SpanRecorder.begin` before an event's callbacks run (a start
opens its span, so callbacks run inside it; an end finds the span it closes; a point becomes a
span event) and :meth:`SpanRecorder.finish` after them (an end's span is closed there). Neither
raises: a failure to map an event is logged and the caller goes on.

Threading: any thread may record. The tracer cache is replaced, never mutated, and a race
between two first lookups only finds the same tracer twice (and the same for two first plans
of one event, kept in a dict whose single writes are atomic); open spans live in the
:class:`~spanhooks.tracing.spans.OpenSpans` registry, which locks only when it must evict.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from contextvars import Token
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Tracer, TracerProvider

from spanhooks._version import __version__
from spanhooks.events.scope import scope_name
from spanhooks.events.spec import EventSpec, Phase
from spanhooks.tracing.attributes import AttributePolicy
from spanhooks.tracing.context import CallContext
from spanhooks.tracing.plans import EventPlan, bind, log_mapping_failure, plan_for
from spanhooks.tracing.spans import Frame, OpenSpans, PointFrame, SpanMapper
from spanhooks.util.forksafe import fork_safe_lock, renew_in_child
from spanhooks.util.log import rate_limited
from spanhooks.util.stale import Staleness

__all__ = [
    "PROVIDER_WATCH",
    "RECHECK_SECONDS",
    "ProviderWatch",
    "SpanRecorder",
    "bind",
]

RECHECK_SECONDS = 0.1
"""While no tracer provider is set, how often the provider watch asks again."""

_START, _END = Phase.START, Phase.END  # module constants: enum attribute access is slow
_UNTRACED = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


class ProviderWatch:
    """Whether a global tracer provider may be set, kept current off the emit path.

    Looking the global provider up through the public API costs about a microsecond while none
    is set: too much for every emit. ``maybe_set`` starts true, so the first emit looks; when
    that finds none, a daemon thread asks again every :data:`RECHECK_SECONDS` and sets
    ``maybe_set`` once a provider is there (OpenTelemetry lets one be set once), then exits. So a
    provider that other code sets later is picked up within that time, and an emit while none
    is set costs one attribute read. Threading: ``maybe_set`` is a plain flag; a stale read
    costs one extra lookup or one untraced emit, never a wrong span.
    """

    def __init__(self) -> None:
        self.maybe_set = True
        self.found_provider = Staleness()
        """Announced when ``maybe_set`` turns true: what was cached as untraced is stale."""
        self._watching = False
        self._lock = fork_safe_lock(self)
        renew_in_child(self)

    def found(self) -> TracerProvider | None:
        """The global provider if one is set; else None, and the watch goes on in the
        background. Never raises: a provider the environment names but that fails to load
        (``OTEL_PYTHON_TRACER_PROVIDER``) is logged and tracing stays off."""
        provider = _global_provider()
        if provider is not None:
            self.maybe_set = True
            return provider
        self.maybe_set = False
        with self._lock:
            if not self._watching:
                try:
                    threading.Thread(
                        target=self._watch, name="spanhooks-provider-watch", daemon=True
                    ).start()
                except RuntimeError:  # interpreter shutdown: no new threads, nothing to watch
                    return None
                self._watching = True
        return None

    def look_again(self) -> None:
        """Make the next emit look the provider up (``setup()`` has just set one)."""
        self.maybe_set = True
        self.found_provider.announce()

    def _watch(self) -> None:
        while _global_provider() is None:
            time.sleep(RECHECK_SECONDS)
        self.maybe_set = True
        self.found_provider.announce()
        with self._lock:
            self._watching = False

    def after_fork_in_child(self) -> None:
        # The parent's watch thread does not exist here: look again, which restarts it.
        self._watching = False
        self.maybe_set = True
        self.found_provider.announce()


def _global_provider() -> TracerProvider | None:
    try:
        provider = trace.get_tracer_provider()
    except Exception as exc:  # an OTEL_PYTHON_TRACER_PROVIDER entry point that fails to load
        rate_limited.log(logging.ERROR, "provider", "no tracer provider: %r", exc, exc_info=exc)
        return None
    return None if isinstance(provider, _UNTRACED) else provider


PROVIDER_WATCH = ProviderWatch()
"""The process's one watch on the global provider, shared by every recorder."""


Begun = tuple[Span | None, Frame | PointFrame | None, Token[Context] | None, str | None]
"""What :meth:`SpanRecorder.begin` returns: span, frame to close, context token, call id."""


class SpanRecorder:
    """Maps emits onto spans through one tracer provider (explicit, or the global one).

    ``tracer`` is None while no provider is known: emit then asks :meth:`find_tracer` only when
    :data:`PROVIDER_WATCH` says a global provider may be set, and :meth:`use_tracer_provider`
    (which ``setup()`` calls) makes the next emit look at once.
    """

    def __init__(
        self,
        policy: AttributePolicy,
        open_spans: OpenSpans,
        tracer_provider: TracerProvider | None = None,
        name: str = "spanhooks",
    ) -> None:
        self.name = name
        self.mapper = SpanMapper(policy, open_spans)
        self.tracer: Tracer | None = None
        """The tracer spans go through, or None while tracing is not configured."""
        self._provider = tracer_provider
        self._active_provider: TracerProvider | None = None
        self._tracers: dict[str, Tracer] = {}
        self.plans: dict[EventSpec, EventPlan] = {}
        """Each event's recording plan for the current tracer and policy (see :meth:`plan`)."""
        self.replanned = Staleness()
        """Announced whenever :attr:`plans` is dropped (the tracer or the policy changed)."""
        if tracer_provider is not None:
            self.find_tracer()

    def find_tracer(self) -> Tracer | None:
        """The tracer to use, or None while tracing is not configured."""
        provider = self._provider if self._provider is not None else PROVIDER_WATCH.found()
        if provider is None:
            return None
        self._active_provider = provider
        self._tracers = {}
        self._replan()
        self.tracer = provider.get_tracer("spanhooks", __version__)
        return self.tracer

    @property
    def provider(self) -> TracerProvider | None:
        """The provider given explicitly, or None for the global one."""
        return self._provider

    def use_tracer_provider(self, provider: TracerProvider | None) -> None:
        """Emit spans through ``provider`` (None: the global one) from the next emit on."""
        self._provider = provider
        self._tracers = {}
        self._replan()
        self.tracer = None
        if provider is not None:
            self.find_tracer()
        else:
            PROVIDER_WATCH.look_again()

    def _tracer_for(self, event_set: str) -> Tracer:
        """The tracer whose instrumentation scope names ``event_set`` (``spanhooks.<set>``)."""
        tracer = self._tracers.get(event_set)
        if tracer is None:
            assert self._active_provider is not None  # set with self.tracer, before any span
            tracer = self._active_provider.get_tracer(scope_name(event_set), __version__)
            self._tracers = {**self._tracers, event_set: tracer}
        return tracer

    @property
    def policy(self) -> AttributePolicy:
        """What may be recorded (content capture, lengths, redaction)."""
        return self.mapper.policy

    @policy.setter
    def policy(self, policy: AttributePolicy) -> None:
        self.mapper.policy = policy
        self._replan()

    def _replan(self) -> None:
        self.plans = {}
        self.replanned.announce()

    def plan(self, spec: EventSpec) -> EventPlan:
        """How ``spec`` is recorded (see :mod:`spanhooks.tracing.plans`), made on its first
        emit and kept in :attr:`plans` until the tracer or the policy changes. Only called
        once a tracer is known. Two threads making the same plan make equal ones."""
        tracer = self._tracers.get(spec.event_set) or self._tracer_for(spec.event_set)
        made = plan_for(self, spec, tracer)
        self.plans[spec] = made
        return made

    def begin(
        self,
        spec: EventSpec,
        args: tuple[Any, ...],
        bound: Mapping[str, Any],
        call_id: object,
    ) -> Begun:
        """The span side of an emit, before its callbacks run.

        Returns the span the event went to, the frame an end closes (closed by :meth:`finish`,
        after the callbacks, which run inside the call's context), the token of that context
        if it had to be attached, and the event's call id.
        """
        tracer = self._tracers.get(spec.event_set) or self._tracer_for(spec.event_set)
        mapper = self.mapper
        span: Span | None = None
        frame: Frame | PointFrame | None = None
        token: Token[Context] | None = None
        new_id: str | None = None
        phase = spec.phase
        try:
            if phase is _START:
                opened = mapper.start(tracer, spec, bound)
                if opened is not None:
                    span, new_id = opened.span, opened.call_id
            elif phase is _END:
                current = otel_context.get_current()
                frame = mapper.find(spec, bound, call_id, current)
                if frame is not None:
                    span, new_id = frame.span, frame.call_id
                    if current is not frame.ctx:
                        token = otel_context.attach(frame.ctx)
            else:
                point, own = mapper.point(tracer, spec, bound)
                if own:
                    frame = PointFrame(point)
                sc = point.get_span_context()
                if sc.is_valid:
                    span, new_id = point, "%016x" % sc.span_id  # noqa: UP031
            if spec.payload_type is not None and args:
                if span is not None:
                    _stamp_context(args[0], span)
                if frame is not None:
                    _measure(args[0], frame.opened)
        except Exception as exc:  # instrumentation must not break the caller
            self._failed("span mapping failed", spec, exc)
        return span, frame, token, new_id

    def finish(
        self,
        spec: EventSpec,
        bound: Mapping[str, Any],
        frame: Frame | PointFrame,
        token: Token[Context] | None,
    ) -> None:
        """The span side of an end (or of a point event with a span of its own) after its
        callbacks: restore the context, close the span."""
        try:
            if token is not None:
                otel_context.detach(token)
            if type(frame) is PointFrame:
                frame.span.end()
            else:
                self.mapper.finish(cast(Frame, frame), spec, bound)
        except Exception as exc:
            self._failed("closing span failed", spec, exc)

    def _failed(self, what: str, spec: EventSpec, exc: Exception) -> None:
        log_mapping_failure(self.name, what, spec, exc)

    def close_open_spans(self, reason: str) -> int:
        """End every still-open span as abandoned; returns how many."""
        return self.mapper.open_spans.close_all(reason)

    def stats(self) -> dict[str, int]:
        """Ends without a start, spans closed as abandoned, and spans still open."""
        open_spans = self.mapper.open_spans
        return {
            "unmatched_ends": self.mapper.unmatched_ends,
            "abandoned_spans": open_spans.abandoned,
            "open_spans": len(open_spans),
        }


def _stamp_context(event: object, span: Span) -> None:
    """Fill a typed event's ``context`` (LogiLLM's call ids) from its span."""
    sc = span.get_span_context()
    parent = getattr(span, "parent", None)
    context = CallContext(
        format(sc.span_id, "016x"),
        format(parent.span_id, "016x") if parent is not None and parent.is_valid else None,
        format(sc.trace_id, "032x"),
    )
    # A frozen or slotted payload, or one whose __setattr__ raises: the ids are on the span.
    with contextlib.suppress(Exception):
        event.context = context  # type: ignore[attr-defined]


def _measure(event: object, opened: float) -> None:
    """Give a typed end event whose ``duration`` is None the seconds since its call opened
    (LogiLLM's ``ModuleEndEvent.duration``...), before its callbacks see it. A payload that
    has no such field, or refuses the value (frozen, slotted), is left as it is."""
    try:
        if getattr(event, "duration", False) is None:
            event.duration = time.monotonic() - opened  # type: ignore[attr-defined]
    except Exception:  # a payload whose __getattr__ or __setattr__ raises
        return
