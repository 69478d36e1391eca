"""The callback manager: register callbacks in any seed's style, emit events, get spans.

``emit`` is the hot path. It reads an immutable routing table (no lock), returns at once when
the manager is disabled, and does no span work when tracing is not configured. Everything
that can be decided about a callback is decided when it is registered.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from contextvars import Token
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Span, Tracer, TracerProvider
from prometheus_client.core import Metric

from spanhooks._attributes import AttributePolicy, redact_pattern_from_env
from spanhooks._context import CallContext
from spanhooks._dispatch import Dispatcher, DispatchObserver, Priority, Route
from spanhooks._events import EventSet, EventSpec, Phase, unknown_event_message
from spanhooks._log import rate_limited
from spanhooks._metrics import (
    CALLBACK_DURATION_SECONDS,
    CALLBACK_ERRORS,
    CALLBACK_TIMEOUTS,
    EVENTS,
    OPEN_SPANS,
    SPANS_ABANDONED,
    UNMATCHED_ENDS,
    BucketHistogram,
    count_value,
    counter,
    gauge,
    register_source,
)
from spanhooks._processors import SpanCallbacks
from spanhooks._spans import SCOPE_PREFIX, Frame, OpenSpans, SpanMapper
from spanhooks._version import __version__
from spanhooks.vocab import BUILTIN_EVENT_SETS

__all__ = ["AbstractCallback", "CallbackManager", "EventRecord"]

F = TypeVar("F", bound=Callable[..., Any])

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CAPTURE_VALUES = _TRUE | {"span_only", "span_and_event", "event_only"}


def env_flag(name: str, default: bool) -> bool:
    """A boolean environment switch; unrecognised values keep the default (and are logged)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    logging.getLogger("spanhooks").warning("ignoring %s=%r: expected true or false", name, raw)
    return default


def capture_content_from_env() -> bool:
    """Whether the GenAI content-capture switch is on (``true`` or a ``SPAN_*`` mode)."""
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in _CAPTURE_VALUES


_START, _END = Phase.START, Phase.END  # module constants: enum attribute access is slow


class _ApiState:
    """Stands in for ``opentelemetry.trace`` should it ever lose ``_TRACER_PROVIDER``."""

    @property
    def _TRACER_PROVIDER(self) -> object:
        provider = trace.get_tracer_provider()
        return None if isinstance(provider, trace.ProxyTracerProvider) else provider


# emit() asks "has anyone set a global provider?" on every call while tracing is off; reading
# the API's module global answers that in one attribute load instead of a function call.
_api: Any = trace if hasattr(trace, "_TRACER_PROVIDER") else _ApiState()


