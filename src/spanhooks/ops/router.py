"""Event router (seed 000): many handlers per event type by priority, with middleware.

Middleware runs first, as a pipe through the dispatch core: each ``middleware(event_type, data)``
returns the (possibly transformed) data, or None to drop the event. Then every handler for the
event type runs in priority order; handlers are timed for :meth:`EventRouter.get_handler_stats`.
A routed event is a ``router.event`` span event on the current span.

Threading contract: registration is safe from any thread; middleware and handlers run in the
routing thread or task.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import trace
from prometheus_client.core import Metric

from spanhooks._dispatch import Dispatcher, DispatchMode
from spanhooks._metrics import ROUTER_EVENTS, counter, register_source

__all__ = ["EventRouter"]

_MIDDLEWARE = "middleware"


class EventRouter:
    """Routes events by type to handlers, after middleware has had its say."""

    def __init__(self, name: str = "router") -> None:
        self.name = name
        self._handlers: Dispatcher[str] = Dispatcher(name=name)
        self._middleware: Dispatcher[str] = Dispatcher(name=f"{name}.middleware")
        self._lock = threading.Lock()
        self._outcomes: dict[tuple[str, str], int] = {}
        register_source(self)

    def register_realtime_handler(
        self,
        event_type: str,
        handler: Callable[[Any], Any],
        priority: int = 0,
        *,
        timeout: float | None = None,
    ) -> int:
        """Call ``handler(data)`` (sync or async) for every ``event_type`` event; returns an id."""
        if not isinstance(event_type, str) or not event_type:
            raise ValueError(f"event_type must be a non-empty string, got {event_type!r}")
        return self._handlers.add(
            handler,
            {event_type: handler},
            priority=priority,
            timeout=timeout,
            stats=True,
            meta={"event_type": event_type},
        ).id

    def unregister_handler(self, handler_id: int) -> bool:
        return self._handlers.remove(handler_id) or self._middleware.remove(handler_id)

    def register_middleware(self, middleware: Callable[[str, Any], Any], priority: int = 0) -> int:
        """Run ``middleware(event_type, data)`` before handlers; None drops the event."""
        if not callable(middleware):
            raise TypeError(f"middleware must be callable, got {middleware!r}")

        def adapter(data: Any, event_type: str) -> Any:  # the pipe threads its first argument
            return middleware(event_type, data)

        return self._middleware.add(middleware, {_MIDDLEWARE: adapter}, priority=priority).id

    def route(self, event_type: str, data: Any) -> bool:
        """Route one event; True if handlers ran, False if it was dropped or had none."""
        middleware = self._middleware.routes(_MIDDLEWARE)
        if middleware:
            data = self._middleware.dispatch(
                middleware, event_type, (data, event_type), {}, mode=DispatchMode.PIPE
            )
            if data is None:
                return self._outcome(event_type, "dropped")
        routes = self._handlers.routes(event_type)
        if not routes:
            return self._outcome(event_type, "unhandled")
        span = self._annotate(event_type, len(routes))
        self._handlers.dispatch(routes, event_type, (data,), {}, span)
        return self._outcome(event_type, "handled")

    async def route_async(self, event_type: str, data: Any, concurrent: bool = False) -> bool:
        """:meth:`route`, awaiting async middleware and handlers (concurrently if asked)."""
        middleware = self._middleware.routes(_MIDDLEWARE)
        if middleware:
            data = await self._middleware.dispatch_async(
                middleware, event_type, (data, event_type), {}, mode=DispatchMode.PIPE
            )
            if data is None:
                return self._outcome(event_type, "dropped")
        routes = self._handlers.routes(event_type)
        if not routes:
            return self._outcome(event_type, "unhandled")
        span = self._annotate(event_type, len(routes))
        await self._handlers.dispatch_async(
            routes, event_type, (data,), {}, span, concurrent=concurrent
        )
        return self._outcome(event_type, "handled")

    def _annotate(self, event_type: str, handlers: int) -> trace.Span | None:
        span = trace.get_current_span()
        if not span.is_recording():
            return None
        span.add_event(
            "router.event", {"router.event_type": event_type, "router.handlers": handlers}
        )
        return span

    def _outcome(self, event_type: str, outcome: str) -> bool:
        with self._lock:
            key = (event_type, outcome)
            self._outcomes[key] = self._outcomes.get(key, 0) + 1
        return outcome == "handled"

    def get_handler_stats(self) -> dict[str, Any]:
        """Per handler: calls, errors, timeouts and average latency; per event type: outcomes."""
        with self._lock:
            outcomes = {f"{event}:{outcome}": n for (event, outcome), n in self._outcomes.items()}
        return {
            "handlers": [reg.describe() for reg in self._handlers.registrations()],
            "middleware": len(self._middleware.registrations()),
            "events": outcomes,
            "unhandled": sum(
                n for (_, outcome), n in self._outcomes.items() if outcome == "unhandled"
            ),
        }

    def metric_families(self) -> Iterable[Metric]:
        with self._lock:
            outcomes = [(key, float(n)) for key, n in self._outcomes.items()]
        yield counter(
            ROUTER_EVENTS,
            outcomes,
        )
