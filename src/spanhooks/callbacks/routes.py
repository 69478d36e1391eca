"""Route tables: registered callbacks compiled, per key, into immutable priority-sorted tuples.

A :class:`RouteTable` keeps, for each key (an event, an error context, a router event type),
a tuple of :class:`Route` objects sorted by priority. Registering rebuilds the tuples it
changes under a lock and replaces ``table``; readers take ``table`` without one. Everything
about a route (async-ness, whether the fast path may call it inline) is decided here, once.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Generic, TypeVar

from spanhooks.util import checks

__all__ = ["Priority", "Registration", "Route", "RouteTable", "callable_name", "is_async_callable"]

K = TypeVar("K", bound=Hashable)

_ids = itertools.count(1)  # one id space for every table: an id names one registration


class Priority(IntEnum):
    """Named priorities. Higher runs first; equal priorities keep registration order."""

    LOWEST = -1000
    LOW = -100
    NORMAL = 0
    HIGH = 100
    HIGHEST = 1000


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
    direct: bool
    """Plain and called with the event's own arguments: the dispatch loop's first test."""


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


class RouteTable(Generic[K]):
    """Registrations keyed by ``K``; ``table`` maps each key to its routes in call order.

    ``table`` is replaced, never mutated, so the dispatch path reads it without locking.
    """

    def __init__(
        self, *, name: str = "spanhooks", default_timeout: float | None = None, lifo: bool = False
    ) -> None:
        check_timeout(default_timeout, "default_timeout")
        self.name = name
        self.lifo = lifo
        """Equal priorities run newest first (cleanup order) instead of registration order."""
        self.default_timeout = default_timeout
        self.table: dict[K, tuple[Route, ...]] = {}
        """Each key's routes, in call order; replaced on every change, never mutated."""
        self.on_change: Callable[[], None] | None = None
        """Called (under the table's lock) after every replacement of :attr:`table`."""
        self._lock = threading.RLock()
        self._seq = itertools.count()
        self._registrations: dict[int, tuple[Registration, dict[K, Route]]] = {}

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
        check_timeout(timeout)
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

    def copy_routes_to(self, twin: RouteTable[K]) -> None:
        """Give the empty ``twin`` these registrations, with their counts reset."""
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
            self.table = {}
            if self.on_change is not None:
                self.on_change()

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
        return self.table.get(key, ())

    def routes_for(self, *keys: K) -> tuple[Route, ...]:
        """The routes of several keys merged into one priority order (for one dispatch)."""
        table = self.table
        merged = [route for key in keys for route in table.get(key, ())]
        merged.sort(key=lambda r: _order(r.registration, self.lifo))
        return tuple(merged)

    def _compile(self, fn: Callable[..., Any], reg: Registration, passes_key: bool) -> Route:
        if not callable(fn):
            raise TypeError(f"callback {reg.name} is not callable: {fn!r}")
        is_async = is_async_callable(fn)
        plain = not is_async and reg.timeout is None and not reg.stats
        return Route(fn, reg, passes_key, is_async, plain, plain and not passes_key)

    def _rebuild(self, changed_keys: Iterable[K]) -> None:
        table = dict(self.table)
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
        self.table = table
        if self.on_change is not None:
            self.on_change()

    # -- dispatch -----------------------------------------------------------------------------


def _order(reg: Registration, lifo: bool = False) -> tuple[int, int]:
    return (-reg.priority, -reg.seq if lifo else reg.seq)


def check_timeout(timeout: float | None, name: str = "timeout") -> None:
    """``ValueError`` unless ``timeout`` is None or a finite number of seconds within
    :data:`~spanhooks.util.checks.MAX_SECONDS`."""
    checks.seconds(name, timeout)
