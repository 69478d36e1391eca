"""The dispatch core: the one place that calls user callbacks.

A :class:`Dispatcher` is a :class:`~spanhooks.callbacks.routes.RouteTable` (for each key, an
immutable tuple of routes sorted by priority, rebuilt under a lock when registering and read
without one) that calls its routes. Priorities, error isolation, per-callback
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
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from enum import Enum
from typing import Any, TypeVar

from opentelemetry.trace import Span

from spanhooks.callbacks.routes import Registration, Route, RouteTable
from spanhooks.callbacks.workers import on_worker, private_loop, worker_pool
from spanhooks.tracing.attributes import active_policy
from spanhooks.tracing.failures import exception_attributes
from spanhooks.util.log import rate_limited

__all__ = ["MAX_DEPTH", "DispatchMode", "DispatchObserver", "Dispatcher"]

K = TypeVar("K", bound=Hashable)

MAX_DEPTH = 16
"""Nested dispatches (a callback that emits) beyond this depth are dropped and counted."""

_depth: contextvars.ContextVar[int] = contextvars.ContextVar("spanhooks_dispatch_depth", default=0)


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


class Dispatcher(RouteTable[K]):
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
        super().__init__(name=name, default_timeout=default_timeout, lifo=lifo)
        self.timed = False
        """Time each dispatch and report it to ``observer.dispatched`` (for latency metrics)."""
        self.raise_errors = raise_errors
        self.observer = observer or DispatchObserver()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failures = 0
        self.timeouts = 0
        self.dropped = 0

    def copy(self) -> Dispatcher[K]:
        """An independent dispatcher with the same options and registrations (counts reset)."""
        twin: Dispatcher[K] = Dispatcher(
            name=self.name,
            default_timeout=self.default_timeout,
            raise_errors=self.raise_errors,
            observer=self.observer,
            lifo=self.lifo,
        )
        self.copy_routes_to(twin)
        return twin

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
        # ALL (every event) keeps no results: the loop's one extra test is ``mode is _ALL``
        results: list[Any] | None = [] if mode is _COLLECT else None
        started = time.perf_counter() if self.timed else 0.0
        try:
            for route in routes:
                try:
                    if route.direct:  # the usual callback: one test, no empty dict unpacked
                        result = route.fn(*args, **kwargs) if kwargs else route.fn(*args)
                    elif not route.plain:
                        result = self._call_special(route, key, args, kwargs, span)
                    else:
                        result = route.fn(key, *args, **kwargs)
                except Exception as exc:
                    self._failed(route, key, exc, span)
                    continue
                if mode is _ALL:
                    continue
                if results is not None:
                    results.append(result)
                elif result is None:  # PIPE: a callback dropped the value
                    return None
                else:
                    args = (result, *args[1:])
        finally:
            _depth.reset(token)
            if started:
                with contextlib.suppress(Exception):
                    self.observer.dispatched(key, time.perf_counter() - started, span)
        if mode is _PIPE:
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
                if on_worker():  # nested in a timed callback: its own timeout bounds us
                    return call()
                try:
                    future = worker_pool().submit(contextvars.copy_context().run, call)
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
                awaitable = loop.run_in_executor(worker_pool(), ctx.run, call)
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
            return private_loop().run_until_complete(coro)
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
    policy = active_policy()  # a callback's name is the application's text, like its error
    attributes: dict[str, str] = {"spanhooks.callback": policy.scrub(callback)}
    if exc is not None:
        attributes.update(exception_attributes(exc, policy, stacktrace=False))
    span.add_event(event, attributes)
