"""Centralised error handling (seed 000): context-specific handlers, severities and statistics.

:meth:`ErrorHandler.handle_error` records an error on the current span (an ``exception`` event,
an ``error.type`` attribute and status ERROR), counts it, and runs the handlers registered for
its context together with the all-context handlers, in one priority order, through the dispatch
core. When no span is recording, a ``handle_error {context}`` span is made so the error is never
lost; it is current while the handlers run (so what they emit nests under it) and ends after.
The ids (``error.context``, ``error.severity``, ``error.operation``) are always recorded, on
the ``exception`` event and on a span of our own; the stack trace and the metadata are content,
recorded (``exception.stacktrace``, ``error.metadata``) only when the active attribute policy
captures content, and scrubbed by its redaction like everything else. Handlers still get the
whole traceback in :attr:`ErrorInfo.traceback`.

:func:`handle_error` is synchronous and returns the :class:`ErrorInfo`; an async handler still
runs to completion (on a private loop, or as a task inside a running loop). The seed's
``await handle_error(...)`` is ``await handle_error_async(...)`` here: it awaits each handler.

Threading contract: handlers run in the calling thread or task; statistics are guarded by a
lock that is never held while a handler runs; registering is safe from any thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, TracerProvider
from prometheus_client.core import Metric

from spanhooks.callbacks.dispatch import Dispatcher
from spanhooks.callbacks.routes import Route
from spanhooks.metrics.families import ERRORS, counter, register_source
from spanhooks.tracing.attributes import AttributePolicy, active_policy
from spanhooks.tracing.failures import error_description, exception_attributes, exception_type_name
from spanhooks.tracing.spans import live_context
from spanhooks.util.lazy import ProcessWide
from spanhooks.util.text import safe_str, traceback_text

__all__ = [
    "ErrorContext",
    "ErrorHandler",
    "ErrorInfo",
    "ErrorSeverity",
    "get_error_handler",
    "handle_error",
    "handle_error_async",
    "register_error_handler",
]

MAX_CONTEXTS = 64  # contexts label metrics, so they are bounded (built-ins included)

_EVERY = "*"  # the dispatcher key of all-context handlers; never a valid context name


class ErrorContext:
    """Where an error happened: one of a bounded, validated set of lowercase identifiers.

    Built-ins: ``WEBSOCKET``, ``AUDIO``, ``SESSION``, ``API``, ``TOOL``, ``LLM``, ``DATABASE``,
    ``NETWORK``, ``UNKNOWN``. ``ErrorContext.define("payments")`` (or ``ErrorContext("payments")``)
    returns the one shared instance for a name, creating it on first use. Thread-safe.
    """

    _known: ClassVar[dict[str, ErrorContext]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    WEBSOCKET: ClassVar[ErrorContext]
    AUDIO: ClassVar[ErrorContext]
    SESSION: ClassVar[ErrorContext]
    API: ClassVar[ErrorContext]
    TOOL: ClassVar[ErrorContext]
    LLM: ClassVar[ErrorContext]
    DATABASE: ClassVar[ErrorContext]
    NETWORK: ClassVar[ErrorContext]
    UNKNOWN: ClassVar[ErrorContext]

    __slots__ = ("_value",)
    _value: str

    def __new__(cls, value: str) -> ErrorContext:
        return cls.define(value)

    @classmethod
    def define(cls, name: str) -> ErrorContext:
        """The context called ``name``; ``ValueError`` unless a lowercase identifier, or once
        :data:`MAX_CONTEXTS` exist."""
        found = cls._known.get(name) if isinstance(name, str) else None
        if found is not None:
            return found
        if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
            raise ValueError(f"an error context is a lowercase identifier, got {name!r}")
        with cls._lock:
            found = cls._known.get(name)
            if found is None:
                if len(cls._known) >= MAX_CONTEXTS:
                    raise ValueError(f"too many error contexts (limit {MAX_CONTEXTS}); reuse one")
                found = object.__new__(cls)
                found._value = name
                cls._known[name] = found
            return found

    @classmethod
    def of(cls, context: ErrorContext | str) -> ErrorContext:
        """``context`` itself, or the context named by a string (case-insensitive)."""
        if isinstance(context, ErrorContext):
            return context
        return cls.define(context.lower() if isinstance(context, str) else context)

    @property
    def value(self) -> str:
        """The name, as used in span attributes, statistics and metric labels."""
        return self._value

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (ErrorContext.define, (self._value,))

    def __repr__(self) -> str:
        return f"ErrorContext({self._value!r})"


for _name in ("websocket", "audio", "session", "api", "tool", "llm", "database", "network"):
    setattr(ErrorContext, _name.upper(), ErrorContext.define(_name))
ErrorContext.UNKNOWN = ErrorContext.define("unknown")


class ErrorSeverity(str, Enum):
    """How bad an error is; picks the log level when the handler has a logger."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