class AbstractCallback:
    """Base class for class callbacks: one no-op method per built-in event; override any.

    Methods may be sync or async. Methods a subclass leaves alone are not called at all.
    Set ``priority`` (a class attribute or property) to order this callback among others;
    higher runs first. Any object with suitably named methods works too; this class only
    documents the names and gives editors something to complete.
    """

    priority: int = Priority.NORMAL

    # LLMProc (also accepted without the ``on_`` prefix, e.g. ``tool_start``)
    def on_tool_start(self, tool_name: Any, tool_args: Any) -> Any: ...
    def on_tool_end(self, tool_name: Any, result: Any) -> Any: ...
    def on_response(self, text: Any) -> Any: ...
    def on_api_request(self, payload_dict: Any) -> Any: ...
    def on_api_response(self, response_obj: Any) -> Any: ...
    def on_turn_start(self, process: Any) -> Any: ...
    def on_turn_end(self, process: Any, response_obj: Any, tool_results: Any) -> Any: ...
    def on_stderr_write(self, text: Any) -> Any: ...

    # Thea
    def on_message(self, user_id: Any, message: Any, timestamp: Any) -> Any: ...
    def on_state_change(self, user_id: Any, old_state: Any, new_state: Any) -> Any: ...
    def on_error(self, user_id: Any, error: Any, traceback: Any) -> Any: ...
    def on_session_timeout(self, user_id: Any, session_id: Any) -> Any: ...
    def on_intent_detected(self, user_id: Any, intent: Any, score: Any) -> Any: ...
    def on_agent_delegated(self, user_id: Any, agent: Any, intent: Any) -> Any: ...

    # LogiLLM (each receives the typed event)
    def on_module_start(self, event: Any) -> Any: ...
    def on_module_end(self, event: Any) -> Any: ...
    def on_optimization_start(self, event: Any) -> Any: ...
    def on_optimization_end(self, event: Any) -> Any: ...
    def on_evaluation_start(self, event: Any) -> Any: ...
    def on_evaluation_end(self, event: Any) -> Any: ...
    def on_hyperparameter_update(self, event: Any) -> Any: ...
    def on_provider_request(self, event: Any) -> Any: ...
    def on_provider_response(self, event: Any) -> Any: ...
    def on_provider_error(self, event: Any) -> Any: ...

    # Meetings (each receives a MeetingEvent)
    def on_meeting_started(self, event: Any) -> Any: ...
    def on_meeting_ended(self, event: Any) -> Any: ...
    def on_turn_changed(self, event: Any) -> Any: ...
    def on_participant_joined(self, event: Any) -> Any: ...
    def on_participant_left(self, event: Any) -> Any: ...
    def on_timeout_occurred(self, event: Any) -> Any: ...

    # spanhooks' GenAI events (fired by the decorators)
    def on_workflow_start(self, name: Any, inputs: Any) -> Any: ...
    def on_workflow_end(self, name: Any, output: Any, error: Any) -> Any: ...
    def on_agent_start(self, agent_name: Any, inputs: Any) -> Any: ...
    def on_agent_end(self, agent_name: Any, output: Any, error: Any) -> Any: ...
    def on_task_start(self, name: Any, inputs: Any) -> Any: ...
    def on_task_end(self, name: Any, output: Any, error: Any) -> Any: ...
    def on_tool_call_start(self, tool_name: Any, arguments: Any) -> Any: ...
    def on_tool_call_end(self, tool_name: Any, result: Any, error: Any) -> Any: ...
    def on_llm_start(self, model: Any, inputs: Any, provider: Any, operation: Any) -> Any: ...
    def on_llm_end(self, model: Any, output: Any, error: Any) -> Any: ...
    def on_first_chunk(self, name: Any, seconds: Any) -> Any: ...


@dataclass(frozen=True)
class EventRecord:
    """One entry of the manager's bounded event history."""

    time_ns: int
    event_set: str
    name: str
    phase: str
    call_id: str | None


EventRef = str | Enum | EventSpec | type
"""An event as callers name it: its name, an enum member, its spec, or its payload type."""


