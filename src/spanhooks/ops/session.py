"""Session state with status callbacks (seed 000) and Thea's state-change and timeout events.

A :class:`SessionState` moves between :class:`SessionStatus` values along
:data:`ALLOWED_TRANSITIONS`; anything else raises ``ValueError`` and changes nothing. Each
transition is announced three ways: a ``session.status_change`` span event (with the ids
``session.id``, ``gen_ai.conversation.id``, ``user.id`` when known, the old and new status and
the reason; outside any span, on a ``session {status}`` span of its own, ERROR when the
session entered ERROR), the Thea event
``on_state_change(user_id, old_state, new_state)`` on a :class:`~spanhooks.CallbackManager`, and
the session's own status callbacks, called through the dispatch core in priority order.
:meth:`SessionState.check_timeout` moves an idle session to TIMED_OUT and also fires Thea's
``on_session_timeout(user_id, session_id)``. :func:`sessions_by_status` counts live sessions.

Threading contract: a status change is atomic under the session's lock; the announcements run
afterwards, outside it, in the calling thread. Two threads changing one session at once both
announce, each with its own old and new status, in an order that is not guaranteed.
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
from opentelemetry.trace import Status, StatusCode, TracerProvider
from prometheus_client.core import Metric

from spanhooks.callbacks.dispatch import Dispatcher
from spanhooks.callbacks.manager import CallbackManager, get_callback_manager
from spanhooks.metrics.families import SESSIONS, gauge, register_source
from spanhooks.ops.errors import own_span
from spanhooks.tracing.attributes import active_policy
from spanhooks.tracing.bounds import MAX_STATUS_DESCRIPTION_LENGTH
from spanhooks.tracing.spans import live_context
from spanhooks.util import checks

__all__ = [
    "ALLOWED_TRANSITIONS",
    "SessionState",
    "SessionStatus",
    "SessionTransition",
    "sessions_by_status",
]


class SessionStatus(str, Enum):
    """Where a session is in its life; see :data:`ALLOWED_TRANSITIONS` for the moves."""

    INITIALIZING = "initializing"
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"
    ERROR = "error"
    TIMED_OUT = "timed_out"

    def __str__(self) -> str:
        return self.value  # so f"{old} → {new}" reads "active → paused" on every Python

    @property
    def allowed_next(self) -> frozenset[SessionStatus]:
        """The statuses this one may move to (empty for the terminal ENDED and TIMED_OUT)."""
        return ALLOWED_TRANSITIONS[self]


_S = SessionStatus
ALLOWED_TRANSITIONS: dict[SessionStatus, frozenset[SessionStatus]] = {
    _S.INITIALIZING: frozenset({_S.ACTIVE, _S.ERROR, _S.ENDED, _S.TIMED_OUT}),
    _S.ACTIVE: frozenset({_S.PAUSED, _S.ERROR, _S.ENDED, _S.TIMED_OUT}),
    _S.PAUSED: frozenset({_S.ACTIVE, _S.ERROR, _S.ENDED, _S.TIMED_OUT}),
    _S.ERROR: frozenset({_S.ACTIVE, _S.ENDED, _S.TIMED_OUT}),
    _S.ENDED: frozenset(),
    _S.TIMED_OUT: frozenset(),
}
"""Allowed moves. ENDED and TIMED_OUT are terminal; ERROR may recover to ACTIVE; every
non-terminal status may time out."""

_STATUS = "status"  # the one dispatcher key of status callbacks
_live: weakref.WeakSet[SessionState] = weakref.WeakSet()
_live_lock = threading.Lock()


@dataclass(frozen=True)
class SessionTransition:
    """One entry of :attr:`SessionState.history`; ``timestamp`` is epoch seconds."""

    old: SessionStatus
    new: SessionStatus
    reason: str | None
    timestamp: float


class SessionState:
    """One conversation's status, its transitions, status callbacks and inactivity timeout.

    ``manager`` receives the Thea events (default: ``spanhooks.get_callback_manager()``);
    ``inactivity_timeout`` (seconds, None: never) is what :meth:`check_timeout` enforces;
    ``tracer_provider`` makes the fallback spans; ``history_size`` bounds :attr:`history`.
    """

    def __init__(
        self,
        conversation_id: str,
        user_id: str | None = None,
        inactivity_timeout: float | None = None,
        manager: CallbackManager | None = None,
        *,
        tracer_provider: TracerProvider | None = None,
        history_size: int = 100,
    ) -> None:
        if not isinstance(conversation_id, str) or not conversation_id:
            raise ValueError(f"conversation_id must be a non-empty str, got {conversation_id!r}")
        checks.seconds("inactivity_timeout", inactivity_timeout)
        checks.count("history_size", history_size)
        self.conversation_id = conversation_id
        self.user_id = user_id
        self.inactivity_timeout = inactivity_timeout
        self._manager = manager if manager is not None else get_callback_manager()
        self._tracer = trace.get_tracer("spanhooks.session", tracer_provider=tracer_provider)
        self._callbacks: Dispatcher[str] = Dispatcher(name="session")
        self._lock = threading.Lock()
        self._status = SessionStatus.INITIALIZING
        self._last_activity = time.monotonic()
        self._history: deque[SessionTransition] = deque(maxlen=history_size)
        with _live_lock:
            _live.add(self)
        register_source(_SOURCE)

    @property
    def status(self) -> SessionStatus:
        """The current status (read without locking)."""
        return self._status

    @property
    def history(self) -> list[SessionTransition]:
        """The most recent transitions, oldest first (a snapshot, bounded by history_size)."""
        with self._lock:
            return list(self._history)

    def register_status_callback(
        self,
        callback: Callable[[SessionStatus, SessionStatus, SessionState], Any],
        priority: int = 0,
        timeout: float | None = None,
    ) -> int:
        """Call ``callback(old_status, new_status, session)`` (sync or async) on every
        transition, higher ``priority`` first; returns an id for
        :meth:`unregister_status_callback`. A raising callback is logged and skipped."""
        return self._callbacks.add(
            callback, {_STATUS: callback}, priority=priority, timeout=timeout
        ).id

    def unregister_status_callback(self, callback_id: int) -> bool:
        """Remove a status callback by id; True if it was registered."""
        return self._callbacks.remove(callback_id)

    def touch(self) -> None:
        """Record activity now: restarts the inactivity clock. Cheap and thread-safe."""
        self._last_activity = time.monotonic()

    def update_status(self, new_status: SessionStatus | str, reason: str | None = None) -> bool:
        """Move to ``new_status`` and announce it; True if the status changed.

        Already there: False, nothing announced. Not allowed from the current status:
        ``ValueError`` naming the allowed next statuses, and nothing changes.
        """
        transition = self._change(SessionStatus(new_status), reason)
        if transition is None:
            return False
        self._announce(transition, timed_out=False)
        return True

    def check_timeout(self, now: float | None = None) -> bool:
        """Time the session out if idle longer than ``inactivity_timeout``; True if it did.

        ``now`` is a ``time.monotonic()`` reading (default: the current one). The move to
        TIMED_OUT and Thea's ``on_session_timeout`` happen at most once per session.
        """
        if self.inactivity_timeout is None:
            return False
        now = time.monotonic() if now is None else now
        transition = self._change(
            SessionStatus.TIMED_OUT,
            f"inactive for more than {self.inactivity_timeout:g}s",
            idle_before=now - self.inactivity_timeout,
        )
        if transition is None:
            return False
        self._announce(transition, timed_out=True)
        return True

    def _change(
        self, new: SessionStatus, reason: str | None, idle_before: float | None = None
    ) -> SessionTransition | None:
        """The state change itself, under the lock; no user code runs here.

        With ``idle_before``, change only if the last activity was before it (a timeout).
        """
        with self._lock:
            old = self._status
            if idle_before is not None and (
                not ALLOWED_TRANSITIONS[old] or self._last_activity >= idle_before
            ):
                return None
            if new is old:
                return None
            if new not in ALLOWED_TRANSITIONS[old]:
                allowed = ", ".join(s.value for s in _S if s in ALLOWED_TRANSITIONS[old])
                raise ValueError(
                    f"session {self.conversation_id}: cannot go from {old.value} to {new.value}; "
                    f"allowed: {allowed or 'none (terminal)'}"
                )
            self._status = new
            self._last_activity = time.monotonic()
            transition = SessionTransition(old, new, reason, time.time())
            self._history.append(transition)
        return transition

    def _announce(self, transition: SessionTransition, *, timed_out: bool) -> None:
        """Span event, Thea event(s) and status callbacks, outside the lock.

        With no recording span, a ``session {status}`` span is made and is current while the
        Thea events and callbacks run, so the whole transition is one span.
        """
        old, new = transition.old, transition.new
        ids: dict[str, Any] = {
            "session.id": self.conversation_id,
            "gen_ai.conversation.id": self.conversation_id,
        }
        if self.user_id is not None:
            ids["user.id"] = self.user_id
        attributes = {
            **ids,
            "session.old_status": old.value,
            "session.new_status": new.value,
        }
        if transition.reason:
            attributes["session.reason"] = transition.reason
        ctx, _ = live_context()
        span = trace.get_current_span(ctx)
        own = None
        policy = active_policy()  # a conversation id or reason may carry what must be hidden
        if not span.is_recording():
            span = own = self._tracer.start_span(
                f"session {new.value}",
                context=ctx,
                attributes=policy.recorded({**ids, "session.status": new.value}),
            )
            if new is SessionStatus.ERROR:  # our own span: the session's failure is its status
                reason = policy.scrub(transition.reason or "session entered error")
                span.set_status(Status(StatusCode.ERROR, reason[:MAX_STATUS_DESCRIPTION_LENGTH]))
        span.add_event("session.status_change", policy.recorded(attributes))
        with own_span(own):
            self._manager.trigger(
                "on_state_change", user_id=self.user_id, old_state=old.value, new_state=new.value
            )
            routes = self._callbacks.routes(_STATUS)
            if routes:
                self._callbacks.dispatch(routes, _STATUS, (old, new, self), {}, span)
            if timed_out:
                self._manager.trigger(
                    "on_session_timeout", user_id=self.user_id, session_id=self.conversation_id
                )

    def __repr__(self) -> str:
        return f"SessionState({self.conversation_id!r}, status={self._status.value})"


def sessions_by_status() -> dict[str, int]:
    """How many live (not yet garbage-collected) sessions are in each status, every status
    listed. For metrics and dashboards; thread-safe."""
    with _live_lock:
        sessions = list(_live)
    counts = dict.fromkeys((s.value for s in SessionStatus), 0)
    for session in sessions:
        counts[session.status.value] += 1
    return counts


class _Sessions:
    """The ``spanhooks_sessions`` gauge, computed from the live sessions at scrape time."""

    def metric_families(self) -> Iterable[Metric]:
        counts = sessions_by_status()
        yield gauge(SESSIONS, [((status,), float(n)) for status, n in counts.items()])


_SOURCE = _Sessions()
