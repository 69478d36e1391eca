"""Locks that a forked child gets fresh.

``os.fork()`` copies a lock in whatever state it was: held by a thread of the parent that does
not exist in the child, it can never be released there, and the child's first span or scrape
deadlocks. Objects whose lock may be held while another thread forks (histograms and label
limiters observed on span end, the drop log, the rate-limited logger) create it through
:func:`fork_safe_lock`; one at-fork hook gives every live one a new lock in the child.

Thread-safety: :func:`fork_safe_lock` may be called from any thread; the hook runs in the
child, which has one thread.
"""

from __future__ import annotations

import os
import threading
import weakref

__all__ = ["fork_safe_lock"]

_owners: weakref.WeakSet[object] = weakref.WeakSet()
_owners_lock = threading.Lock()


def fork_safe_lock(owner: object) -> threading.Lock:
    """A new lock for ``owner._lock``, replaced by a fresh one in every forked child."""
    with _owners_lock:
        _owners.add(owner)
    return threading.Lock()


def _renew_in_child() -> None:
    global _owners_lock
    _owners_lock = threading.Lock()
    for owner in list(_owners):
        owner._lock = threading.Lock()  # type: ignore[attr-defined]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_in_child)
