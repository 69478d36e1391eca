"""Locks that a forked child gets fresh.

``os.fork()`` copies a lock in whatever state it was: held by a thread of the parent that does
not exist in the child, it can never be released there, and the child's first span or scrape
deadlocks. Objects whose lock may be held while another thread forks (histograms and label
limiters observed on span end, the drop log, the rate-limited logger) create it through
:func:`fork_safe_lock`; one at-fork hook gives every live one a new lock in the child.

Objects with more to renew (a thread to restart, counts to reset, connection pools) register
through :func:`renew_in_child` and get their ``after_fork_in_child()`` called there.

Thread-safety: both may be called from any thread; the hook runs in the child, which has one
thread.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Protocol

__all__ = ["ForkAware", "fork_safe_lock", "renew_in_child"]


class ForkAware(Protocol):
    def after_fork_in_child(self) -> None:
        """Renew what the parent's threads may have left held, full or running."""


_owners: weakref.WeakSet[object] = weakref.WeakSet()
_renewable: weakref.WeakSet[ForkAware] = weakref.WeakSet()
_owners_lock = threading.Lock()


def fork_safe_lock(owner: object) -> threading.Lock:
    """A new lock for ``owner._lock``, replaced by a fresh one in every forked child."""
    with _owners_lock:
        _owners.add(owner)
    return threading.Lock()


def renew_in_child(owner: ForkAware) -> None:
    """Call ``owner.after_fork_in_child()`` in every forked child, for as long as it lives."""
    with _owners_lock:
        _renewable.add(owner)


def _renew_in_child() -> None:
    global _owners_lock
    _owners_lock = threading.Lock()
    for owner in list(_owners):
        owner._lock = threading.Lock()  # type: ignore[attr-defined]
    for renewable in list(_renewable):
        renewable.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_in_child)