class CallbackManager:
    """Registers callbacks and emits events; every event also becomes OpenTelemetry data.

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
    registration order) in the emitting thread; see :class:`~spanhooks._dispatch.Dispatcher`
    for timeouts and async callbacks.
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
        if not isinstance(history_size, int) or history_size < 0:
            raise ValueError(f"history_size must be a non-negative int, got {history_size!r}")
        if not isinstance(max_attribute_length, int) or max_attribute_length < 16:
            raise ValueError(
                f"max_attribute_length must be an int >= 16, got {max_attribute_length!r}"
            )
        self.name = name
        self._dispatcher: Dispatcher[EventSpec] = Dispatcher(
            name=name, default_timeout=default_timeout, raise_errors=raise_errors, observer=observer
        )
        self._lock = threading.RLock()
        self._specs: dict[object, EventSpec] = {}
        self._by_type: dict[type, EventSpec] = {}
        self._sets: dict[str, EventSet] = {}
        self._wildcards: dict[int, tuple[object, frozenset[EventSpec] | None]] = {}
        self._enabled = env_flag("SPANHOOKS_ENABLED", True) if enabled is None else bool(enabled)
        self._history: deque[EventRecord] | None = (
            deque(maxlen=history_size) if history_size else None
        )
        self._provider = tracer_provider
        self._tracer: Tracer | None = None
        self._tracers: dict[str, Tracer] = {}
        self._active_provider: TracerProvider | None = None
        self._counts: dict[EventSpec, itertools.count[int]] | None = None
        self._latency: BucketHistogram | None = None
        pattern = redact_pattern_from_env()
        policy = AttributePolicy(
            capture_content=capture_content_from_env()
            if capture_content is None
            else capture_content,
            max_length=max_attribute_length,
            redact_patterns=(pattern,) if pattern is not None else (),
        )
        self._mapper = SpanMapper(policy, OpenSpans(max_open_spans, max_span_age))
        self.spans = SpanCallbacks(
            Dispatcher(name=f"{name}.spans", raise_errors=raise_errors, observer=observer)
        )
        """Callbacks on spans from any instrumentation; see :meth:`on_span`."""
        self.declare(*event_sets)

    # -- declarations -------------------------------------------------------------------------

    def declare(self, *event_sets: EventSet) -> None:
        """Make these event sets' events known; names must not clash with declared ones."""
        with self._lock:
            specs = dict(self._specs)
            by_type = dict(self._by_type)
            added: list[EventSpec] = []
            for event_set in event_sets:
                if not isinstance(event_set, EventSet):
                    raise TypeError(f"declare() takes EventSet objects, got {event_set!r}")
                if self._sets.get(event_set.name) is event_set:
                    continue
                for spec in event_set:
                    clash = specs.get(spec.name)
                    if clash is not None:
                        raise ValueError(
                            f"event {spec.name!r} of set {event_set.name!r} is already declared "
                            f"by set {clash.event_set!r}"
                        )
                    specs[spec.name] = spec
                    if spec.member is not None:
                        specs[spec.member] = spec
                    if spec.payload_type is not None:
                        by_type[spec.payload_type] = spec
                    added.append(spec)
                self._sets[event_set.name] = event_set
            if self._counts is not None:
                counts = dict(self._counts)
                counts.update((spec, itertools.count()) for spec in added)
                self._counts = counts
            self._specs, self._by_type = specs, by_type
            for reg_id, (callback, only) in self._wildcards.items():
                targets = self._targets_for(
                    callback, [s for s in added if only is None or s in only]
                )
                self._dispatcher.extend(reg_id, targets)

    def events(self) -> list[EventSpec]:
        """Every declared event, in declaration order."""
        return [
            spec
            for name, spec in self._specs.items()
            if isinstance(name, str) and name == spec.name
        ]

    def spec(self, event: EventRef) -> EventSpec:
        """The declaration of ``event`` (a name, an enum member or a spec); raises if unknown."""
        if isinstance(event, EventSpec):
            if self._specs.get(event.name) is not event:
                raise ValueError(f"{event!r} is not declared on this manager")
            return event
        if isinstance(event, type) and event in self._by_type:
            return self._by_type[event]
        try:
            return self._specs[event]
        except (KeyError, TypeError):
            raise ValueError(unknown_event_message(event, self._names())) from None

    def _names(self) -> list[str]:
        return [name for name in self._specs if isinstance(name, str)]

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
        if callback is not None:
            if only is not None:
                raise TypeError("register(event, callback) names its events; drop events=")
            named = (
                list(event_or_callback)
                if isinstance(event_or_callback, list | tuple | set | frozenset)
                else [event_or_callback]
            )
            specs = [self.spec(e) for e in named]
            if not callable(callback):
                raise TypeError(f"callback for {specs[0].name!r} is not callable: {callback!r}")
            return self._dispatcher.add(
                callback,
                dict.fromkeys(specs, callback),
                priority=_priority(callback, priority),
                timeout=timeout,
                name=name,
                keys=[spec.name for spec in specs],
            ).id
        target = event_or_callback
        if isinstance(target, str | Enum | EventSpec):
            raise TypeError(f"register({target!r}) needs a callback: register(event, callback)")
        filtered = frozenset(self.spec(e) for e in only) if only is not None else None
        chosen = [s for s in self.events() if filtered is None or s in filtered]
        is_function = _is_function(target)
        targets = self._targets_for(target, chosen)
        if not is_function and not targets:
            raise TypeError(
                f"{target!r} is not callable and has no methods named after the declared events "
                f"(e.g. tool_start or on_tool_start)"
            )
        with self._lock:
            registration = self._dispatcher.add(
                target,
                targets,
                passes_key=is_function,
                priority=_priority(target, priority),
                timeout=timeout,
                name=name,
                keys=[s.name for s in filtered] if filtered is not None else None,
                meta={"style": "function" if is_function else "class"},
            )
            self._wildcards[registration.id] = (target, filtered)
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
        with self._lock:
            self._wildcards.pop(callback_id, None)
            return self._dispatcher.remove(callback_id) or self.spans.unregister(callback_id)

    def clear(self) -> None:
        """Remove every callback, span callbacks included (declarations stay)."""
        with self._lock:
            self._wildcards.clear()
            self._dispatcher.clear()
            self.spans.dispatcher.clear()

    def get_registered_callbacks(self) -> list[dict[str, Any]]:
        """What is registered, in priority order, with per-callback error and timeout counts."""
        return [reg.describe() for reg in self._dispatcher.registrations()]

    def _targets_for(
        self, target: object, specs: Iterable[EventSpec]
    ) -> dict[EventSpec, Callable[..., Any]]:
        if _is_function(target):
            return dict.fromkeys(specs, cast("Callable[..., Any]", target))
        methods = _event_methods(target)
        targets: dict[EventSpec, Callable[..., Any]] = {}
        for spec in specs:
            for method_name in spec.method_names:
                if method_name in methods:
                    targets[spec] = methods[method_name]
                    break
        return targets

    # -- switches and introspection -----------------------------------------------------------

    def enable(self) -> None:
        """Resume emitting (events emitted while disabled are gone, not queued)."""
        self._enabled = True

    def disable(self) -> None:
        """Make :meth:`emit` return at once: no callbacks, no spans, near-zero cost."""
        self._enabled = False

    def is_enabled(self) -> bool:
        return self._enabled

    @property
    def raise_errors(self) -> bool:
        """Whether a callback's exception is re-raised to the emitter (meant for tests)."""
        return self._dispatcher.raise_errors

    @raise_errors.setter
    def raise_errors(self, value: bool) -> None:
        self._dispatcher.raise_errors = bool(value)

    @property
    def capture_content(self) -> bool:
        return self._mapper.policy.capture_content

    def set_attribute_policy(self, policy: AttributePolicy) -> None:
        """Replace what may be recorded (content capture, lengths, redaction) for later events."""
        self._mapper.policy = policy

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
            "unmatched_ends": self._mapper.unmatched_ends,
            "abandoned_spans": self._mapper.open.abandoned,
            "open_spans": len(self._mapper.open),
        }

    def enable_metrics(self) -> None:
        """Count events and time their callbacks for ``/metrics`` from now on.

        Costs one lock-free increment per emit, and two clock reads per emit that has callbacks.
        """
        with self._lock:
            if self._counts is None:
                self._counts = {spec: itertools.count() for spec in self.events()}
                self._latency = BucketHistogram()
                self._dispatcher.observer = _LatencyObserver(self, self._dispatcher.observer)
                self._dispatcher.timed = True
                register_source(self)

    def metric_families(self) -> Iterable[Metric]:
        """Events by name, callback errors and timeouts, open and abandoned spans."""
        counts = self._counts or {}
        yield counter(
            EVENTS,
            [((spec.event_set, spec.name), float(count_value(c))) for spec, c in counts.items()],
        )
        registrations = [*self._dispatcher.registrations(), *self.spans.dispatcher.registrations()]
        yield counter(
            CALLBACK_ERRORS,
            [((reg.name,), float(reg.errors)) for reg in registrations],
        )
        yield counter(
            CALLBACK_TIMEOUTS,
            [((reg.name,), float(reg.timeouts)) for reg in registrations],
        )
        if self._latency is not None:
            yield self._latency.family(CALLBACK_DURATION_SECONDS)
        stats = self.stats()
        yield gauge(
            OPEN_SPANS,
            [((), stats["open_spans"])],
        )
        yield counter(
            SPANS_ABANDONED,
            [((), stats["abandoned_spans"])],
        )
        yield counter(
            UNMATCHED_ENDS,
            [((), stats["unmatched_ends"])],
        )

    def close_open_spans(self, reason: str = "process exit") -> int:
        """End every still-open span as abandoned; returns how many. Called by ``shutdown()``."""
        return self._mapper.open.close_all(reason)

    def fork(self) -> CallbackManager:
        """A child manager with this one's declarations and callbacks (LLMProc's ``fork_process``).

        Registrations made later on either side are not shared; the child's counts start at 0.
        """
        child = CallbackManager.__new__(CallbackManager)
        child.__dict__.update(self.__dict__)
        with self._lock:
            child._lock = threading.RLock()
            child._wildcards = dict(self._wildcards)
            child._dispatcher = self._dispatcher.copy()
            child.spans = SpanCallbacks(self.spans.dispatcher.copy())
        return child

    # -- emitting -----------------------------------------------------------------------------

    def emit(self, event: Any, /, *args: Any, call_id: object = None, **kwargs: Any) -> str | None:
        """Emit an event: run its callbacks and record it as span data. Never raises.

        ``event`` is a name, an enum member, or a typed event object (LogiLLM). For an end
        event, ``call_id`` picks the call to close; otherwise the innermost open call of that
        kind in the current context is closed. Returns the call id for start events.
        """
        if not self._enabled:
            return None
        try:  # the steps of _target(), inlined: this is the hot path
            spec = self._specs[event]
        except (KeyError, TypeError):
            typed = self._resolve(event)
            if typed is None:
                return None
            spec, args = typed, (event, *args)
        if self._counts is not None:
            next(self._counts[spec])
        routes = self._dispatcher._routes.get(spec, ())
        tracer = self._tracer
        if tracer is None and (self._provider is not None or _api._TRACER_PROVIDER is not None):
            tracer = self._find_tracer()
        if tracer is None:
            if routes:
                self._dispatcher.dispatch(routes, spec.identity, args, kwargs)
            if self._history is not None:
                self._remember(spec, None)
            return None
        bound = _bind(spec, args, kwargs)
        span, frame, token, new_id = self._begin(tracer, spec, args, bound, call_id)
        try:
            if routes:
                self._dispatcher.dispatch(routes, spec.identity, args, kwargs, span)
        finally:
            self._complete(spec, bound, frame, token, new_id)
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
        if not self._enabled:
            return None
        target = self._target(event, args)
        if target is None:
            return None
        spec, args, routes, tracer = target
        if self._counts is not None:
            next(self._counts[spec])
        if tracer is None:
            if routes:
                await self._dispatcher.dispatch_async(
                    routes, spec.identity, args, kwargs, concurrent=concurrent
                )
            if self._history is not None:
                self._remember(spec, None)
            return None
        bound = _bind(spec, args, kwargs)
        span, frame, token, new_id = self._begin(tracer, spec, args, bound, call_id)
        try:
            if routes:
                await self._dispatcher.dispatch_async(
                    routes, spec.identity, args, kwargs, span, concurrent=concurrent
                )
        finally:
            self._complete(spec, bound, frame, token, new_id)
        return new_id if spec.phase is _START else None

    def notify(self, event: Any, /, *args: Any, span: Span | None = None, **kwargs: Any) -> None:
        """Run ``event``'s callbacks without recording the event as span data.

        For events that already are OpenTelemetry data, such as a span another instrumentation
        made (see :class:`~spanhooks.ForeignSpanBridge`): ``span`` is what callback failures are
        recorded on. Counted like :meth:`emit`; never raises unless ``raise_errors`` is set.
        """
        if not self._enabled:
            return
        target = self._target(event, args)
        if target is None:
            return
        spec, args, routes, _ = target
        if self._counts is not None:
            next(self._counts[spec])
        if routes:
            self._dispatcher.dispatch(routes, spec.identity, args, kwargs, span)

    def has_callbacks(self, event: Any) -> bool:
        """Whether anything is registered for ``event`` (a cheap check before building its
        arguments)."""
        spec = self._specs.get(event)
        return spec is not None and bool(self._dispatcher.routes(spec))

    def _target(
        self, event: object, args: tuple[Any, ...]
    ) -> tuple[EventSpec, tuple[Any, ...], tuple[Route, ...], Tracer | None] | None:
        """What an emit of ``event`` goes to: its spec, arguments, routes and tracer.

        :meth:`emit` inlines these steps, as it is the hot path; everything else calls this.
        """
        try:
            spec = self._specs[event]
        except (KeyError, TypeError):
            typed = self._resolve(event)
            if typed is None:
                return None
            spec, args = typed, (event, *args)
        tracer = self._tracer
        if tracer is None and (self._provider is not None or _api._TRACER_PROVIDER is not None):
            tracer = self._find_tracer()
        return spec, args, self._dispatcher._routes.get(spec, ()), tracer

    def _resolve(self, event: object) -> EventSpec | None:
        spec = self._by_type.get(type(event))
        if spec is None:
            rate_limited.log(
                logging.WARNING,
                f"unknown:{type(event).__name__}:{str(event)[:64]}",
                "%s: emit ignored: %s",
                self.name,
                unknown_event_message(event, self._names()),
            )
        return spec

    def _find_tracer(self) -> Tracer | None:
        """The tracer to use, or None while tracing is not configured (checked cheaply)."""
        provider = self._provider
        if provider is None:
            provider = trace.get_tracer_provider()
            if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
                return None
        self._tracer = provider.get_tracer("spanhooks", __version__)
        self._active_provider = provider
        return self._tracer

    def _tracer_for(self, event_set: str) -> Tracer:
        """The tracer whose instrumentation scope names ``event_set`` (``spanhooks.<set>``)."""
        tracer = self._tracers.get(event_set)
        if tracer is None:
            assert self._active_provider is not None  # set with self._tracer, before any span
            tracer = self._active_provider.get_tracer(f"{SCOPE_PREFIX}{event_set}", __version__)
            self._tracers = {**self._tracers, event_set: tracer}
        return tracer

    def use_tracer_provider(self, provider: TracerProvider | None) -> None:
        """Emit spans through ``provider`` (None: the global one) from now on."""
        self._provider = provider
        self._tracer = None
        self._tracers = {}

    def _begin(
        self,
        tracer: Tracer,
        spec: EventSpec,
        args: tuple[Any, ...],
        bound: Mapping[str, Any],
        call_id: object,
    ) -> tuple[Span | None, Frame | None, Token[Context] | None, str | None]:
        """The span side of an emit, before its callbacks run.

        Returns the span the event went to, the frame an end closes (closed by
        :meth:`_complete`, after the callbacks, which run inside the call's context), the token
        of that context if it had to be attached, and the event's call id.
        """
        tracer = self._tracers.get(spec.event_set) or self._tracer_for(spec.event_set)
        mapper = self._mapper
        span: Span | None = None
        frame: Frame | None = None
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
                point = mapper.point(tracer, spec, bound)
                sc = point.get_span_context()
                if sc.is_valid:
                    span, new_id = point, "%016x" % sc.span_id  # noqa: UP031
            if spec.payload_type is not None and span is not None:
                _stamp_context(args[0], span)
        except Exception as exc:  # instrumentation must not break the caller
            rate_limited.log(
                logging.ERROR,
                "span-mapping",
                "%s: span mapping failed for %s: %r",
                self.name,
                spec.name,
                exc,
                exc_info=exc,
            )
        return span, frame, token, new_id

    def _complete(
        self,
        spec: EventSpec,
        bound: Mapping[str, Any],
        frame: Frame | None,
        token: Token[Context] | None,
        call_id: str | None,
    ) -> None:
        """The span side of an emit after its callbacks: an end's span is closed here."""
        if frame is not None:
            try:
                if token is not None:
                    otel_context.detach(token)
                self._mapper.finish(frame, spec, bound)
            except Exception as exc:
                rate_limited.log(
                    logging.ERROR,
                    "span-mapping",
                    "%s: closing span failed for %s: %r",
                    self.name,
                    spec.name,
                    exc,
                    exc_info=exc,
                )
        if self._history is not None:
            self._remember(spec, call_id)

    def _remember(self, spec: EventSpec, call_id: str | None) -> None:
        assert self._history is not None
        self._history.append(
            EventRecord(time.time_ns(), spec.event_set, spec.name, spec.phase.value, call_id)
        )


