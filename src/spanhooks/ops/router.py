"""Event router (seed 000): many handlers per event type, by priority, after middleware.

Middleware runs first, as a pipe through the dispatch core: each ``middleware(event_type, data)``
returns the (possibly transformed) data for the next one, or None to drop the event; a raising
middleware is logged and skipped. Then every handler for the event type runs in priority
order, timed by the core for :meth:`EventRouter.get_handler_stats`. Each routed event is a
``router.event`` span event (``router.event_type``, ``router.handlers``, ``router.outcome``)
on the current recording span; with none open, routing makes a ``route {event_type}`` span of
its own carrying the same, current while middleware and handlers run (so what they emit nests
under it; a failing handler is a ``spanhooks.callback.error`` event on it). The event's data
is content: recorded (``router.data``, as handlers got it) only when the active attribute
policy captures content, with sensitive keys and redaction patterns applied.

Threading contract: registering is safe from any thread and never blocks routing; middleware
and handlers run in the routing thread or task (async ones awaited by :meth:`route_async`).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, TracerProvider
from prometheus_client.core import Metric

from spanhooks.callbacks.dispatch import Dispatcher, DispatchMode
from spanhooks.callbacks.routes import Route, is_async_callable
from spanhooks.metrics.families import ROUTER_EVENTS, counter, register_source
from spanhooks.ops.errors import own_span
from spanhooks.tracing.attributes import active_policy
from spanhooks.tracing.bounds import bounded_name
from spanhooks.tracing.spans import live_context
from spanhooks.util.log import logger

__all__ = ["EventRouter"]

MAX_EVENT_TYPES = 256
"""Distinct event types counted one by one; beyond this, others count as ``_other``."""

_MIDDLEWARE = "middleware"  # the one dispatcher key of middleware
_HANDLED, _DROPPED, _UNHANDLED = "handled", "dropped", "unhandled"


class EventRouter:
    """Routes events by type to handlers, after middleware has had its say.

    ``name`` labels log lines and the ``spanhooks_router_events`` metric's dispatcher;
    ``tracer_provider`` makes the spans of events routed outside any span (default: the
    global provider).
    """

    def __init__(
        self, name: str = "router", *, tracer_provider: TracerProvider | None = None
    ) -> None:
        self.name = name
        self._tracer = trace.get_tracer("spanhooks.router", tracer_provider=tracer_provider)
        self._handlers: Dispatcher[str] = Dispatcher(name=name)
        self._middleware: Dispatcher[str] = Dispatcher(name=f"{name}.middleware")
        self._lock = threading.Lock()
        self._outcomes: Counter[tuple[str, str]] = Counter()
        self._event_types: set[str] = set()
        register_source(self)

    def register_realtime_handler(
        self,
        event_type: str,
        handler: Callable[[Any], Any],
        priority: int = 0,
        timeout: float | None = None,
    ) -> int:
        """Call ``handler(data)`` (sync or async) for every ``event_type`` event, higher
        ``priority`` first; returns an id for :meth:`unregister_handler`."""
        if not isinstance(event_type, str) or not event_type:
            raise ValueError(f"event_type must be a non-empty str, got {event_type!r}")
        registration = self._handlers.add(
            handler,
            {event_type: handler},
            priority=priority,
            timeout=timeout,
            stats=True,
            meta={"event_type": event_type},
        )
        return registration.id

    def register_middleware(self, middleware: Callable[[str, Any], Any], priority: int = 0) -> int:
        """Run ``middleware(event_type, data)`` (sync or async) before any handler, higher
        ``priority`` first. It returns the data to pass on (transformed or not) or None to drop
        the event. Returns an id for :meth:`unregister_handler`."""
        if not callable(middleware):
            raise TypeError(f"middleware must be callable, got {middleware!r}")
        # The core's PIPE threads the *first* argument, so the adapter takes data first. It is
        # built once, here, and is async exactly when the middleware is.
        adapter: Callable[[Any, str], Any]
        if is_async_callable(middleware):

            async def adapter(data: Any, event_type: str) -> Any:
                return await middleware(event_type, data)

        else:

            def adapter(data: Any, event_type: str) -> Any:
                return middleware(event_type, data)

        return self._middleware.add(middleware, {_MIDDLEWARE: adapter}, priority=priority).id

    def unregister_handler(self, handler_id: int) -> bool:
        """Remove a handler or a middleware by id; True if it was registered."""
        return self._handlers.remove(handler_id) or self._middleware.remove(handler_id)

    def route(self, event_type: str, data: Any) -> bool:
        """Route one event from synchronous code; True if handlers ran, False if a middleware
        dropped it or no handler is registered for its type. Never raises a handler's error.

        Async handlers run to completion (on a private loop; inside a running loop, as tasks).
        Async middleware must be awaited to pass data on, so inside a running loop it needs
        :meth:`route_async`; ``route`` raises ``RuntimeError`` rather than drop the event.
        """
        middleware = self._middleware.routes(_MIDDLEWARE)
        if middleware and _any_async(middleware) and _loop_running():
            raise RuntimeError(
                f"{self.name}: async middleware inside a running event loop needs "
                "'await router.route_async(...)'"
            )
        span, own = self._span(event_type)
        with own_span(own):
            if middleware:
                data = self._middleware.dispatch(
                    middleware, event_type, (data, event_type), {}, span, DispatchMode.PIPE
                )
                if data is None:
                    return self._outcome(event_type, _DROPPED, span, 0, None, own)
            routes = self._handlers.routes(event_type)
            if not routes:
                return self._outcome(event_type, _UNHANDLED, span, 0, data, own)
            self._outcome(event_type, _HANDLED, span, len(routes), data, own)
            self._handlers.dispatch(routes, event_type, (data,), {}, span)
            return True

    async def route_async(self, event_type: str, data: Any, concurrent: bool = False) -> bool:
        """:meth:`route`, awaiting async middleware and handlers. With ``concurrent`` the
        handlers run at once (``asyncio.gather``); middleware always runs in order."""
        span, own = self._span(event_type)
        with own_span(own):
            middleware = self._middleware.routes(_MIDDLEWARE)
            if middleware:
                data = await self._middleware.dispatch_async(
                    middleware, event_type, (data, event_type), {}, span, DispatchMode.PIPE
                )
                if data is None:
                    return self._outcome(event_type, _DROPPED, span, 0, None, own)
            routes = self._handlers.routes(event_type)
            if not routes:
                return self._outcome(event_type, _UNHANDLED, span, 0, data, own)
            self._outcome(event_type, _HANDLED, span, len(routes), data, own)
            await self._handlers.dispatch_async(
                routes, event_type, (data,), {}, span, concurrent=concurrent
            )
            return True

    def _span(self, event_type: str) -> tuple[Span, Span | None]:
        """The recording span to note the event on, and whether it is our own (made because
        none was open: ``route {event_type}``, to be made current and ended by the caller)."""
        ctx, _ = live_context()
        span = trace.get_current_span(ctx)
        if span.is_recording():
            return span, None
        policy = active_policy()  # an event type could carry what must be hidden
        own = self._tracer.start_span(
            bounded_name(policy.scrub(f"route {event_type}")),
            context=ctx,
            attributes=policy.recorded({"router.name": self.name, "router.event_type": event_type}),
        )
        return own, own

    def get_handler_stats(self) -> dict[str, Any]:
        """Plain data: ``handlers`` (per handler: id, name, event_type, priority, calls, errors,
        timeouts, avg_seconds), ``middleware`` (the same, without timing), ``events`` (per
        event type: counts by outcome handled/dropped/unhandled) and the ``unhandled`` and
        ``dropped`` totals."""
        with self._lock:
            outcomes = dict(self._outcomes)
        events: dict[str, dict[str, int]] = {}
        for (event_type, outcome), n in outcomes.items():
            events.setdefault(event_type, {})[outcome] = n
        return {
            "handlers": [_handler_stats(reg.describe()) for reg in self._handlers.registrations()],
            "middleware": [
                {"id": reg.id, "name": reg.name, "priority": reg.priority, "errors": reg.errors}
                for reg in self._middleware.registrations()
            ],
            "events": events,
            "unhandled": sum(n for (_, outcome), n in outcomes.items() if outcome == _UNHANDLED),
            "dropped": sum(n for (_, outcome), n in outcomes.items() if outcome == _DROPPED),
        }

    def metric_families(self) -> Iterable[Metric]:
        """The ``spanhooks_router_events`` counter by event type and outcome, at scrape time."""
        with self._lock:
            outcomes = [(key, float(n)) for key, n in self._outcomes.items()]
        yield counter(ROUTER_EVENTS, outcomes)

    def _outcome(
        self,
        event_type: str,
        outcome: str,
        span: Span,
        handlers: int,
        data: Any,
        own: Span | None,
    ) -> bool:
        """Count the outcome (event types bounded), note it on the span; True if handled."""
        with self._lock:
            label = event_type
            if label not in self._event_types:
                if len(self._event_types) < MAX_EVENT_TYPES:
                    self._event_types.add(label)
                else:
                    label = "_other"
            self._outcomes[label, outcome] += 1
        policy = active_policy()
        ids: dict[str, Any] = {
            "router.event_type": event_type,
            "router.handlers": handlers,
            "router.outcome": outcome,
        }
        if own is not None:
            own.set_attributes(
                policy.recorded({"router.handlers": handlers, "router.outcome": outcome})
            )
        attributes = dict(ids)
        if policy.capture_content and data is not None:
            attributes["router.data"] = data
        span.add_event("router.event", policy.recorded(attributes))
        if outcome == _UNHANDLED:
            logger.debug("%s: no handler for event type %r", self.name, event_type)
        return outcome == _HANDLED


def _any_async(routes: tuple[Route, ...]) -> bool:
    return any(route.is_async for route in routes)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _handler_stats(described: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "name", "event_type", "priority", "calls", "errors", "timeouts", "avg_seconds")
    return {key: described.get(key) for key in keep}
