"""Resource manager: cleanups that run in priority order, newest first, whatever happens.

Register a cleanup as soon as a resource exists (seed 000); the manager runs it on
:meth:`~ResourceManager.cleanup_all` (called at interpreter exit and on SIGTERM), or when a
:meth:`~ResourceManager.managed_resource` block ends, normally or with an error. Within a
priority, the most recently registered cleanup runs first (LIFO), so dependants go before what
they depend on. A failing cleanup is isolated by the dispatch core and counted; the others
still run. Every cleanup is a span (``cleanup {resource_type}``).

Threading contract: registration is safe from any thread; cleanups run in the thread that
triggers them (async cleanups on its event loop, or its private one); each runs at most once.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode, TracerProvider
from prometheus_client.core import Metric

from spanhooks.callbacks.dispatch import Dispatcher
from spanhooks.callbacks.routes import Registration
from spanhooks.metrics.families import CLEANUPS, CLEANUPS_PENDING, counter, gauge, register_source
from spanhooks.util.lazy import ProcessWide
from spanhooks.util.signals import add_termination_hook

__all__ = [
    "CleanupPriority",
    "ResourceManager",
    "ResourceType",
    "get_resource_manager",
    "register_cleanup",
]

T = TypeVar("T")


class ResourceType(str, Enum):
    """What kind of resource a cleanup releases (a bounded metrics label)."""

    WEBSOCKET = "websocket"
    AUDIO = "audio"
    SESSION = "session"
    FILE = "file"
    NETWORK = "network"
    DATABASE = "database"
    PROCESS = "process"
    TASK = "task"
    OTHER = "other"


class CleanupPriority(IntEnum):
    """Higher runs first."""

    CRITICAL = 100
    HIGH = 75
    MEDIUM = 50
    LOW = 25


@dataclass(frozen=True)
class _Meta:
    key: int
    """The cleanup's own dispatch key, so one cleanup can run on its own."""
    resource_type: ResourceType
    description: str
    registered: float


