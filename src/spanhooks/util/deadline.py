"""One time budget shared by several span processors' shutdown (or flush).

The SDK gives each processor its own 30-second shutdown timeout, one after the other, and its
``TracerProvider.shutdown()`` passes none: with a hung collector, process exit waits for every
exporter in turn. A :class:`SharedDeadline` is handed to each of spanhooks' processors when
they are built; the first one to shut down starts the clock, and every later one gets only what
is left, so the whole shutdown takes at most ``seconds`` however many exporters hang.

Thread-safety: :meth:`remaining` may be called from any thread; the clock starts once.
"""

from __future__ import annotations

import threading
import time

__all__ = ["SharedDeadline"]


class SharedDeadline:
    """``seconds`` of budget, counted from the first call to :meth:`remaining`."""

    def __init__(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"a deadline needs a positive number of seconds, got {seconds!r}")
        self.seconds = float(seconds)
        self._lock = threading.Lock()
        self._ends: float | None = None

    def remaining(self) -> float:
        """Seconds left (never negative); the first call starts the clock."""
        with self._lock:
            if self._ends is None:
                self._ends = time.monotonic() + self.seconds
            ends = self._ends
        return max(0.0, ends - time.monotonic())

    def remaining_millis(self) -> int:
        return int(self.remaining() * 1000)
