"""Session state with status callbacks (seed 000) and Thea's state-change and timeout events.

A :class:`SessionState` moves between :class:`SessionStatus` values along a fixed table of
allowed transitions; anything else raises ``ValueError`` and changes nothing. Each transition
is a ``session.status_change`` span event, the Thea event ``on_state_change`` on a
:class:`~spanhooks.CallbackManager`, and a call of the session's own status callbacks (through the
dispatch core, in priority order). :meth:`SessionState.check_timeout` moves an idle session to
TIMED_OUT and fires ``on_session_timeout``.

Threading contract: the status change itself is atomic under the session's lock; callbacks and
events run afterwards, outside it, in the calling thread.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import TracerProvider
from prometheus_client.core import Metric

from spanhooks._dispatch import Dispatcher
from spanhooks._manager import CallbackManager
from spanhooks._metrics import SESSIONS, gauge, register_source

__all__ = ["SessionState", "SessionStatus", "SessionTransition", "sessions_by_status"]


class SessionStatus(str, Enum):
    INITIALIZING = "initializing"
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"
    ERROR = "error"
    TIMED_OUT = "timed_out"


ALLOWED: dict[SessionStatus, frozenset[SessionStatus]] = {
    SessionStatus.INITIALIZING: frozenset(
        {SessionStatus.ACTIVE, SessionStatus.ERROR, SessionStatus.ENDED}
    ),
    SessionStatus.ACTIVE: frozenset(
        {SessionStatus.PAUSED, SessionStatus.ENDED, SessionStatus.ERROR, SessionStatus.TIMED_OUT}
    ),
    SessionStatus.PAUSED: frozenset(
        {SessionStatus.ACTIVE, SessionStatus.ENDED, SessionStatus.ERROR, SessionStatus.TIMED_OUT}
    ),
    SessionStatus.ERROR: frozenset({SessionStatus.ACTIVE, SessionStatus.ENDED}),
    SessionStatus.ENDED: frozenset(),
    SessionStatus.TIMED_OUT: frozenset(),
}
"""Allowed next statuses; ENDED and TIMED_OUT are terminal."""

_STATUS = "status"
_live: weakref.WeakSet[SessionState] = weakref.WeakSet()
_live_lock = threading.Lock()


@dataclass(frozen=True)
class SessionTransition:
    old: SessionStatus
    new: SessionStatus
    reason: str | None
    timestamp: float


class SessionState:
    """One conversation's status, its transitions, callbacks and inactivity timeout."""

    def __init__(
        self,
        conversation_id: str,
        user_id: str | None = None,
        *,
        inactivity_timeout: float | None = None,
        manager: CallbackManager | None = None,
        tracer_provider: TracerProvider | None = None,
        history_size: int = 100,
    ) -> None:
        if inactivity_timeout is not None and inactivity_timeout <= 0:
            raise ValueError(
                f"inactivity_timeout must be positive seconds, got {inactivity_timeout}"
            )
        if manager is None:
            from spanhooks._setup import get_callback_manager

            manager = get_callback_manager()
        self.conversation_id = conversation_id
        self.user_id = user_id
        self.inactivity_timeout = inactivity_timeout
        self._manager = manager
        self._tracer = trace.get_tracer("spanhooks.session", tracer_provider=tracer_provider)
        self._callbacks: Dispatcher[str] = Dispatcher(name="session")
        self._lock = threading.Lock()
        self._status = SessionStatus.INITIALIZING
        self._last_activity = time.monotonic()
        self.history: deque[SessionTransition] = deque(maxlen=history_size)
        with _live_lock:
            _live.add(self)
        register_source(_SOURCE)

    @property
    def status(self) -> SessionStatus:
        return self._status

    def register_status_callback(
        self,
        callback: Callable[[SessionStatus, SessionStatus, SessionState], Any],
        priority: int = 0,
        *,
        timeout: float | None = None,
    ) -> int:
        """Call ``callback(old_status, new_status, session)`` on every transition; returns an id."""
        return self._callbacks.add(
            callback, {_STATUS: callback}, priority=priority, timeout=timeout
        ).id

    def unregister_status_callback(self, callback_id: int) -> bool:
        return self._callbacks.remove(callback_id)

    def touch(self) -> None:
        """Record activity (resets the inactivity timer)."""
        self._last_activity = time.monotonic()

    def update_status(self, new_status: SessionStatus | str, reason: str | None = None) -> bool:
        """Move to ``new_status``; False if already there, ``ValueError`` if not allowed."""
        new = SessionStatus(new_status)
        with self._lock:
            old = self._status
            if new is old:
                return False
            if new not in ALLOWED[old]:
                allowed = ", ".join(sorted(s.value for s in ALLOWED[old])) or "none (terminal)"
                raise ValueError(
                    f"session {self.conversation_id}: cannot go from {old.value} to {new.value}; "
                    f"allowed: {allowed}"
                )
            self._status = new
            self.history.append(SessionTransition(old, new, reason, time.time()))
        self.touch()
        self._announce(old, new, reason)
        return True

    def check_timeout(self, now: float | None = None) -> bool:
        """Time the session out if idle longer than ``inactivity_timeout``; True if it did."""
        if self.inactivity_timeout is None or self._status in (
            SessionStatus.ENDED,
            SessionStatus.TIMED_OUT,
        ):
            return False
        idle = (now if now is not None else time.monotonic()) - self._last_activity
        if idle <= self.inactivity_timeout:
            return False
        try:
            changed = self.update_status(SessionStatus.TIMED_OUT, f"inactive for {idle:.1f}s")
        except ValueError:
            return False
        if changed:
            self._manager.trigger(
                "on_session_timeout", user_id=self.user_id, session_id=self.conversation_id
            )
        return changed

    def _announce(self, old: SessionStatus, new: SessionStatus, reason: str | None) -> None:
        attributes = {
            "session.id": self.conversation_id,
            "session.old_status": old.value,
            "session.new_status": new.value,
        }
        if reason:
            attributes["session.reason"] = reason
        span = trace.get_current_span()
        own = None
        if not span.is_recording():
            span = own = self._tracer.start_span(f"session {new.value}")
        span.add_event("session.status_change", attributes)
        try:
            self._manager.trigger(
                "on_state_change", user_id=self.user_id, old_state=old.value, new_state=new.value
            )
            self._callbacks.dispatch(
                self._callbacks.routes(_STATUS), _STATUS, (old, new, self), {}, span
            )
        finally:
            if own is not None:
                own.end()


def sessions_by_status() -> dict[str, int]:
    """How many live sessions are in each status."""
    with _live_lock:
        sessions = list(_live)
    counts = dict.fromkeys((s.value for s in SessionStatus), 0)
    for session in sessions:
        counts[session.status.value] += 1
    return counts


class _Sessions:
    def metric_families(self) -> Iterable[Metric]:
        yield gauge(
            SESSIONS,
            [((status,), float(n)) for status, n in sessions_by_status().items()],
        )


_SOURCE = _Sessions()