class _LatencyObserver(DispatchObserver):
    """Feeds per-event callback latency (with the span's trace id as exemplar) to metrics."""

    def __init__(self, manager: CallbackManager, inner: DispatchObserver) -> None:
        self._manager = manager
        self._inner = inner

    def callback_failed(self, registration: Any, key: object, error: BaseException) -> None:
        self._inner.callback_failed(registration, key, error)

    def callback_timed_out(self, registration: Any, key: object) -> None:
        self._inner.callback_timed_out(registration, key)

    def callback_latency(self, registration: Any, key: object, seconds: float) -> None:
        self._inner.callback_latency(registration, key, seconds)

    def dispatch_dropped(self, key: object) -> None:
        self._inner.dispatch_dropped(key)

    def dispatched(self, key: object, seconds: float, span: Span | None) -> None:
        latency = self._manager._latency
        spec = self._manager._specs.get(key)
        if latency is None or spec is None:
            return
        trace_id = None
        if span is not None and span.get_span_context().is_valid:
            trace_id = format(span.get_span_context().trace_id, "032x")
        latency.observe((spec.event_set, spec.name), seconds, trace_id)


def _bind(spec: EventSpec, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    names = spec.args
    bound = dict(zip(names, args))  # noqa: B905  (strict=False, as a keyword, doubles the cost)
    if len(args) > len(names):
        for index in range(len(names), len(args)):
            bound[f"arg{index}"] = args[index]
    if kwargs:
        bound.update(kwargs)
    return bound


def _stamp_context(event: object, span: Span) -> None:
    """Fill a typed event's ``context`` (LogiLLM's call ids) from its span."""
    sc = span.get_span_context()
    parent = getattr(span, "parent", None)
    context = CallContext(
        format(sc.span_id, "016x"),
        format(parent.span_id, "016x") if parent is not None and parent.is_valid else None,
        format(sc.trace_id, "032x"),
    )
    with contextlib.suppress(Exception):  # a frozen or slotted payload: ids are on the span
        event.context = context  # type: ignore[attr-defined]


def _is_function(target: object) -> bool:
    return (
        inspect.isfunction(target)
        or inspect.ismethod(target)
        or inspect.isbuiltin(target)
        or hasattr(target, "func")  # functools.partial
        or (callable(target) and not _event_methods(target))
    )


_BASE_METHODS = {
    name: getattr(AbstractCallback, name)
    for name in dir(AbstractCallback)
    if name.startswith("on_")
}


def _event_methods(target: object) -> dict[str, Callable[..., Any]]:
    """Methods of a class callback that could handle events, minus AbstractCallback's no-ops."""
    if inspect.isfunction(target) or inspect.ismethod(target) or isinstance(target, type):
        return {}
    methods: dict[str, Callable[..., Any]] = {}
    cls = type(target)
    for attr in dir(cls):
        if attr.startswith("_"):
            continue
        raw = inspect.getattr_static(cls, attr, None)
        if (
            raw is None
            or not callable(raw)
            or isinstance(raw, staticmethod | classmethod | property)
        ):
            continue
        if _BASE_METHODS.get(attr) is raw:
            continue
        methods[attr] = getattr(target, attr)
    for attr, value in getattr(target, "__dict__", {}).items():  # handlers set per instance
        if not attr.startswith("_") and callable(value):
            methods[attr] = value
    return methods


def _priority(target: object, explicit: int | None) -> int:
    if explicit is not None:
        return explicit
    value = getattr(target, "priority", None)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return int(Priority.NORMAL)
