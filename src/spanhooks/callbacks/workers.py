"""Where timed and async callbacks run when the caller must not wait for them: a small pool
of daemon worker threads, and each thread's private event loop. Both are re-created in a forked
child, whose parent's threads do not exist.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["on_worker", "private_loop", "worker_pool"]


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


def on_worker() -> bool:
    """Whether this thread is one of the pool's workers."""
    return getattr(_worker_state, "active", False)


def worker_pool() -> _DaemonPool:
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


def private_loop() -> asyncio.AbstractEventLoop:
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
