"""Running hooks when the process is told to terminate, then doing what it would have done.

Python's default SIGTERM handling kills the process without running ``atexit``, so finished
spans and registered cleanups would be lost. :func:`add_termination_hook` installs, once, a
SIGTERM handler that runs the hooks (each isolated) and then chains to the handler that was
there before: the application's own, or the default (the process then dies of SIGTERM as
before, with the same exit status).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["add_termination_hook", "remove_termination_hook"]

logger = logging.getLogger("spanhooks")

_hooks: list[Callable[[], Any]] = []
_lock = threading.Lock()
_previous: Any = None
_installed = False


def add_termination_hook(hook: Callable[[], Any]) -> bool:
    """Run ``hook()`` on SIGTERM before the previous handler; True if the handler is in place.

    Signal handlers can only be set from the main thread; elsewhere this returns False and
    the hook is kept for when it is called again from the main thread.
    """
    global _installed, _previous
    with _lock:
        if hook not in _hooks:
            _hooks.append(hook)
        if _installed:
            return True
        if threading.current_thread() is not threading.main_thread() or not hasattr(
            signal, "SIGTERM"
        ):
            return False
        _previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_terminate)
        _installed = True
        return True


def remove_termination_hook(hook: Callable[[], Any]) -> None:
    """Stop running ``hook``; with none left, put the previous SIGTERM handler back (when
    called from the main thread, and only if ours is still the installed one)."""
    global _installed, _previous
    with _lock:
        if hook in _hooks:
            _hooks.remove(hook)
        if _hooks or not _installed:
            return
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is _on_terminate:
            signal.signal(signal.SIGTERM, _previous if _previous is not None else signal.SIG_DFL)
        _installed = False
        _previous = None


def _on_terminate(signum: int, frame: FrameType | None) -> None:
    with _lock:
        hooks = list(_hooks)
    for hook in hooks:
        try:
            hook()
        except Exception:
            logger.exception("termination hook %r failed", hook)
    previous = _previous
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:  # SIG_DFL (or unknown): die of the signal, as the process would have
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
