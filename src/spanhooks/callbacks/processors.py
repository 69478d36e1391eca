"""Span processors: user callbacks as a processor, and isolation for processors users add.

:class:`CallbackSpanProcessor` puts the manager's span callbacks on the TracerProvider, so spans
from any instrumentation reach them, through the same dispatch core as events.
:class:`IsolatedSpanProcessor` wraps a user's processor so that its exceptions are counted and
logged instead of reaching the code that ended the span or starving the next processor (the
SDK's own multi-processor stops at the first exception), and so that its ``force_flush`` and
``shutdown`` keep their time bounds even when it does not (the SDK's BatchSpanProcessor ignores
the flush timeout and may wait 30 s at shutdown).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from spanhooks.callbacks.dispatch import Dispatcher
from spanhooks.callbacks.routes import callable_name
from spanhooks.util.deadline import SharedDeadline
from spanhooks.util.log import rate_limited

__all__ = ["CallbackSpanProcessor", "IsolatedSpanProcessor", "SpanCallbacks"]

SpanFilter = Callable[[ReadableSpan], bool]
_PHASES = ("start", "end")


class SpanCallbacks:
    """Callbacks on spans, filtered by name and attributes, keyed by phase ("start"/"end").

    Filters are compiled into the route when registering, so dispatch is the core's usual
    loop. Thread-safe like :class:`~spanhooks.callbacks.dispatch.Dispatcher`.
    """

    def __init__(self, dispatcher: Dispatcher[str]) -> None:
        self.dispatcher = dispatcher

    def register(
        self,
        callback: Callable[[ReadableSpan], Any],
        *,
        phase: str = "end",
        name: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        where: SpanFilter | None = None,
        priority: int = 0,
        timeout: float | None = None,
    ) -> int:
        """Call ``callback(span)`` when a matching span starts or ends; returns an id.

        A span matches when its name equals ``name`` (if given), every ``attributes`` item
        equals the span's attribute, and ``where(span)`` is true (if given).
        """
        if phase not in _PHASES:
            raise ValueError(f"phase must be 'start' or 'end', got {phase!r}")
        if not callable(callback):
            raise TypeError(f"span callback is not callable: {callback!r}")
        if where is not None and not callable(where):
            raise TypeError(f"where= must be a callable taking a span, got {where!r}")
        wanted = dict(attributes or {})
        label = callable_name(callback)

        def matches(span: ReadableSpan) -> bool:
            if name is not None and span.name != name:
                return False
            attrs = span.attributes or {}
            if any(attrs.get(key) != value for key, value in wanted.items()):
                return False
            return where is None or bool(where(span))

        if name is None and not wanted and where is None:
            target: Callable[[ReadableSpan], Any] = callback
        else:

            def target(span: ReadableSpan) -> Any:
                return callback(span) if matches(span) else None

        return self.dispatcher.add(
            callback, {phase: target}, priority=priority, timeout=timeout, name=label
        ).id

    def unregister(self, callback_id: int) -> bool:
        return self.dispatcher.remove(callback_id)


class CallbackSpanProcessor(SpanProcessor):
    """Runs span callbacks from ``on_start``/``on_end``; does nothing when none are registered."""

    def __init__(self, callbacks: SpanCallbacks) -> None:
        self._callbacks = callbacks

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        dispatcher = self._callbacks.dispatcher
        routes = dispatcher.routes("start")
        if routes:
            dispatcher.dispatch(routes, "start", (span,), {}, span)

    def on_end(self, span: ReadableSpan) -> None:
        dispatcher = self._callbacks.dispatcher
        routes = dispatcher.routes("end")
        if routes:
            dispatcher.dispatch(routes, "end", (span,), {})

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class IsolatedSpanProcessor(SpanProcessor):
    """Wraps a span processor so its exceptions are contained, counted and logged.

    ``on_start``/``on_end`` run inline in the thread that starts or ends the span. ``force_flush``
    and ``shutdown`` run the inner call on a daemon thread and wait at most ``timeout_millis``,
    or what is left of ``deadline`` (shared with spanhooks' exporters), then leave it behind.
    """

    def __init__(self, inner: SpanProcessor, deadline: SharedDeadline | None = None) -> None:
        if not isinstance(inner, SpanProcessor) and not all(
            callable(getattr(inner, method, None)) for method in ("on_start", "on_end", "shutdown")
        ):
            raise TypeError(f"not a span processor: {inner!r}")
        self.inner = inner
        self.name = callable_name(type(inner))
        self.errors = 0
        self.deadline = deadline

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            self.inner.on_start(span, parent_context=parent_context)
        except Exception as exc:
            self._failed("on_start", exc)

    def _on_ending(self, span: Span) -> None:
        on_ending = getattr(self.inner, "_on_ending", None)
        if on_ending is None:
            return
        try:
            on_ending(span)
        except Exception as exc:
            self._failed("_on_ending", exc)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self.inner.on_end(span)
        except Exception as exc:
            self._failed("on_end", exc)

    def shutdown(self) -> None:
        seconds = self.deadline.remaining() if self.deadline is not None else None
        self._bounded("shutdown", self.inner.shutdown, seconds)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(
            self._bounded(
                "force_flush", lambda: self.inner.force_flush(timeout_millis), timeout_millis / 1000
            )
        )

    def _bounded(self, method: str, call: Callable[[], Any], seconds: float | None) -> Any:
        """``call()`` on a daemon thread, waited for at most ``seconds``; False if abandoned."""
        outcome: list[Any] = [False]

        def run() -> None:
            try:
                outcome[0] = call()
            except Exception as exc:
                self._failed(method, exc)
                outcome[0] = False

        worker = threading.Thread(target=run, name=f"spanhooks-{method}", daemon=True)
        worker.start()
        worker.join(seconds)
        if worker.is_alive():
            rate_limited.log(
                logging.WARNING,
                f"processor-time:{self.name}",
                "span processor %s did not finish %s within %.3gs; leaving it behind",
                self.name,
                method,
                seconds,
            )
            return False
        return outcome[0]

    def _failed(self, method: str, exc: Exception) -> None:
        self.errors += 1
        rate_limited.log(
            logging.ERROR,
            f"processor:{self.name}",
            "span processor %s raised %s in %s; continuing with the next processor",
            self.name,
            type(exc).__name__,
            method,
            exc_info=exc,
        )
