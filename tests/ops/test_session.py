"""Session state: allowed transitions, status callbacks, Thea events, spans, timeouts, counts."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

import pytest

from spanhooks import CallbackManager
from spanhooks.ops import (
    ALLOWED_TRANSITIONS,
    SessionState,
    SessionStatus,
    sessions_by_status,
)
from spanhooks.testing import Capture


def session(cap: Capture, **options: Any) -> SessionState:
    return SessionState(
        "test_123", "user_1", manager=cap.manager, tracer_provider=cap.provider, **options
    )


def test_the_seed_usage_works_as_written() -> None:
    session = SessionState(conversation_id="test_123")
    lines: list[str] = []

    def on_status_change(old_status: Any, new_status: Any, session: SessionState) -> None:
        lines.append(f"Session {session.conversation_id}: {old_status} → {new_status}")

    session.register_status_callback(on_status_change)
    session.update_status(SessionStatus.ACTIVE)
    assert lines == ["Session test_123: initializing → active"]


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
    assert state.update_status("active") is False  # already there: nothing announced
    assert len(seen) == 2
    assert [(t.old, t.new) for t in state.history] == [
        (SessionStatus.INITIALIZING, SessionStatus.ACTIVE)
    ]


def test_a_raising_status_callback_does_not_stop_the_transition(
    spanhooks_capture: Capture, spanhooks_logs: pytest.LogCaptureFixture
) -> None:
    state = session(spanhooks_capture)
    after: list[SessionStatus] = []

    def broken(old: SessionStatus, new: SessionStatus, s: SessionState) -> None:
        raise RuntimeError("ui gone")

    state.register_status_callback(broken, priority=5)
    state.register_status_callback(lambda old, new, s: after.append(new))
    assert state.update_status(SessionStatus.ACTIVE) is True
    assert state.status is SessionStatus.ACTIVE
    assert after == [SessionStatus.ACTIVE]
    assert "ui gone" in spanhooks_logs.text


def test_an_async_status_callback_runs_to_completion(spanhooks_capture: Capture) -> None:
    state = session(spanhooks_capture)
    done: list[str] = []

    async def refresh_ui(old: SessionStatus, new: SessionStatus, s: SessionState) -> None:
        done.append(new.value)

    state.register_status_callback(refresh_ui)
    state.update_status(SessionStatus.ACTIVE)
    assert done == ["active"]


def test_an_unregistered_status_callback_no_longer_runs(spanhooks_capture: Capture) -> None:
    state = session(spanhooks_capture)
    seen: list[Any] = []
    callback_id = state.register_status_callback(lambda *args: seen.append(args))
    assert state.unregister_status_callback(callback_id) is True
    state.update_status(SessionStatus.ACTIVE)
    assert seen == []


def test_an_invalid_transition_raises_naming_the_allowed_ones_and_changes_nothing(
    spanhooks_capture: Capture,
) -> None:
    state = session(spanhooks_capture)
    called: list[Any] = []
    state.register_status_callback(lambda *args: called.append(args))
    state.update_status(SessionStatus.ACTIVE)
    state.update_status(SessionStatus.PAUSED)
    with pytest.raises(
        ValueError,
        match="session test_123: cannot go from paused to initializing; "
        "allowed: active, ended, error, timed_out",
    ):
        state.update_status(SessionStatus.INITIALIZING)
    assert state.status is SessionStatus.PAUSED
    assert [t.new for t in state.history] == [SessionStatus.ACTIVE, SessionStatus.PAUSED]
    assert len(called) == 2


def test_ended_and_timed_out_are_terminal(spanhooks_capture: Capture) -> None:
    state = session(spanhooks_capture)
    state.update_status(SessionStatus.ENDED)
    with pytest.raises(ValueError, match="cannot go from ended to active; allowed: none"):
        state.update_status(SessionStatus.ACTIVE)
    assert SessionStatus.ENDED.allowed_next == frozenset()
    assert SessionStatus.TIMED_OUT.allowed_next == frozenset()
    assert all(
        SessionStatus.TIMED_OUT in allowed
        for status, allowed in ALLOWED_TRANSITIONS.items()
        if allowed
    )


def test_transitions_are_thea_state_changes_on_the_manager(spanhooks_capture: Capture) -> None:
    heard: list[tuple[Any, Any, Any]] = []

    def on_state_change(user_id: Any, old_state: Any, new_state: Any) -> None:
        heard.append((user_id, old_state, new_state))

    spanhooks_capture.manager.register("on_state_change", on_state_change)
    state = session(spanhooks_capture)
    state.update_status(SessionStatus.ACTIVE)
    state.update_status(SessionStatus.ENDED)
    assert heard == [("user_1", "initializing", "active"), ("user_1", "active", "ended")]


def test_a_transition_is_a_span_event_on_the_current_span(spanhooks_capture: Capture) -> None:
    state = session(spanhooks_capture)
    with spanhooks_capture.tracer.start_as_current_span("conversation"):
        state.update_status("active", reason="first message")
    span = spanhooks_capture.span("conversation")
    [change] = [e for e in span.events if e.name == "session.status_change"]
    assert dict(change.attributes or {}) == {
        "session.id": "test_123",
        "gen_ai.conversation.id": "test_123",
        "user.id": "user_1",
        "session.old_status": "initializing",
        "session.new_status": "active",
        "session.reason": "first message",
    }
    assert [e.name for e in span.events] == ["session.status_change", "on_state_change"]


def test_a_transition_outside_any_span_gets_one_span_holding_all_of_it(
    spanhooks_capture: Capture,
) -> None:
    state = session(spanhooks_capture)
    state.update_status(SessionStatus.ACTIVE)
    assert spanhooks_capture.tree() == [
        {
            "name": "session active",
            "status": "UNSET",
            "events": ["session.status_change", "on_state_change"],
            "children": [],
        }
    ]
    span = spanhooks_capture.span("session active")
    assert dict(span.attributes or {}) == {
        "session.id": "test_123",
        "gen_ai.conversation.id": "test_123",
        "user.id": "user_1",
        "session.status": "active",
    }


def test_a_session_entering_error_outside_any_span_leaves_an_error_span(
    spanhooks_capture: Capture,
) -> None:
    state = session(spanhooks_capture)
    state.update_status(SessionStatus.ERROR, reason="audio stream lost")
    span = spanhooks_capture.span("session error")
    assert span.status.status_code.name == "ERROR"
    assert span.status.description == "audio stream lost"


def test_inactivity_times_the_session_out_once(spanhooks_capture: Capture) -> None:
    timeouts: list[tuple[Any, Any]] = []
    changes: list[str] = []
    spanhooks_capture.manager.register(
        "on_session_timeout", lambda user_id, session_id: timeouts.append((user_id, session_id))
    )
    spanhooks_capture.manager.register(
        "on_state_change", lambda user_id, old_state, new_state: changes.append(new_state)
    )
    state = session(spanhooks_capture, inactivity_timeout=30.0)
    state.update_status(SessionStatus.ACTIVE)
    now = time.monotonic()
    assert state.check_timeout(now=now + 29) is False
    state.touch()
    touched = time.monotonic()
    assert state.check_timeout(now=touched + 29) is False
    assert state.check_timeout(now=touched + 31) is True
    assert state.check_timeout(now=touched + 3600) is False
    assert state.status is SessionStatus.TIMED_OUT
    assert timeouts == [("user_1", "test_123")]
    assert changes == ["active", "timed_out"]
    assert state.history[-1].reason == "inactive for more than 30s"
    span = spanhooks_capture.span("session timed_out")
    assert [e.name for e in span.events] == [
        "session.status_change",
        "on_state_change",
        "on_session_timeout",
    ]


def test_without_an_inactivity_timeout_or_once_ended_a_session_never_times_out(
    spanhooks_capture: Capture,
) -> None:
    forever = session(spanhooks_capture)
    assert forever.check_timeout(now=time.monotonic() + 10**9) is False
    ended = session(spanhooks_capture, inactivity_timeout=1.0)
    ended.update_status(SessionStatus.ENDED)
    assert ended.check_timeout(now=time.monotonic() + 10**9) is False
    assert ended.status is SessionStatus.ENDED
    with pytest.raises(ValueError, match="inactivity_timeout"):
        session(spanhooks_capture, inactivity_timeout=0)


def test_concurrent_updates_change_the_status_exactly_once(spanhooks_capture: Capture) -> None:
    state = session(spanhooks_capture)
    state.update_status(SessionStatus.ACTIVE)
    announced: list[SessionStatus] = []
    state.register_status_callback(lambda old, new, s: announced.append(new))
    start = threading.Barrier(8)
    results: list[bool] = []

    def end() -> None:
        start.wait()
        results.append(state.update_status(SessionStatus.ENDED))

    threads = [threading.Thread(target=end) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert announced == [SessionStatus.ENDED]


def test_history_is_bounded(spanhooks_capture: Capture) -> None:
    state = session(spanhooks_capture, history_size=2)
    for status in ("active", "paused", "active", "ended"):
        state.update_status(status)
    assert [(t.old.value, t.new.value) for t in state.history] == [
        ("paused", "active"),
        ("active", "ended"),
    ]


def test_live_sessions_are_counted_by_status() -> None:
    manager = CallbackManager()
    before = sessions_by_status()
    assert set(before) == {s.value for s in SessionStatus}
    waiting = SessionState("a", manager=manager)
    talking = SessionState("b", manager=manager)
    talking.update_status(SessionStatus.ACTIVE)
    after = sessions_by_status()
    assert after["initializing"] - before["initializing"] == 1
    assert after["active"] - before["active"] == 1
    del talking
    gc.collect()
    assert sessions_by_status()["active"] == before["active"]
    assert waiting.status is SessionStatus.INITIALIZING
