"""The callback manager: register callbacks in any seed's style, emit events, get spans.

A :class:`CallbackManager` composes three parts, each of one job: an
:class:`~spanhooks.callbacks.registry.EventRegistry` (declarations, registrations and their
dispatch routes), a :class:`~spanhooks.tracing.recorder.SpanRecorder` (an emit as span data)
and :class:`~spanhooks.callbacks.stats.EventMetrics` (its figures on ``/metrics``). ``emit`` is
the hot path that joins them: it reads immutable tables (no lock), returns at once when the
manager is disabled, and does no span work while tracing is not configured.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Span, TracerProvider
from prometheus_client.core import Metric

from spanhooks.callbacks.dispatch import Dispatcher, DispatchObserver
from spanhooks.callbacks.processors import SpanCallbacks
from spanhooks.callbacks.registry import EventRef, EventRegistry
from spanhooks.callbacks.routes import Priority, Route
from spanhooks.callbacks.stats import EventMetrics
from spanhooks.events.spec import EventSet, EventSpec, Phase
from spanhooks.tracing.attributes import AttributePolicy, capture_content_from_env
from spanhooks.tracing.plans import EventPlan, call_id_of
from spanhooks.tracing.recorder import PROVIDER_WATCH, SpanRecorder
from spanhooks.tracing.spans import OpenSpans
from spanhooks.util import checks
from spanhooks.util.env import env_flag
from spanhooks.util.redaction import redact_pattern_from_env
from spanhooks.vocab import BUILTIN_EVENT_SETS, AbstractCallback

__all__ = ["AbstractCallback", "CallbackManager", "EventRecord", "get_callback_manager"]

F = TypeVar("F", bound=Callable[..., Any])

_START = Phase.START  # a module constant: enum attribute access is slow
_watch = PROVIDER_WATCH  # module global: one load on the emit path


@dataclass(frozen=True)
class EventRecord:
    """One entry of the manager's bounded event history."""

    time_ns: int
    event_set: str
    name: str
    phase: str
    call_id: str | None


