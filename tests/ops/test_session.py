"""Session state: allowed transitions, status callbacks, Thea events, timeouts, counts."""

from __future__ import annotations

from typing import Any

import pytest

from spanhooks import CallbackManager
from spanhooks.ops import SessionState, SessionStatus, sessions_by_status
from spanhooks.testing import Capture


def session(cap: Capture, **options: Any) -> SessionState:
    return SessionState(
        "test_123", "user_1", manager=cap.manager, tracer_provider=cap.provider, **options
    )


def test_status_callbacks_run_by_priority_on_each_transition(spanhooks_capture: Capture) -> None:
    state = session(spanhooks_capture)
    seen: list[tuple[str, str, str]] = []
    state.register_status_callback(
        lambda old, new, s: seen.append(("low", old.value, new.value)), priority=1
    )
    state.register_status_callback(
        lambda old, new, s: seen.append(("high", old.value, s.conversation_id)), priority=9
    )
    assert state.update_status(SessionStatus.ACTIVE) is True
    assert seen == [("high", "initializing", "test_123"), ("low", "initializing", "active")]
    assert state.update_status(SessionStatus.ACTIVE) is False  # already there: no callbacks
    assert len(seen) == 2


def test_an_invalid_transition_is_rejected_and_changes_nothing(spanhooks_capture: Capture) -> None:
    state = session(spanhooks_capture)
    state.update_status(SessionStatus.ACTIVE)
    state.update_status(SessionStatus.ENDED)
    with pytest.raises(ValueError, match="cannot go from ended to active; allowed: none"):
        state.update_status(SessionStatus.ACTIVE)
    assert state.status is SessionStatus.ENDED
    assert [t.new for t in state.history] == [SessionStatus.ACTIVE, SessionStatus.ENDED]


def test_transitions_are_span_events_and_thea_state_changes(spanhooks_capture: Capture) -> None:
    heard: list[dict[str, Any]] = []
    spanhooks_capture.manager.register("on_state_change", lambda **kw: heard.append(kw))
    state = session(spanhooks_capture)
    with spanhooks_capture.tracer.start_as_current_span("conversation"):
        state.update_status("active", reason="first message")
    assert heard == [{"user_id": "user_1", "old_state": "initializing", "new_state": "active"}]
    span = spanhooks_capture.span("conversation")
    status_changes = [e for e in span.events if e.name == "session.status_change"]
    assert dict(status_changes[0].attributes or {}) == {
        "session.id": "test_123",
        "session.old_status": "initializing",
        "session.new_status": "active",
        "session.reason": "first message",
    }


def test_inactivity_times_the_session_out_once(spanhooks_capture: Capture) -> None:
    timeouts: list[dict[str, Any]] = []
    spanhooks_capture.manager.register("on_session_timeout", lambda **kw: timeouts.append(kw))
    state = session(spanhooks_capture, inactivity_timeout=30.0)
    state.update_status(SessionStatus.ACTIVE)
    assert state.check_timeout() is False
    far_future = 10**9
    assert state.check_timeout(now=far_future) is True
    assert state.check_timeout(now=far_future) is False
    assert state.status is SessionStatus.TIMED_OUT
    assert timeouts == [{"user_id": "user_1", "session_id": "test_123"}]


def test_live_sessions_are_counted_by_status() -> None:
    manager = CallbackManager()
    before = sessions_by_status()
    a = SessionState("a", manager=manager)
    b = SessionState("b", manager=manager)
    b.update_status(SessionStatus.ACTIVE)
    after = sessions_by_status()
    assert after["initializing"] - before["initializing"] == 1
    assert after["active"] - before["active"] == 1
    assert a.status is SessionStatus.INITIALIZING
