"""Centralised error handling (seed 000): context-specific handlers, severities and statistics.

``handle_error(error, context, severity, operation, metadata)`` records the error on the current
span (an ``exception`` event and status ERROR; with no span, a zero-length ``handle_error
{context}`` span so it is never lost), counts it, and runs the handlers registered for its
context together with the all-context handlers, in one priority order, through the dispatch
core. Contexts are a bounded set: the built-ins plus those defined with
:meth:`ErrorContext.define`, so they can label metrics.

Threading contract: handlers run in the calling thread or task; statistics are guarded by a
lock that is never held while a handler runs.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode, TracerProvider
from prometheus_client.core import Metric

from spanhooks._dispatch import Dispatcher
from spanhooks._lazy import ProcessWide
from spanhooks._metrics import ERRORS, counter, register_source

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

MAX_CONTEXTS = 64


class ErrorContext:
    """Where an error happened: a bounded, validated set of lowercase names.

    The built-ins are class attributes (``ErrorContext.WEBSOCKET``); define your own once with
    ``ErrorContext.define("payments")``. Compared and hashed by value.
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

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    @classmethod
    def define(cls, name: str) -> ErrorContext:
        """The context called ``name``, created on first use (at most 64 in all)."""
        if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
            raise ValueError(f"an error context is a lowercase identifier, got {name!r}")
        with cls._lock:
            found = cls._known.get(name)
            if found is None:
                if len(cls._known) >= MAX_CONTEXTS:
                    raise ValueError(f"too many error contexts (limit {MAX_CONTEXTS}); reuse one")
                found = cls._known[name] = cls(name)
            return found

    @classmethod
    def of(cls, context: ErrorContext | str) -> ErrorContext:
        """Accept a context or its name."""
        return context if isinstance(context, ErrorContext) else cls.define(str(context).lower())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrorContext) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"ErrorContext({self.value!r})"


for _name in (
    "websocket",
    "audio",
    "session",
    "api",
    "tool",
    "llm",
    "database",
    "network",
    "unknown",
):
    setattr(ErrorContext, _name.upper(), ErrorContext.define(_name))


class ErrorSeverity(str, Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True)
class ErrorInfo:
    """What an error handler receives."""

    error: BaseException
    context: ErrorContext
    severity: ErrorSeverity
    operation: str | None
    metadata: Mapping[str, Any]
    timestamp: float
    traceback: str
    call_id: str | None = None
    trace_id: str | None = None


_EVERY = ErrorContext("*")  # the key of all-context handlers; never a real context


@dataclass
class _Stats:
    total: int = 0
    by_context: dict[str, int] = field(default_factory=dict)
    by_severity: dict[str, int] = field(default_factory=dict)
    by_type: dict[str, int] = field(default_factory=dict)
    pairs: dict[tuple[str, str], int] = field(default_factory=dict)
    last_error_time: float | None = None


