"""Telling caches that what they were built from has changed.

A :class:`Staleness` is held by the owner of some state (a recorder's plans, the process's
tracer provider watch); caches elsewhere built from that state (a manager's quiet table)
give it the bound method that empties them. Methods are held weakly, so a cache's object
(a forked manager, say) is not kept alive by the state it reads.

Not a callback system: the methods are the library's own, take no arguments and must not
raise; user callbacks go through :class:`~spanhooks.callbacks.dispatch.Dispatcher`.
Threading: any thread may listen or announce; a method listening while an announcement runs
hears the next one.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

__all__ = ["Staleness"]


class Staleness:
    """Bound methods to call when the state they cached from has changed."""

    def __init__(self) -> None:
        self._methods: list[weakref.WeakMethod[Callable[[], None]]] = []

    def listen(self, method: Callable[[], None]) -> None:
        """Call ``method`` (a bound method, held weakly) at every :meth:`announce`."""
        live = [ref for ref in self._methods if ref() is not None]
        self._methods = [*live, weakref.WeakMethod(method)]

    def announce(self) -> None:
        """The state has changed: call every live listening method."""
        for ref in self._methods:
            method = ref()
            if method is not None:
                method()