_LOG_LEVELS = dict(zip(ErrorSeverity, (20, 30, 40, 50), strict=True))  # INFO ... CRITICAL


@dataclass(frozen=True)
class ErrorInfo:
    """What an error handler receives. ``timestamp`` is epoch seconds; ``traceback`` the
    formatted traceback (last 8 KiB); ``call_id``/``trace_id`` (hex) name the span the error
    was recorded on, so a handler can link an alert to the trace."""

    error: BaseException
    context: ErrorContext
    severity: ErrorSeverity
    operation: str | None
    metadata: Mapping[str, Any]
    timestamp: float
    traceback: str
    call_id: str | None = None
    trace_id: str | None = None


class ErrorHandler:
    """Records errors on spans, counts them and runs the handlers for their context.

    ``tracer_provider`` makes the fallback spans (default: the global provider); ``logger``,
    if given, also logs each handled error at a level set by its severity; ``recent`` bounds
    the errors kept for :meth:`get_error_stats`.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        logger: logging.Logger | None = None,
        recent: int = 50,
    ) -> None:
        self._dispatcher: Dispatcher[str] = Dispatcher(name="errors")
        self._tracer = trace.get_tracer("spanhooks.errors", tracer_provider=tracer_provider)
        self._logger = logger
        self._lock = threading.Lock()
        self._counts: dict[str, Counter[str]] = {}
        self._last_error_time: float | None = None
        self._recent: deque[ErrorInfo] = deque(maxlen=recent)
        self._exported: Counter[tuple[str, str]] = Counter()  # never reset: a Prometheus counter
        # Handlers are registered under their context's key, all-context ones under _EVERY; one
        # dispatch runs both route tuples merged by priority (see _routes). Merging, cached per
        # version of the routing table, rather than registering all-context handlers under every
        # context key, keeps contexts defined after a handler was registered working unchanged.
        self._merged: tuple[object, dict[str, tuple[Route, ...]]] = (None, {})
        self.reset_stats()
        register_source(self)

    def register_error_handler(
        self,
        handler: Callable[[ErrorInfo], Any],
        context: ErrorContext | str | None = None,
        priority: int = 0,
        timeout: float | None = None,
    ) -> int:
        """Run ``handler(info)`` (sync or async) for errors of ``context``; None: every context.

        Higher ``priority`` runs first, context and all-context handlers interleaved; with
        ``timeout`` the caller stops waiting after that many seconds. Returns an id for
        :meth:`unregister_error_handler`. A handler that is not callable, or a context that is
        not a lowercase identifier, is refused here with ``TypeError``/``ValueError``.
        """
        key = _EVERY if context is None else ErrorContext.of(context).value
        registration = self._dispatcher.add(
            handler, {key: handler}, priority=priority, timeout=timeout, meta={"context": key}
        )
        return registration.id

    def unregister_error_handler(self, handler_id: int) -> bool:
        """Remove a handler by id; True if it was registered. Safe while errors are handled."""
        return self._dispatcher.remove(handler_id)

    def handle_error(
        self,
        error: BaseException,
        context: ErrorContext | str = ErrorContext.UNKNOWN,
        severity: ErrorSeverity | str = ErrorSeverity.MEDIUM,
        operation: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ErrorInfo:
        """Record, count and dispatch ``error``; returns the ErrorInfo. Never raises a handler's
        exception: the dispatch core isolates, logs and counts it."""
        info, span, own = self._record(error, context, severity, operation, metadata)
        with own_span(own):
            key = info.context.value
            self._dispatcher.dispatch(self._routes(key), key, (info,), {}, span)
        return info

    async def handle_error_async(
        self,
        error: BaseException,
        context: ErrorContext | str = ErrorContext.UNKNOWN,
        severity: ErrorSeverity | str = ErrorSeverity.MEDIUM,
        operation: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ErrorInfo:
        """:meth:`handle_error` that awaits async handlers, one after another by priority."""
        info, span, own = self._record(error, context, severity, operation, metadata)
        with own_span(own):
            key = info.context.value
            await self._dispatcher.dispatch_async(self._routes(key), key, (info,), {}, span)
        return info

    def get_error_stats(self) -> dict[str, Any]:
        """Totals by context, severity and exception type, the last error time (epoch seconds,
        or None) and the most recent errors (bounded), as plain data."""
        with self._lock:
            stats: dict[str, Any] = {"total_errors": sum(self._counts["by_context"].values())}
            stats.update((name, dict(counts)) for name, counts in self._counts.items())
            stats["last_error_time"] = self._last_error_time
            recent = list(self._recent)
        stats["recent"] = [
            {
                "type": exception_type_name(i.error),
                "message": safe_str(i.error)[:200],
                "context": i.context.value,
                "severity": i.severity.value,
                "operation": i.operation,
                "timestamp": i.timestamp,
                "call_id": i.call_id,
            }
            for i in recent
        ]
        return stats

    def reset_stats(self) -> None:
        """Forget the statistics (the exported ``spanhooks_errors`` counter keeps counting)."""
        with self._lock:
            self._counts = {name: Counter() for name in ("by_context", "by_severity", "by_type")}
            self._last_error_time = None
            self._recent.clear()

    def metric_families(self) -> Iterable[Metric]:
        """The ``spanhooks_errors`` counter by context and severity, read at scrape time."""
        with self._lock:
            pairs = [(key, float(n)) for key, n in self._exported.items()]
        yield counter(ERRORS, pairs)

    def _routes(self, context: str) -> tuple[Route, ...]:
        """This context's and the all-context handlers in one priority order. Lock-free: the
        cache belongs to one version of the routing table (replaced on every registration)."""
        table = self._dispatcher.table
        cached_for, merged = self._merged
        if cached_for is not table:
            merged = {}
            self._merged = (table, merged)
        routes = merged.get(context)
        if routes is None:
            routes = merged[context] = self._dispatcher.routes_for(context, _EVERY)
        return routes

    def _record(
        self,
        error: BaseException,
        context: ErrorContext | str,
        severity: ErrorSeverity | str,
        operation: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> tuple[ErrorInfo, Span, Span | None]:
        """Validate, put the error on a span and count it; returns (info, span, our own span)."""
        if not isinstance(error, BaseException):
            raise TypeError(f"handle_error() takes an exception, got {error!r}")
        where = ErrorContext.of(context)
        level = ErrorSeverity(severity.lower() if isinstance(severity, str) else severity)
        ctx, _ = live_context()
        span = trace.get_current_span(ctx)
        own: Span | None = None
        kind = exception_type_name(error)
        policy = active_policy()  # redaction applies to the operation, message and trace
        ids: dict[str, Any] = {"error.context": where.value, "error.severity": level.value}
        if operation:
            ids["error.operation"] = operation
        if not span.is_recording():
            span = own = self._tracer.start_span(
                f"handle_error {where.value}", context=ctx, attributes=policy.recorded(ids)
            )
        attributes = dict(ids)
        if metadata and policy.capture_content:  # metadata may carry payloads: content
            attributes["error.metadata"] = metadata
        # The stack trace is content (it quotes source lines and locals' reprs in frames):
        # recorded only when the policy captures content, as prompts are.
        recorded_exception = exception_attributes(error, policy, stacktrace=policy.capture_content)
        span.add_event("exception", {**recorded_exception, **policy.recorded(attributes)})
        span.set_attribute("error.type", kind)
        span.set_status(Status(StatusCode.ERROR, error_description(error, policy)))
        sc = span.get_span_context()
        text = traceback_text(error)
        span_ids = (format(sc.span_id, "016x"), format(sc.trace_id, "032x")) if sc.is_valid else ()
        meta = dict(metadata or {})
        info = ErrorInfo(error, where, level, operation, meta, time.time(), text[-8192:], *span_ids)
        with self._lock:
            counts = self._counts
            counts["by_context"][where.value] += 1
            counts["by_severity"][level.value] += 1
            counts["by_type"][kind] += 1
            self._last_error_time = info.timestamp
            self._recent.append(info)
            self._exported[where.value, level.value] += 1
        if self._logger is not None:
            self._log(level, where, operation, error, policy)
        return info, span, own

    def _log(
        self,
        level: ErrorSeverity,
        where: ErrorContext,
        operation: str | None,
        error: BaseException,
        policy: AttributePolicy,
    ) -> None:
        """One record on the handler's logger, with the exception for its traceback. Under
        ``redact_patterns`` the operation is scrubbed and the traceback is given as scrubbed
        text instead (the logger's handlers are not spanhooks', and would print it whole)."""
        assert self._logger is not None
        label = f"{where.value} ({policy.scrub(operation)})" if operation else where.value
        if not policy.redact_patterns:
            self._logger.log(
                _LOG_LEVELS[level], "%s error in %s", level.value, label, exc_info=error
            )
            return
        text = policy.scrub(traceback_text(error).rstrip())
        self._logger.log(_LOG_LEVELS[level], "%s error in %s\n%s", level.value, label, text)


@contextmanager
def own_span(span: Span | None) -> Iterator[None]:
    """Make ``span`` (ours, as none was recording) current while handlers run, then end it."""
    if span is None:
        yield
        return
    try:
        with trace.use_span(span, record_exception=False, set_status_on_exception=False):
            yield
    finally:
        span.end()


_default = ProcessWide(ErrorHandler)


def get_error_handler() -> ErrorHandler:
    """The process-wide :class:`ErrorHandler`, created on first use (thread-safe)."""
    return _default.get()


def handle_error(
    error: BaseException,
    context: ErrorContext | str = ErrorContext.UNKNOWN,
    severity: ErrorSeverity | str = ErrorSeverity.MEDIUM,
    operation: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ErrorInfo:
    """Handle ``error`` on the process-wide handler, synchronously (not awaitable: in async
    code, ``await handle_error_async(...)`` awaits async handlers)."""
    return get_error_handler().handle_error(error, context, severity, operation, metadata)


async def handle_error_async(
    error: BaseException,
    context: ErrorContext | str = ErrorContext.UNKNOWN,
    severity: ErrorSeverity | str = ErrorSeverity.MEDIUM,
    operation: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ErrorInfo:
    """Handle ``error`` on the process-wide handler, awaiting async handlers."""
    handler = get_error_handler()
    return await handler.handle_error_async(error, context, severity, operation, metadata)


def register_error_handler(
    handler: Callable[[ErrorInfo], Any],
    context: ErrorContext | str | None = None,
    priority: int = 0,
    timeout: float | None = None,
) -> int:
    """Register on the process-wide handler (see :meth:`ErrorHandler.register_error_handler`)."""
    return get_error_handler().register_error_handler(handler, context, priority, timeout)