class ErrorHandler:
    """Records errors on spans, counts them and runs the matching handlers."""

    def __init__(self, *, tracer_provider: TracerProvider | None = None, recent: int = 50) -> None:
        self._dispatcher: Dispatcher[ErrorContext] = Dispatcher(name="errors")
        self._tracer = trace.get_tracer("spanhooks.errors", tracer_provider=tracer_provider)
        self._lock = threading.Lock()
        self._stats = _Stats()
        self._recent: deque[ErrorInfo] = deque(maxlen=recent)
        register_source(self)

    def register_error_handler(
        self,
        handler: Callable[[ErrorInfo], Any],
        context: ErrorContext | str | None = None,
        priority: int = 0,
        *,
        timeout: float | None = None,
    ) -> int:
        """Run ``handler(info)`` for errors of ``context`` (None: every context); higher
        priority first. Returns an id for :meth:`unregister_error_handler`."""
        key = _EVERY if context is None else ErrorContext.of(context)
        return self._dispatcher.add(handler, {key: handler}, priority=priority, timeout=timeout).id

    def unregister_error_handler(self, handler_id: int) -> bool:
        return self._dispatcher.remove(handler_id)

    def handle_error(
        self,
        error: BaseException,
        context: ErrorContext | str = ErrorContext.UNKNOWN,
        severity: ErrorSeverity | str = ErrorSeverity.MEDIUM,
        operation: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ErrorInfo:
        """Record, count and dispatch ``error``; returns what handlers received."""
        info, span, ended = self._record(error, context, severity, operation, metadata)
        try:
            routes = self._dispatcher.routes_for(info.context, _EVERY)
            self._dispatcher.dispatch(routes, info.context.value, (info,), {}, span)
        finally:
            if ended is not None:
                ended.end()
        return info

    async def handle_error_async(
        self,
        error: BaseException,
        context: ErrorContext | str = ErrorContext.UNKNOWN,
        severity: ErrorSeverity | str = ErrorSeverity.MEDIUM,
        operation: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ErrorInfo:
        """:meth:`handle_error` that awaits async handlers."""
        info, span, ended = self._record(error, context, severity, operation, metadata)
        try:
            routes = self._dispatcher.routes_for(info.context, _EVERY)
            await self._dispatcher.dispatch_async(routes, info.context.value, (info,), {}, span)
        finally:
            if ended is not None:
                ended.end()
        return info

    def _record(
        self,
        error: BaseException,
        context: ErrorContext | str,
        severity: ErrorSeverity | str,
        operation: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> tuple[ErrorInfo, trace.Span, trace.Span | None]:
        if not isinstance(error, BaseException):
            raise TypeError(f"handle_error() takes an exception, got {error!r}")
        where, level = ErrorContext.of(context), ErrorSeverity(severity)
        span = trace.get_current_span()
        ended: trace.Span | None = None
        if not span.is_recording():
            span = ended = self._tracer.start_span(f"handle_error {where.value}")
        attributes = {"error.context": where.value, "error.severity": level.value}
        if operation:
            attributes["error.operation"] = operation
        span.record_exception(error, attributes=attributes)
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:1024]))
        sc = span.get_span_context()
        info = ErrorInfo(
            error,
            where,
            level,
            operation,
            dict(metadata or {}),
            time.time(),
            "".join(traceback.format_exception(type(error), error, error.__traceback__))[-8192:],
            format(sc.span_id, "016x") if sc.is_valid else None,
            format(sc.trace_id, "032x") if sc.is_valid else None,
        )
        self._count(info)
        return info, span, ended

    def _count(self, info: ErrorInfo) -> None:
        stats = self._stats
        with self._lock:
            stats.total += 1
            for table, key in (
                (stats.by_context, info.context.value),
                (stats.by_severity, info.severity.value),
                (stats.by_type, type(info.error).__qualname__),
            ):
                table[key] = table.get(key, 0) + 1
            pair = (info.context.value, info.severity.value)
            stats.pairs[pair] = stats.pairs.get(pair, 0) + 1
            stats.last_error_time = info.timestamp
            self._recent.append(info)

    def get_error_stats(self) -> dict[str, Any]:
        """Totals by context, severity and exception type, the last error time, recent errors."""
        with self._lock:
            stats = self._stats
            return {
                "total_errors": stats.total,
                "by_context": dict(stats.by_context),
                "by_severity": dict(stats.by_severity),
                "by_type": dict(stats.by_type),
                "last_error_time": stats.last_error_time,
                "recent": [
                    {
                        "type": type(i.error).__qualname__,
                        "message": str(i.error)[:200],
                        "context": i.context.value,
                        "severity": i.severity.value,
                        "operation": i.operation,
                        "timestamp": i.timestamp,
                    }
                    for i in self._recent
                ],
            }

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = _Stats()
            self._recent.clear()

    def metric_families(self) -> Iterable[Metric]:
        with self._lock:
            pairs = [(key, float(n)) for key, n in self._stats.pairs.items()]
        yield counter(
            ERRORS,
            pairs,
        )


_default = ProcessWide(ErrorHandler)


def get_error_handler() -> ErrorHandler:
    """The process-wide error handler (created on first use)."""
    return _default.get()


def handle_error(
    error: BaseException,
    context: ErrorContext | str = ErrorContext.UNKNOWN,
    severity: ErrorSeverity | str = ErrorSeverity.MEDIUM,
    operation: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ErrorInfo:
    """Handle an error on the process-wide handler, from synchronous code."""
    return get_error_handler().handle_error(error, context, severity, operation, metadata)


async def handle_error_async(
    error: BaseException,
    context: ErrorContext | str = ErrorContext.UNKNOWN,
    severity: ErrorSeverity | str = ErrorSeverity.MEDIUM,
    operation: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ErrorInfo:
    """Handle an error on the process-wide handler, awaiting async handlers (the seed's
    ``await handle_error(...)``)."""
    return await get_error_handler().handle_error_async(
        error, context, severity, operation, metadata
    )


def register_error_handler(
    handler: Callable[[ErrorInfo], Any],
    context: ErrorContext | str | None = None,
    priority: int = 0,
) -> int:
    """Register on the process-wide handler (seed 000's module-level function)."""
    return get_error_handler().register_error_handler(handler, context, priority)
