"""The dispatch core: the one place that calls user callbacks.

A :class:`Dispatcher` keeps, for each key (an event, an error context, a router event type),
an immutable tuple of :class:`Route` objects sorted by priority. Registering rebuilds the tuple
under a lock; dispatching reads it without one. Priorities, error isolation, per-callback
timeouts, sync/async bridging, result collection and recursion limits all live here, so every
subsystem (event manager, error handler, router, session state, health alerts, messaging)
behaves the same way.

Threading contract: callbacks run in the thread (or task) that dispatches, in priority order,
except a callback with a timeout, which runs on a small pool of daemon worker threads so the
caller can stop waiting (a hung one occupies a worker but never blocks the emitter beyond its
timeout, nor interpreter exit), and an async callback dispatched from synchronous code inside a
running event loop, which is scheduled as a task on that loop. A timed callback that dispatches
again runs the nested timed callbacks inline on its own worker: its timeout already bounds the
emitter, and recursion cannot exhaust the pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import inspect
import itertools
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any, Generic, TypeVar

from opentelemetry.trace import Span

from spanhooks.tracing.attributes import active_policy, exception_attributes
from spanhooks.util.log import rate_limited

__all__ = ["DispatchMode", "Dispatcher", "Priority", "Registration", "Route"]

K = TypeVar("K", bound=Hashable)

MAX_DEPTH = 16
"""Nested dispatches (a callback that emits) beyond this depth are dropped and counted."""

_ids = itertools.count(1)  # one id space for every dispatcher: an id names one registration

_depth: contextvars.ContextVar[int] = contextvars.ContextVar("spanhooks_dispatch_depth", default=0)


class Priority(IntEnum):
    """Named priorities. Higher runs first; equal priorities keep registration order."""

    LOWEST = -1000
    LOW = -100
    NORMAL = 0
    HIGH = 100
    HIGHEST = 1000


class DispatchMode(Enum):
    """What the dispatcher does with callback results."""

    ALL = "all"
    """Call every callback, ignore results (events, alerts, error handlers)."""
    COLLECT = "collect"
    """Call every callback and return their results in order (conversation handlers)."""
    PIPE = "pipe"
    """Each result replaces the first argument for the next callback; None stops (middleware)."""


class DispatchObserver:
    """Receives the dispatcher's outcomes, e.g. to count them as metrics. No-op by default."""

    def callback_failed(
        self, registration: Registration, key: object, error: BaseException
    ) -> None:
        """A callback raised (``error``) while handling ``key``."""

    def callback_timed_out(self, registration: Registration, key: object) -> None:
        """A callback did not finish within its timeout."""

    def callback_latency(self, registration: Registration, key: object, seconds: float) -> None:
        """A callback registered with ``stats=True`` finished after ``seconds``."""

    def dispatch_dropped(self, key: object) -> None:
        """A dispatch was dropped because nesting exceeded :data:`MAX_DEPTH`."""

    def dispatched(self, key: object, seconds: float, span: Span | None) -> None:
        """One dispatch of ``key`` took ``seconds`` (only reported by a ``timed`` dispatcher)."""


# Enum member access costs a class-attribute lookup; the dispatch loop compares module constants.
_ALL, _COLLECT, _PIPE = DispatchMode.ALL, DispatchMode.COLLECT, DispatchMode.PIPE


@dataclass(eq=False)
class Registration:
    """One registered callback: its id, priority, options and running counts.

    Counts are updated without a lock for calls (approximate under heavy threading, exact
    per thread) and under the dispatcher's lock for errors and timeouts (always exact).
    """

    id: int
    callback: object
    name: str
    priority: int
    seq: int
    timeout: float | None
    keys: frozenset[Hashable] | None
    stats: bool = False
    calls: int = 0
    errors: int = 0
    timeouts: int = 0
    total_seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """A plain-data summary, for listings and ``get_handler_stats``-style reports."""
        return {
            "id": self.id,
            "name": self.name,
            "priority": self.priority,
            "timeout": self.timeout,
            "keys": sorted(map(str, self.keys)) if self.keys is not None else None,
            "calls": self.calls,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "avg_seconds": self.total_seconds / self.calls if self.calls else 0.0,
            **self.meta,
        }


@dataclass(frozen=True, eq=False, slots=True)
class Route:
    """A registration compiled for one key: the exact callable and how to call it."""

    fn: Callable[..., Any]
    registration: Registration
    passes_key: bool
    """True for generic callbacks, called as ``fn(event, *args, **kwargs)``."""
    is_async: bool
    plain: bool
    """Sync, no timeout, no stats: the fast path calls it inline."""


