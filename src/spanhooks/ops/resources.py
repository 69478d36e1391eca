"""Resource manager: cleanups that run in priority order, newest first, whatever happens.

Register a cleanup as soon as a resource exists (seed 000); the manager runs it on
:meth:`~ResourceManager.cleanup_all` (called at interpreter exit and on SIGTERM), or when a
:meth:`~ResourceManager.managed_resource` block ends, normally or with an error. Within a
priority, the most recently registered cleanup runs first (LIFO), so dependants go before what
they depend on. A failing cleanup is isolated by the dispatch core and counted; the others
still run. Every cleanup is a span (``cleanup {resource_type}``) with its id, resource type,
priority, description and why it ran (``exit``, ``SIGTERM``, ``managed``, ``explicit``...).

``managed_resource(...)`` works with ``with`` and with ``async with`` (the seed's form): the
cleanup is registered on entry and run on exit, whatever the exit. Inside ``async with``, an
async cleanup is awaited on the running loop and a synchronous one runs on the manager's own
pool of ``max_workers`` threads (the seed's "custom thread pool"), so a slow ``close()`` never
stalls the event loop; cleanups still run one at a time, in order.

Threading contract: registration is safe from any thread; cleanups run in the thread that
triggers them (async cleanups on its event loop, or its private one; synchronous ones ending
an ``async with`` on the manager's pool, awaited); each runs at most once.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import TracebackType
from typing import Any, Generic, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode, TracerProvider
from prometheus_client.core import Metric

from spanhooks.callbacks.dispatch import Dispatcher
from spanhooks.callbacks.routes import Registration
from spanhooks.metrics.families import CLEANUPS, CLEANUPS_PENDING, counter, gauge, register_source
from spanhooks.tracing.attributes import active_policy
from spanhooks.util import checks
from spanhooks.util.forksafe import renew_in_child
from spanhooks.util.lazy import ProcessWide
from spanhooks.util.signals import add_termination_hook

__all__ = [
    "CleanupPriority",
    "ManagedResource",
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
    id: int
    """The id :meth:`ResourceManager.register_cleanup` returned."""
    resource_type: ResourceType
    priority: int
    description: str
    registered: float


class ResourceManager:
    """Keeps cleanups and runs them once each, in priority then LIFO order.

    ``max_workers`` sizes the pool that runs synchronous cleanups ending an ``async with``
    (made on first use); ``default_timeout`` bounds each cleanup; ``handle_exit`` runs
    :meth:`cleanup_all` at interpreter exit and on SIGTERM.
    """

    def __init__(
        self,
        *,
        max_workers: int = 4,
        default_timeout: float | None = 30.0,
        tracer_provider: TracerProvider | None = None,
        handle_exit: bool = True,
    ) -> None:
        checks.count("max_workers", max_workers, minimum=1, limit=1_024)
        self.max_workers = max_workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._dispatcher: Dispatcher[int] = Dispatcher(
            name="resources", default_timeout=default_timeout, lifo=True
        )
        self._meta: dict[int, _Meta] = {}
        self._keys = itertools.count(1)
        self._lock = threading.Lock()
        self._outcomes: dict[tuple[str, str], int] = {}
        self._tracer = trace.get_tracer("spanhooks.resources", tracer_provider=tracer_provider)
        register_source(self)
        renew_in_child(self)
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
            self._meta[registration.id] = _Meta(
                key, registration.id, kind, int(priority), description, time.time()
            )
        return registration.id

    def unregister_cleanup(self, cleanup_id: int) -> bool:
        """Forget a cleanup without running it (the resource was released another way)."""
        with self._lock:
            self._meta.pop(cleanup_id, None)
        return self._dispatcher.remove(cleanup_id)

    def cleanup(self, cleanup_id: int, reason: str = "explicit") -> bool:
        """Run one cleanup now (once); True if it ran without error."""
        with self._lock:
            meta = self._meta.pop(cleanup_id, None)
        registration = self._dispatcher.get(cleanup_id)
        if meta is None or registration is None:
            return False
        ok = self._run(registration, meta, reason)
        self._dispatcher.remove(cleanup_id)
        return ok

    async def cleanup_async(self, cleanup_id: int, reason: str = "explicit") -> bool:
        """:meth:`cleanup` from async code: an async cleanup is awaited on the running loop, a
        synchronous one runs on the manager's pool (awaited), so the loop is never blocked."""
        with self._lock:
            meta = self._meta.pop(cleanup_id, None)
        registration = self._dispatcher.get(cleanup_id)
        if meta is None or registration is None:
            return False
        try:
            routes = self._dispatcher.routes(meta.key)
            if any(route.is_async for route in routes):
                return await self._run_async(registration, meta, reason)
            call = contextvars.copy_context().run  # the cleanup span nests where we are
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._workers(), call, self._run, registration, meta, reason
            )
        finally:
            self._dispatcher.remove(cleanup_id)

    def _workers(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.max_workers, thread_name_prefix="spanhooks-resources"
                )
            return self._pool

    def after_fork_in_child(self) -> None:
        """A forked child gets no threads of the parent's pool: it makes its own on first use."""
        self._pool = None

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

    async def _run_async(self, registration: Registration, meta: _Meta, reason: str) -> bool:
        errors, timeouts = registration.errors, registration.timeouts
        with self._span(meta, reason) as span:
            routes = self._dispatcher.routes(meta.key)
            await self._dispatcher.dispatch_async(routes, meta.key, (), {}, span)
            return self._outcome(registration, meta, errors, timeouts, span)

    def _span(self, meta: _Meta, reason: str) -> contextlib.AbstractContextManager[trace.Span]:
        attributes: dict[str, Any] = {
            "spanhooks.cleanup.id": meta.id,
            "spanhooks.cleanup.resource_type": meta.resource_type.value,
            "spanhooks.cleanup.priority": meta.priority,
            "spanhooks.cleanup.description": meta.description,
            "spanhooks.cleanup.reason": reason,
        }
        return self._tracer.start_as_current_span(
            f"cleanup {meta.resource_type.value}",
            attributes=active_policy().recorded(attributes),
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

    def managed_resource(
        self,
        resource: T,
        cleanup: Callable[[], Any],
        resource_type: ResourceType | str = ResourceType.OTHER,
        priority: int = CleanupPriority.MEDIUM,
        description: str = "",
    ) -> ManagedResource[T]:
        """``with`` or ``async with manager.managed_resource(ws, ws.close, ...) as ws:``
        registers the cleanup on entry and runs it on any exit (reason ``managed``)."""
        return ManagedResource(self, resource, cleanup, resource_type, priority, description)

    def managed_resource_async(
        self,
        resource: T,
        cleanup: Callable[[], Any],
        resource_type: ResourceType | str = ResourceType.OTHER,
        priority: int = CleanupPriority.MEDIUM,
        description: str = "",
    ) -> ManagedResource[T]:
        """The same as :meth:`managed_resource` (kept for ``async with`` readers)."""
        return ManagedResource(self, resource, cleanup, resource_type, priority, description)

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


class ManagedResource(Generic[T]):
    """What :meth:`ResourceManager.managed_resource` returns: a context manager for ``with``
    and ``async with`` alike, giving the resource. Each entry registers the cleanup once;
    its exit runs it once (awaited, and off the loop when synchronous, under ``async with``)."""

    def __init__(
        self,
        manager: ResourceManager,
        resource: T,
        cleanup: Callable[[], Any],
        resource_type: ResourceType | str,
        priority: int,
        description: str,
    ) -> None:
        if not callable(cleanup):  # refused at the call, not at the block's end
            raise TypeError(f"cleanup callback must be callable, got {cleanup!r}")
        self._manager = manager
        self._resource = resource
        self._args = (cleanup, resource_type, priority, description)
        self._ids: list[int] = []  # a stack, so the same object may be entered while entered

    def __enter__(self) -> T:
        self._ids.append(self._manager.register_cleanup(*self._args))
        return self._resource

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._manager.cleanup(self._ids.pop(), "managed")

    async def __aenter__(self) -> T:
        return self.__enter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._manager.cleanup_async(self._ids.pop(), "managed")


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