class ResourceManager:
    """Keeps cleanups and runs them once each, in priority then LIFO order."""

    def __init__(
        self,
        *,
        default_timeout: float | None = 30.0,
        tracer_provider: TracerProvider | None = None,
        handle_exit: bool = True,
    ) -> None:
        self._dispatcher: Dispatcher[int] = Dispatcher(
            name="resources", default_timeout=default_timeout, lifo=True
        )
        self._meta: dict[int, _Meta] = {}
        self._keys = itertools.count(1)
        self._lock = threading.Lock()
        self._outcomes: dict[tuple[str, str], int] = {}
        self._tracer = trace.get_tracer("spanhooks.resources", tracer_provider=tracer_provider)
        register_source(self)
        if handle_exit:
            atexit.register(self.cleanup_all, "exit")
            add_termination_hook(lambda: self.cleanup_all("SIGTERM"))

    def register_cleanup(
        self,
        callback: Callable[[], Any],
        resource_type: ResourceType | str = ResourceType.OTHER,
        priority: int = CleanupPriority.MEDIUM,
        description: str = "",
        *,
        timeout: float | None = None,
    ) -> int:
        """Register ``callback`` (sync or async) to release a resource; returns its id."""
        if not callable(callback):
            raise TypeError(f"cleanup callback must be callable, got {callback!r}")
        kind = (
            ResourceType(resource_type)
            if not isinstance(resource_type, ResourceType)
            else resource_type
        )
        key = next(self._keys)
        registration = self._dispatcher.add(
            callback,
            {key: callback},
            priority=int(priority),
            timeout=timeout,
            name=description or None,
        )
        with self._lock:
            self._meta[registration.id] = _Meta(key, kind, description, time.time())
        return registration.id

    def unregister_cleanup(self, cleanup_id: int) -> bool:
        """Forget a cleanup without running it (the resource was released another way)."""
        with self._lock:
            self._meta.pop(cleanup_id, None)
        return self._dispatcher.remove(cleanup_id)

    def cleanup(self, cleanup_id: int) -> bool:
        """Run one cleanup now (once); True if it ran without error."""
        with self._lock:
            meta = self._meta.pop(cleanup_id, None)
        registration = self._dispatcher.get(cleanup_id)
        if meta is None or registration is None:
            return False
        ok = self._run(registration, meta)
        self._dispatcher.remove(cleanup_id)
        return ok

    def cleanup_all(self, reason: str = "shutdown") -> dict[str, int]:
        """Run every registered cleanup once, CRITICAL first, newest first within a priority.

        Returns how many succeeded and failed. Safe to call more than once.
        """
        done = {"succeeded": 0, "failed": 0}
        for registration in self._dispatcher.registrations():
            with self._lock:
                meta = self._meta.pop(registration.id, None)
            if meta is None:
                continue
            ok = self._run(registration, meta, reason)
            self._dispatcher.remove(registration.id)
            done["succeeded" if ok else "failed"] += 1
        return done

    def _run(self, registration: Registration, meta: _Meta, reason: str = "explicit") -> bool:
        errors, timeouts = registration.errors, registration.timeouts
        with self._span(meta, reason) as span:
            self._dispatcher.dispatch(self._dispatcher.routes(meta.key), meta.key, (), {}, span)
            return self._outcome(registration, meta, errors, timeouts, span)

    async def _run_async(self, registration: Registration, meta: _Meta) -> bool:
        errors, timeouts = registration.errors, registration.timeouts
        with self._span(meta, "explicit") as span:
            routes = self._dispatcher.routes(meta.key)
            await self._dispatcher.dispatch_async(routes, meta.key, (), {}, span)
            return self._outcome(registration, meta, errors, timeouts, span)

    def _span(self, meta: _Meta, reason: str) -> contextlib.AbstractContextManager[trace.Span]:
        return self._tracer.start_as_current_span(
            f"cleanup {meta.resource_type.value}",
            attributes={
                "spanhooks.cleanup.description": meta.description,
                "spanhooks.cleanup.reason": reason,
            },
        )

    def _outcome(
        self, registration: Registration, meta: _Meta, errors: int, timeouts: int, span: trace.Span
    ) -> bool:
        """Count how the cleanup just run went (its registration's counts moved or not)."""
        timed_out = registration.timeouts > timeouts
        ok = registration.errors == errors and not timed_out
        if not ok:
            span.set_status(Status(StatusCode.ERROR, "cleanup failed or timed out"))
        outcome = "success" if ok else ("timeout" if timed_out else "failure")
        with self._lock:
            label = (meta.resource_type.value, outcome)
            self._outcomes[label] = self._outcomes.get(label, 0) + 1
        return ok

    @contextlib.contextmanager
    def managed_resource(
        self,
        resource: T,
        cleanup: Callable[[], Any],
        resource_type: ResourceType | str = ResourceType.OTHER,
        priority: int = CleanupPriority.MEDIUM,
        description: str = "",
    ) -> Iterator[T]:
        """``with manager.managed_resource(ws, ws.close, ...) as ws:`` cleans up on any exit."""
        cleanup_id = self.register_cleanup(cleanup, resource_type, priority, description)
        try:
            yield resource
        finally:
            self.cleanup(cleanup_id)

    @contextlib.asynccontextmanager
    async def managed_resource_async(
        self,
        resource: T,
        cleanup: Callable[[], Any],
        resource_type: ResourceType | str = ResourceType.OTHER,
        priority: int = CleanupPriority.MEDIUM,
        description: str = "",
    ) -> AsyncIterator[T]:
        """The ``async with`` form; an async cleanup is awaited on the running loop."""
        cleanup_id = self.register_cleanup(cleanup, resource_type, priority, description)
        try:
            yield resource
        finally:
            registration = self._dispatcher.get(cleanup_id)
            with self._lock:
                meta = self._meta.pop(cleanup_id, None)
            if registration is not None and meta is not None:
                await self._run_async(registration, meta)
                self._dispatcher.remove(cleanup_id)

    def get_resource_stats(self) -> dict[str, Any]:
        """Pending cleanups by type and priority, and finished ones by outcome."""
        with self._lock:
            pending = list(self._meta.values())
            outcomes = dict(self._outcomes)
        by_type: dict[str, int] = {}
        for meta in pending:
            by_type[meta.resource_type.value] = by_type.get(meta.resource_type.value, 0) + 1
        return {
            "pending": len(pending),
            "pending_by_type": by_type,
            "completed": {f"{kind}:{outcome}": n for (kind, outcome), n in outcomes.items()},
            "succeeded": sum(n for (_, o), n in outcomes.items() if o == "success"),
            "failed": sum(n for (_, o), n in outcomes.items() if o != "success"),
        }

    def metric_families(self) -> Iterable[Metric]:
        with self._lock:
            outcomes = [(key, float(n)) for key, n in self._outcomes.items()]
            pending: dict[str, int] = {}
            for meta in self._meta.values():
                pending[meta.resource_type.value] = pending.get(meta.resource_type.value, 0) + 1
        yield counter(
            CLEANUPS,
            outcomes,
        )
        yield gauge(
            CLEANUPS_PENDING,
            [((k,), float(v)) for k, v in pending.items()],
        )


_default = ProcessWide(ResourceManager)


def get_resource_manager() -> ResourceManager:
    """The process-wide resource manager (created on first use; cleans up at exit and SIGTERM)."""
    return _default.get()


def register_cleanup(
    callback: Callable[[], Any],
    resource_type: ResourceType | str = ResourceType.OTHER,
    priority: int = CleanupPriority.MEDIUM,
    description: str = "",
) -> int:
    """Register on the process-wide manager (seed 000's module-level function)."""
    return get_resource_manager().register_cleanup(callback, resource_type, priority, description)