class CallbackManager:
    """Registers callbacks and emits events; every event also becomes OpenTelemetry data.

    Longer than one job's class on purpose: it is the seeds' whole calling surface (their
    register, on, trigger, add_callback, enable, history... spellings), and most methods are a
    docstring over one delegating line; the work is in the registry, recorder and metrics.
    ``emit`` and ``emit_async`` stay here as the hot path that joins the three.

    One manager can serve every seed style at once::

        manager.register("on_message", log_message)         # Thea: one event, its kwargs
        manager.register(my_callback)                       # LLMProc: (event, *args, **kwargs)
        manager.register(MyCallbacks())                     # class: a method per event
        manager.register(Logger(), callback_types=[CallbackType.MODULE_END])  # LogiLLM filter

        @manager.on(CallbackEvent.TOOL_START)                # decorator
        async def started(tool_name, tool_args): ...

    Thread-safe: registering, unregistering and declaring may happen while other threads
    emit; emit never takes a lock and never raises a callback's exception unless
    ``raise_errors`` is set. Callbacks run in priority order (higher first, ties in
    registration order) in the emitting thread; see
    :class:`~spanhooks.callbacks.dispatch.Dispatcher` for timeouts and async callbacks.
    """

    def __init__(
        self,
        event_sets: Iterable[EventSet] = BUILTIN_EVENT_SETS,
        *,
        tracer_provider: TracerProvider | None = None,
        capture_content: bool | None = None,
        max_attribute_length: int = 4096,
        raise_errors: bool = False,
        default_timeout: float | None = None,
        history_size: int = 0,
        enabled: bool | None = None,
        max_open_spans: int = 10_000,
        max_span_age: float = 3600.0,
        observer: DispatchObserver | None = None,
        name: str = "spanhooks",
    ) -> None:
        checks.count("history_size", history_size)
        checks.count("max_attribute_length", max_attribute_length, minimum=16)
        checks.count("max_open_spans", max_open_spans, minimum=1)
        checks.seconds("max_span_age", max_span_age)
        self.name = name
        self.enabled = env_flag("SPANHOOKS_ENABLED", True) if enabled is None else bool(enabled)
        """Read by every emit; switched by :meth:`enable` and :meth:`disable`."""
        self._history: deque[EventRecord] | None = (
            deque(maxlen=history_size) if history_size else None
        )
        dispatcher: Dispatcher[EventSpec] = Dispatcher(
            name=name, default_timeout=default_timeout, raise_errors=raise_errors, observer=observer
        )
        self._registry = EventRegistry(dispatcher, name)
        self._dispatcher = dispatcher  # the registry's, never replaced: emit reads its table
        pattern = redact_pattern_from_env()
        policy = AttributePolicy(
            capture_content=capture_content_from_env()
            if capture_content is None
            else capture_content,
            max_length=max_attribute_length,
            redact_patterns=(pattern,) if pattern is not None else (),
        )
        self._recorder = SpanRecorder(
            policy, OpenSpans(max_open_spans, max_span_age), tracer_provider, name
        )
        self.spans = SpanCallbacks(
            Dispatcher(name=f"{name}.spans", raise_errors=raise_errors, observer=observer)
        )
        """Callbacks on spans from any instrumentation; see :meth:`on_span`."""
        self._metrics = EventMetrics(self._registry, self.spans.dispatcher, self._recorder)
        self._quiet: dict[object, EventPlan | tuple[tuple[Route, ...], object]] = {}
        """Events (names, enum members) with one thing to do: their plan, when they only
        record span data, or their routes and the key callbacks receive, when they are not
        traced; never while counting or keeping history. Filled by emit, emptied by
        :meth:`_forget_quiet`."""
        self._listen_for_changes()
        self.declare(*event_sets)

    # -- declarations -------------------------------------------------------------------------

    def declare(self, *event_sets: EventSet) -> None:
        """Make these event sets' events known; names must not clash with declared ones."""
        self._registry.declare(*event_sets, before_publish=self._metrics.declared)
        self._forget_quiet()

    def _listen_for_changes(self) -> None:
        """Have the quiet table emptied when callbacks, the tracer or the policy change."""
        self._dispatcher.on_change = self._forget_quiet
        self._recorder.replanned.listen(self._forget_quiet)
        _watch.found_provider.listen(self._forget_quiet)

    def _forget_quiet(self) -> None:
        """Empty the quiet table after a change of callbacks, counting, tracer or policy.

        Replaced, not cleared: an emit that read the old table before the change (and so
        may have seen the old state) can only add to the old one, which no emit reads again.
        """
        self._quiet = {}

    def events(self) -> list[EventSpec]:
        """Every declared event, in declaration order."""
        return self._registry.events()

    def spec(self, event: EventRef) -> EventSpec:
        """The declaration of ``event`` (a name, an enum member or a spec); raises if unknown."""
        return self._registry.spec(event)

    # -- registration -------------------------------------------------------------------------

    def register(
        self,
        event_or_callback: Any,
        callback: Any = None,
        *,
        events: Iterable[EventRef | type] | None = None,
        callback_types: Iterable[EventRef | type] | None = None,
        priority: int | None = None,
        timeout: float | None = None,
        name: str | None = None,
    ) -> int:
        """Register a callback and return its id (for :meth:`unregister`).

        - ``register(event, fn)``: ``fn`` gets that event's arguments, as emitted.
        - ``register(fn)``: ``fn(event, *args, **kwargs)`` for every event, or only
          ``events`` / ``callback_types`` (LogiLLM's name for the same filter).
        - ``register(obj)``: ``obj``'s methods named after events (``tool_start`` or
          ``on_tool_start``); others are ignored. ``obj.priority`` is used if present.

        Raises ``ValueError`` for unknown events and ``TypeError`` for non-callables, here
        rather than when events are emitted.
        """
        if events is not None and callback_types is not None:
            raise TypeError("pass events= or callback_types=, not both")
        only = events if events is not None else callback_types
        registration = self._registry.register(
            event_or_callback, callback, only=only, priority=priority, timeout=timeout, name=name
        )
        return registration.id

    def on(
        self, *events: EventRef | type, priority: int | None = None, timeout: float | None = None
    ) -> Callable[[F], F]:
        """Decorator form of :meth:`register`.

        With events named, the function receives each event's own arguments; with none, it is
        a generic ``(event, *args, **kwargs)`` callback for every event.
        """

        def decorate(fn: F) -> F:
            if events:
                self.register(list(events), fn, priority=priority, timeout=timeout)
            else:
                self.register(fn, priority=priority, timeout=timeout)
            return fn

        for event in events:
            self.spec(event)  # fail at decoration time, not at first use
        return decorate

    def on_span(
        self,
        callback: Callable[[ReadableSpan], Any] | None = None,
        *,
        phase: str = "end",
        name: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        where: Callable[[ReadableSpan], bool] | None = None,
        priority: int = Priority.NORMAL,
        timeout: float | None = None,
    ) -> Any:
        """Call ``callback(span)`` for spans from any instrumentation, filtered; also a decorator.

        ``manager.on_span(fn, attributes={"gen_ai.operation.name": "chat"})`` sees every chat
        span, whoever produced it, once ``setup()`` has put the callback processor on the
        TracerProvider. Returns the registration id (or, as a decorator, the function).
        """
        options: dict[str, Any] = {
            "phase": phase,
            "name": name,
            "attributes": attributes,
            "where": where,
            "priority": priority,
            "timeout": timeout,
        }
        if callback is None:

            def decorate(fn: F) -> F:
                self.spans.register(fn, **options)
                return fn

            return decorate
        return self.spans.register(callback, **options)

    def add_callback(self, callback: Any, **options: Any) -> CallbackManager:
        """Register and return the manager, for LLMProc-style chaining."""
        self.register(callback, **options)
        return self

    def unregister(self, callback_id: int) -> bool:
        """Remove a callback by the id :meth:`register` or :meth:`on_span` returned."""
        return self._registry.unregister(callback_id) or self.spans.unregister(callback_id)

    def clear(self) -> None:
        """Remove every callback, span callbacks included (declarations stay)."""
        self._registry.clear()
        self.spans.dispatcher.clear()

    def get_registered_callbacks(self) -> list[dict[str, Any]]:
        """What is registered, in priority order, with per-callback error and timeout counts."""
        return [reg.describe() for reg in self._dispatcher.registrations()]

    # -- switches and introspection -----------------------------------------------------------

    def enable(self) -> None:
        """Resume emitting (events emitted while disabled are gone, not queued)."""
        self.enabled = True

    def disable(self) -> None:
        """Make :meth:`emit` return at once: no callbacks, no spans, near-zero cost."""
        self.enabled = False

    def is_enabled(self) -> bool:
        return self.enabled

    @property
    def raise_errors(self) -> bool:
        """Whether a callback's exception is re-raised to the emitter (meant for tests)."""
        return self._dispatcher.raise_errors

    @raise_errors.setter
    def raise_errors(self, value: bool) -> None:
        self._dispatcher.raise_errors = bool(value)

    @property
    def capture_content(self) -> bool:
        return self._recorder.policy.capture_content

    @property
    def attribute_policy(self) -> AttributePolicy:
        """What may be recorded for later events (content capture, lengths, redaction)."""
        return self._recorder.policy

    def set_attribute_policy(self, policy: AttributePolicy) -> None:
        """Replace what may be recorded (content capture, lengths, redaction) for later events."""
        self._recorder.policy = policy

    @property
    def tracer_provider(self) -> TracerProvider | None:
        """The provider spans go through when given explicitly; None means the global one."""
        return self._recorder.provider

    def use_tracer_provider(self, provider: TracerProvider | None) -> None:
        """Emit spans through ``provider`` (None: the global one) from now on."""
        self._recorder.use_tracer_provider(provider)

    def history(self) -> list[EventRecord]:
        """The most recent events, oldest first (empty unless ``history_size`` was set)."""
        return list(self._history) if self._history is not None else []

    def stats(self) -> dict[str, int]:
        """Totals since creation: callback failures, timeouts, dropped nested dispatches,
        ends without a start, spans closed as abandoned and spans still open."""
        return {
            "callback_errors": self._dispatcher.failures,
            "callback_timeouts": self._dispatcher.timeouts,
            "dropped_dispatches": self._dispatcher.dropped,
            **self._recorder.stats(),
        }

    def enable_metrics(self) -> None:
        """Count events and time their callbacks for ``/metrics`` from now on.

        Costs one lock-free increment per emit, and two clock reads per emit that has callbacks.
        """
        self._metrics.enable()
        self._forget_quiet()

    def metric_families(self) -> Iterable[Metric]:
        """Events by name, callback errors and timeouts, open and abandoned spans."""
        return self._metrics.metric_families()

    def close_open_spans(self, reason: str = "process exit") -> int:
        """End every still-open span as abandoned; returns how many. Called by ``shutdown()``."""
        return self._recorder.close_open_spans(reason)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for async callbacks that synchronous emits scheduled as tasks on this loop."""
        await self._dispatcher.drain(timeout)

    def fork(self) -> CallbackManager:
        """A child manager with this one's declarations and callbacks (LLMProc's ``fork_process``).

        Registrations made later on either side are not shared; the child's counts start at 0.
        Spans, history and ``/metrics`` figures stay shared.
        """
        child = CallbackManager.__new__(CallbackManager)
        child.__dict__.update(self.__dict__)
        child._registry = self._registry.copy()
        child._dispatcher = child._registry.dispatcher
        child.spans = SpanCallbacks(self.spans.dispatcher.copy())
        child._quiet = {}
        child._listen_for_changes()
        return child

    # -- emitting -----------------------------------------------------------------------------

    def emit(self, event: Any, /, *args: Any, call_id: object = None, **kwargs: Any) -> str | None:
        """Emit an event: run its callbacks and record it as span data. Never raises.

        ``event`` is a name, an enum member, or a typed event object (LogiLLM). For an end
        event, ``call_id`` picks the call to close; otherwise the innermost open call of that
        kind in the current context is closed. Returns the call id for start events. A typed
        end event whose ``duration`` is None gets the seconds since its call's start.
        """
        if not self.enabled:
            return None
        quiet = self._quiet  # read before what it depends on: see _forget_quiet()
        learn = True  # whether this event may join the quiet table (a name or enum member)
        try:  # the steps of _target(), inlined: this is the hot path
            known = quiet.get(event)
            if known is None:
                spec = self._registry.specs[event]
        except Exception:  # not a name: a typed event, or an object whose __hash__ raises
            typed = self._registry.resolve_payload(event)
            if typed is None:
                return None
            spec, known, learn = typed, None, False
            if typed.payload_type is not None:  # not a name declared on first use
                args = (event, *args)
        if known is not None:
            if isinstance(known, tuple):  # not traced: only its callbacks to run
                self._dispatcher.dispatch(known[0], known[1], args, kwargs)
                return None
            return known.record(args, kwargs, call_id)  # nothing to do but record it
        counts = self._metrics.counts
        if counts is not None:
            next(counts[spec])
        dispatcher = self._dispatcher
        routes = dispatcher.table.get(spec, ())
        recorder = self._recorder
        tracer = recorder.tracer
        if tracer is None and _watch.maybe_set:
            tracer = recorder.find_tracer()
        if tracer is None:
            if routes:
                if counts is None and learn and self._history is None:
                    quiet[event] = (routes, spec.identity)
                dispatcher.dispatch(routes, spec.identity, args, kwargs)
            if self._history is not None:
                self._remember(spec, None)
            return None
        plan = recorder.plans.get(spec) or recorder.plan(spec)
        if not routes and self._history is None:
            if counts is None and learn:
                quiet[event] = plan
            return plan.record(args, kwargs, call_id)
        span, frame, token, new_id, bound = plan.begin(args, kwargs, call_id)
        try:
            if routes:
                dispatcher.dispatch(routes, spec.identity, args, kwargs, span)
        finally:
            if frame is not None:
                plan.finish(frame, token, args, bound)
            if self._history is not None:
                self._remember(spec, new_id if new_id is not None else call_id_of(span))
        return new_id if spec.phase is _START else None

    trigger = emit
    """Thea's name for :meth:`emit`."""

    async def emit_async(
        self,
        event: Any,
        /,
        *args: Any,
        call_id: object = None,
        concurrent: bool = False,
        **kwargs: Any,
    ) -> str | None:
        """Like :meth:`emit`, awaiting async callbacks; ``concurrent`` runs them all at once."""
        if not self.enabled:
            return None
        target = self._target(event, args)
        if target is None:
            return None
        spec, args, routes, traced = target
        dispatcher = self._dispatcher
        if not traced:
            if routes:
                await dispatcher.dispatch_async(
                    routes, spec.identity, args, kwargs, concurrent=concurrent
                )
            if self._history is not None:
                self._remember(spec, None)
            return None
        recorder = self._recorder
        plan = recorder.plans.get(spec) or recorder.plan(spec)
        span, frame, token, new_id, bound = plan.begin(args, kwargs, call_id)
        try:
            if routes:
                await dispatcher.dispatch_async(
                    routes, spec.identity, args, kwargs, span, concurrent=concurrent
                )
        finally:
            if frame is not None:
                plan.finish(frame, token, args, bound)
            if self._history is not None:
                self._remember(spec, new_id if new_id is not None else call_id_of(span))
        return new_id if spec.phase is _START else None

    def notify(self, event: Any, /, *args: Any, span: Span | None = None, **kwargs: Any) -> None:
        """Run ``event``'s callbacks without recording the event as span data.

        For events that already are OpenTelemetry data, such as a span another instrumentation
        made (see :class:`~spanhooks.ForeignSpanBridge`): ``span`` is what callback failures are
        recorded on. Counted like :meth:`emit`; never raises unless ``raise_errors`` is set.
        """
        if not self.enabled:
            return
        target = self._target(event, args)
        if target is None:
            return
        spec, args, routes, _ = target
        if routes:
            self._dispatcher.dispatch(routes, spec.identity, args, kwargs, span)

    def has_callbacks(self, event: Any) -> bool:
        """Whether anything is registered for ``event`` (a cheap check before building its
        arguments)."""
        spec = self._registry.specs.get(event)
        return spec is not None and bool(self._dispatcher.routes(spec))

    def _target(
        self, event: object, args: tuple[Any, ...]
    ) -> tuple[EventSpec, tuple[Any, ...], tuple[Route, ...], bool] | None:
        """What an emit of ``event`` goes to: its spec, arguments, routes and whether it is
        traced; counted. :meth:`emit` inlines these steps, as it is the hot path."""
        try:
            spec = self._registry.specs[event]
        except Exception:  # not a name: a typed event, or an object whose __hash__ raises
            typed = self._registry.resolve_payload(event)
            if typed is None:
                return None
            spec = typed
            if typed.payload_type is not None:  # not a name declared on first use
                args = (event, *args)
        counts = self._metrics.counts
        if counts is not None:
            next(counts[spec])
        recorder = self._recorder
        traced = recorder.tracer is not None or (
            _watch.maybe_set and recorder.find_tracer() is not None
        )
        return spec, args, self._dispatcher.table.get(spec, ()), traced

    def _remember(self, spec: EventSpec, call_id: str | None) -> None:
        assert self._history is not None
        self._history.append(
            EventRecord(time.time_ns(), spec.event_set, spec.name, spec.phase.value, call_id)
        )


_default = CallbackManager()


def get_callback_manager() -> CallbackManager:
    """The process-wide manager that the module-level functions (``spanhooks.emit``...) use."""
    return _default