def is_async_callable(fn: object) -> bool:
    """True for coroutine functions, including ``functools.partial`` and ``__call__`` forms."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - instances with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def callable_name(fn: object) -> str:
    """A stable, bounded name for logs and metrics labels (never an id or a repr)."""
    owner = getattr(fn, "__self__", None)
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    if owner is not None and not isinstance(owner, type):
        name = f"{type(owner).__qualname__}.{getattr(fn, '__name__', name)}"
    module = getattr(fn, "__module__", None) or type(fn).__module__
    return f"{module}.{name}" if module and module != "builtins" else str(name)


class Dispatcher(Generic[K]):
    """Callbacks keyed by ``K``, each key's routes an immutable priority-sorted tuple.

    ``raise_errors`` re-raises a callback's exception after it is recorded (for tests);
    otherwise every ``Exception`` is isolated, counted and logged with rate limiting.
    ``BaseException`` (cancellation, KeyboardInterrupt, SystemExit) always propagates.
    """

    def __init__(
        self,
        *,
        name: str = "spanhooks",
        default_timeout: float | None = None,
        raise_errors: bool = False,
        observer: DispatchObserver | None = None,
        lifo: bool = False,
    ) -> None:
        _check_timeout(default_timeout)
        self.name = name
        self.timed = False
        """Time each dispatch and report it to ``observer.dispatched`` (for latency metrics)."""
        self.lifo = lifo
        """Equal priorities run newest first (cleanup order) instead of registration order."""
        self.default_timeout = default_timeout
        self.raise_errors = raise_errors
        self.observer = observer or DispatchObserver()
        self._lock = threading.RLock()
        self._seq = itertools.count()
        self._registrations: dict[int, tuple[Registration, dict[K, Route]]] = {}
        self._routes: dict[K, tuple[Route, ...]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failures = 0
        self.timeouts = 0
        self.dropped = 0

    # -- registration -------------------------------------------------------------------------

    def add(
        self,
        callback: object,
        targets: Mapping[K, Callable[..., Any]],
        *,
        passes_key: bool = False,
        priority: int = Priority.NORMAL,
        timeout: float | None = None,
        name: str | None = None,
        keys: Iterable[Hashable] | None = None,
        stats: bool = False,
        meta: Mapping[str, Any] | None = None,
    ) -> Registration:
        """Register ``callback`` as ``targets[key]`` for each key; returns its registration.

        Everything about a route (async-ness, the fast path) is decided here, once.
        """
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise TypeError(f"priority must be an int, got {priority!r}")
        _check_timeout(timeout)
        effective_timeout = timeout if timeout is not None else self.default_timeout
        with self._lock:
            registration = Registration(
                id=next(_ids),
                callback=callback,
                name=name or callable_name(callback),
                priority=int(priority),
                seq=next(self._seq),
                timeout=effective_timeout,
                keys=frozenset(keys) if keys is not None else None,
                stats=stats,
                meta=dict(meta or {}),
            )
            routes = {
                key: self._compile(fn, registration, passes_key) for key, fn in targets.items()
            }
            self._registrations[registration.id] = (registration, routes)
            self._rebuild(routes)
        return registration

    def extend(self, registration_id: int, targets: Mapping[K, Callable[..., Any]]) -> None:
        """Add routes for new keys to an existing registration (e.g. events declared later)."""
        with self._lock:
            entry = self._registrations.get(registration_id)
            if entry is None:
                return
            registration, routes = entry
            passes_key = next(iter(routes.values())).passes_key if routes else True
            added = {k: self._compile(fn, registration, passes_key) for k, fn in targets.items()}
            routes.update(added)
            self._rebuild(added)

    def copy(self) -> Dispatcher[K]:
        """An independent dispatcher with the same options and registrations (counts reset)."""
        twin: Dispatcher[K] = Dispatcher(
            name=self.name,
            default_timeout=self.default_timeout,
            raise_errors=self.raise_errors,
            observer=self.observer,
            lifo=self.lifo,
        )
        with self._lock:
            for reg, routes in self._registrations.values():
                clone = dataclasses.replace(
                    reg, calls=0, errors=0, timeouts=0, total_seconds=0.0, meta=dict(reg.meta)
                )
                twin._registrations[clone.id] = (
                    clone,
                    {key: dataclasses.replace(r, registration=clone) for key, r in routes.items()},
                )
            twin._seq = itertools.count(
                max((r.seq for r, _ in self._registrations.values()), default=0) + 1
            )
            twin._rebuild(key for _, routes in twin._registrations.values() for key in routes)
        return twin

    def remove(self, registration_id: int) -> bool:
        """Unregister by id; True if it was registered. Safe while other threads dispatch."""
        with self._lock:
            entry = self._registrations.pop(registration_id, None)
            if entry is None:
                return False
            self._rebuild(entry[1])
            return True

    def clear(self) -> None:
        """Remove every registration."""
        with self._lock:
            self._registrations.clear()
            self._routes = {}

    def registrations(self) -> list[Registration]:
        """Current registrations in priority order (a snapshot)."""
        with self._lock:
            regs = [reg for reg, _ in self._registrations.values()]
        return sorted(regs, key=lambda reg: _order(reg, self.lifo))

    def get(self, registration_id: int) -> Registration | None:
        entry = self._registrations.get(registration_id)
        return entry[0] if entry else None

    def routes(self, key: K) -> tuple[Route, ...]:
        """The routes for ``key``: an immutable tuple, read without locking."""
        return self._routes.get(key, ())

    def routes_for(self, *keys: K) -> tuple[Route, ...]:
        """The routes of several keys merged into one priority order (for one dispatch)."""
        table = self._routes
        merged = [route for key in keys for route in table.get(key, ())]
        merged.sort(key=lambda r: _order(r.registration, self.lifo))
        return tuple(merged)

    @property
    def table(self) -> Mapping[K, tuple[Route, ...]]:
        """The whole key-to-routes table; replaced, never mutated, so it can be read freely."""
        return self._routes

    def _compile(self, fn: Callable[..., Any], reg: Registration, passes_key: bool) -> Route:
        if not callable(fn):
            raise TypeError(f"callback {reg.name} is not callable: {fn!r}")
        is_async = is_async_callable(fn)
        plain = not is_async and reg.timeout is None and not reg.stats
        return Route(fn, reg, passes_key, is_async, plain)

    def _rebuild(self, changed_keys: Iterable[K]) -> None:
        table = dict(self._routes)
        for key in set(changed_keys):
            routes = [
                routes_by_key[key]
                for _, routes_by_key in self._registrations.values()
                if key in routes_by_key
            ]
            routes.sort(key=lambda r: _order(r.registration, self.lifo))
            if routes:
                table[key] = tuple(routes)
            else:
                table.pop(key, None)
        self._routes = table

    # -- dispatch -----------------------------------------------------------------------------

    def dispatch(
        self,
        routes: tuple[Route, ...],
        key: object,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        span: Span | None = None,
        mode: DispatchMode = _ALL,
    ) -> Any:
        """Call ``routes`` in order from synchronous code; never raises a callback's Exception.

        Returns None for ``ALL``, the list of results for ``COLLECT`` and the final value for
        ``PIPE`` (None when a callback dropped it).
        """
        depth = _depth.get()
        if depth >= MAX_DEPTH:
            return self._too_deep(key, mode)
        token = _depth.set(depth + 1)
        collect = mode is _COLLECT
        pipe = mode is _PIPE
        results: list[Any] | None = [] if collect else None
        started = time.perf_counter() if self.timed else 0.0
        try:
            for route in routes:
                try:
                    if not route.plain:
                        result = self._call_special(route, key, args, kwargs, span)
                    elif route.passes_key:
                        result = route.fn(key, *args, **kwargs)
                    else:
                        result = route.fn(*args, **kwargs)
                except Exception as exc:
                    self._failed(route, key, exc, span)
                    continue
                if results is not None:
                    results.append(result)
                elif pipe:
                    if result is None:
                        return None
                    args = (result, *args[1:])
        finally:
            _depth.reset(token)
            if started:
                with contextlib.suppress(Exception):
                    self.observer.dispatched(key, time.perf_counter() - started, span)
        if pipe:
            return args[0] if args else None
        return results

    async def dispatch_async(
        self,
        routes: tuple[Route, ...],
        key: object,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        span: Span | None = None,
        mode: DispatchMode = _ALL,
        concurrent: bool = False,
    ) -> Any:
        """Like :meth:`dispatch`, awaiting async callbacks; ``concurrent`` runs them all at once.

        Sync callbacks still run inline (or on the worker pool when they have a timeout).
        With ``concurrent``, results come back in priority order and PIPE is not allowed.
        """
        if concurrent:
            if mode is DispatchMode.PIPE:
                raise ValueError("a pipe cannot run its callbacks concurrently")
            gathered = await asyncio.gather(
                *(
                    self.dispatch_async((r,), key, args, kwargs, span, DispatchMode.COLLECT)
                    for r in routes
                )
            )
            flat = [result for results in gathered if results for result in results]
            return flat if mode is DispatchMode.COLLECT else None
        depth = _depth.get()
        if depth >= MAX_DEPTH:
            return self._too_deep(key, mode)
        token = _depth.set(depth + 1)
        results: list[Any] | None = [] if mode is DispatchMode.COLLECT else None
        try:
            for route in routes:
                try:
                    result = await self._call_async(route, key, args, kwargs)
                except Exception as exc:
                    self._failed(route, key, exc, span)
                    continue
                if results is not None:
                    results.append(result)
                elif mode is DispatchMode.PIPE:
                    if result is None:
                        return None
                    args = (result, *args[1:])
        finally:
            _depth.reset(token)
        if mode is DispatchMode.PIPE:
            return args[0] if args else None
        return results

    def _call_special(
        self,
        route: Route,
        key: object,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        span: Span | None,
    ) -> Any:
        reg = route.registration
        started = time.perf_counter()
        try:
            if route.is_async:
                return self._run_coroutine_from_sync(route, key, args, kwargs, span)
            if reg.timeout is not None:
                call = _bind_call(route, key, args, kwargs)
                if _on_worker():  # nested in a timed callback: its own timeout bounds us
                    return call()
                try:
                    future = _worker_pool().submit(contextvars.copy_context().run, call)
                except RuntimeError:  # interpreter shutdown: no new threads; run it here
                    return call()
                try:
                    return future.result(timeout=reg.timeout)
                except concurrent.futures.TimeoutError:
                    self._timed_out(route, key, span)
                    return None
            return _bind_call(route, key, args, kwargs)()
        finally:
            self._account(route, key, started)

    async def _call_async(
        self, route: Route, key: object, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Any:
        reg = route.registration
        started = time.perf_counter()
        try:
            call = _bind_call(route, key, args, kwargs)
            if route.is_async:
                awaitable: Awaitable[Any] = call()
            elif reg.timeout is not None:
                loop = asyncio.get_running_loop()
                ctx = contextvars.copy_context()
                awaitable = loop.run_in_executor(_worker_pool(), ctx.run, call)
            else:
                return call()
            if reg.timeout is None:
                return await awaitable
            try:
                return await asyncio.wait_for(awaitable, reg.timeout)
            except asyncio.TimeoutError:
                self._timed_out(route, key, None)
                return None
        finally:
            self._account(route, key, started)

    def _run_coroutine_from_sync(
        self,
        route: Route,
        key: object,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        span: Span | None,
    ) -> Any:
        """Run an async callback from sync code so that it always completes.

        Inside a running loop we cannot block it, so the coroutine becomes a task (its result
        is not available to the caller). Otherwise it runs to completion on this thread's
        private loop, bounded by the callback's timeout.
        """
        timeout = route.registration.timeout
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            coro = self._call_async(route, key, args, kwargs)
            task = loop.create_task(self._guarded(coro, route, key, span))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return None
        coro = _bind_call(route, key, args, kwargs)()
        if timeout is not None:
            coro = asyncio.wait_for(coro, timeout)
        try:
            return _private_loop().run_until_complete(coro)
        except asyncio.TimeoutError:
            self._timed_out(route, key, span)
            return None

    async def _guarded(
        self, coro: Awaitable[Any], route: Route, key: object, span: Span | None
    ) -> Any:
        try:
            return await coro
        except Exception as exc:
            self._failed(route, key, exc, span)
            return None

    def _account(self, route: Route, key: object, started: float) -> None:
        reg = route.registration
        if reg.stats:
            elapsed = time.perf_counter() - started
            reg.calls += 1
            reg.total_seconds += elapsed
            self.observer.callback_latency(reg, key, elapsed)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for async callbacks scheduled as tasks by synchronous dispatches."""
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    # -- outcomes -----------------------------------------------------------------------------

    def _failed(self, route: Route, key: object, exc: Exception, span: Span | None) -> None:
        self._report(route, key, span, exc)
        if self.raise_errors:
            raise exc

    def _timed_out(self, route: Route, key: object, span: Span | None) -> None:
        self._report(route, key, span, None)
        if self.raise_errors:
            reg = route.registration
            raise TimeoutError(f"callback {reg.name} timed out after {reg.timeout}s")

    def _report(self, route: Route, key: object, span: Span | None, exc: Exception | None) -> None:
        """Count, record on the span, log (rate-limited) and tell the observer: a failure when
        ``exc`` is given, else a timeout."""
        reg = route.registration
        with self._lock:
            if exc is not None:
                reg.errors += 1
                self.failures += 1
            else:
                reg.timeouts += 1
                self.timeouts += 1
        if exc is not None:
            _record_on_span(span, "spanhooks.callback.error", reg.name, exc)
            rate_limited.log(
                logging.ERROR,
                f"callback:{reg.name}",
                "%s: callback %s raised %s while handling %s",
                self.name,
                reg.name,
                type(exc).__name__,
                _key_name(key),
                exc_info=exc,
            )
        else:
            _record_on_span(span, "spanhooks.callback.timeout", reg.name, None)
            rate_limited.log(
                logging.WARNING,
                f"timeout:{reg.name}",
                "%s: callback %s did not finish within %.3gs while handling %s; going on",
                self.name,
                reg.name,
                reg.timeout,
                _key_name(key),
            )
        with contextlib.suppress(Exception):  # an observer must not undo isolation
            if exc is not None:
                self.observer.callback_failed(reg, key, exc)
            else:
                self.observer.callback_timed_out(reg, key)

    def _too_deep(self, key: object, mode: DispatchMode) -> Any:
        with self._lock:
            self.dropped += 1
        rate_limited.log(
            logging.WARNING,
            "depth",
            "%s: dropped %s: callbacks nested more than %d deep (a callback emitting in a loop?)",
            self.name,
            _key_name(key),
            MAX_DEPTH,
        )
        with contextlib.suppress(Exception):  # an observer must not undo isolation
            self.observer.dispatch_dropped(key)
        return [] if mode is DispatchMode.COLLECT else None


def _order(reg: Registration, lifo: bool = False) -> tuple[int, int]:
    return (-reg.priority, -reg.seq if lifo else reg.seq)


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and (
        not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout > 0
    ):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")


def _bind_call(
    route: Route, key: object, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> Callable[[], Any]:
    if route.passes_key:
        return lambda: route.fn(key, *args, **kwargs)
    return lambda: route.fn(*args, **kwargs)


def _key_name(key: object) -> str:
    if isinstance(key, Enum):
        return str(key.value)
    return str(getattr(key, "name", key))


def _record_on_span(
    span: Span | None, event: str, callback: str, exc: BaseException | None
) -> None:
    if span is None or not span.is_recording():
        return
    attributes: dict[str, str] = {"spanhooks.callback": callback}
    if exc is not None:
        attributes.update(exception_attributes(exc, active_policy(), stacktrace=False))
    span.add_event(event, attributes)


# -- shared worker pool and private loops, re-created in a forked child ------------------------


class _DaemonPool(concurrent.futures.Executor):
    """Runs timed callbacks on at most ``max_workers`` daemon threads, started on demand.

    Unlike ``ThreadPoolExecutor``, whose threads the interpreter joins at exit, a callback that
    never returns here cannot keep the process alive. Idle workers are reused (a semaphore
    counts them, as ``ThreadPoolExecutor`` does); work waits in a queue when all are busy.
    """

    def __init__(self, max_workers: int, prefix: str) -> None:
        self._max_workers = max(1, max_workers)
        self._prefix = prefix
        self._work: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]]]
        self._work = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads = 0

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if not self._idle.acquire(blocking=False):  # no idle worker: start one if allowed
            with self._lock:
                if self._threads < self._max_workers:
                    # Raises RuntimeError at interpreter shutdown, before anything is queued.
                    threading.Thread(
                        target=self._worker, name=f"{self._prefix}-{self._threads}", daemon=True
                    ).start()
                    self._threads += 1
        self._work.put((future, lambda: fn(*args, **kwargs)))
        return future

    def _worker(self) -> None:
        _worker_state.active = True
        while True:
            future, call = self._work.get()
            if future.set_running_or_notify_cancel():
                try:
                    result = call()
                except BaseException as exc:  # handed to the waiting caller, who re-raises it
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del future, call
            self._idle.release()


_pool: _DaemonPool | None = None
_pool_lock = threading.Lock()
_local = threading.local()
_worker_state = threading.local()


def _on_worker() -> bool:
    return getattr(_worker_state, "active", False)


def _worker_pool() -> _DaemonPool:
    """Threads that run callbacks with a timeout. A hung callback occupies one until it returns."""
    global _pool
    pool = _pool
    if pool is None:
        with _pool_lock:
            if _pool is None:
                workers = int(os.environ.get("SPANHOOKS_CALLBACK_WORKERS", "8"))
                _pool = _DaemonPool(workers, "spanhooks-callback")
            pool = _pool
    return pool


def _private_loop() -> asyncio.AbstractEventLoop:
    """This thread's own event loop, for async callbacks dispatched where no loop runs."""
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _local.loop = loop
        weakref.finalize(threading.current_thread(), loop.close)
    return loop


def _after_fork_in_child() -> None:
    global _pool, _pool_lock, _local
    _pool = None  # the parent's threads do not exist here
    _pool_lock = threading.Lock()
    _local = threading.local()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
