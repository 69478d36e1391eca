"""Thea's ``CallbackManager`` vocabulary: named events triggered with keyword arguments.

All six are point events (span events on the current span). Event identities stay plain
strings, so ``trigger('on_message', user_id=..., message=..., timestamp=...)`` works unchanged.
Message text is content and recorded only on opt-in.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from spanhooks.events.spec import Bound, EventSet, point

__all__ = ["THEA", "TheaCallback"]

_USER = {"user_id": "user.id"}


def _error(bound: Bound) -> BaseException | str | None:
    error = bound.get("error")
    if isinstance(error, BaseException):
        return error
    return str(error) if error else None


THEA = EventSet(
    "thea",
    [
        point(
            "on_message",
            "user_id",
            "message",
            "timestamp",
            attributes=_USER,
            content={"message"},
            doc="A user sent a message.",
        ),
        point(
            "on_state_change",
            "user_id",
            "old_state",
            "new_state",
            attributes=_USER,
            doc="The dialogue state machine changed state.",
        ),
        point(
            "on_error",
            "user_id",
            "error",
            "traceback",
            attributes=_USER,
            error=_error,
            doc="An error occurred: recorded as an exception, the current span marked ERROR.",
        ),
        point(
            "on_session_timeout",
            "user_id",
            "session_id",
            attributes={**_USER, "session_id": "session.id"},
            doc="A session expired through inactivity.",
        ),
        point(
            "on_intent_detected",
            "user_id",
            "intent",
            "score",
            attributes=_USER,
            doc="An intent was detected.",
        ),
        point(
            "on_agent_delegated",
            "user_id",
            "agent",
            "intent",
            attributes={**_USER, "agent": gen_ai.GEN_AI_AGENT_NAME},
            doc="The conversation was delegated to an agent.",
        ),
    ],
)


class TheaCallback:
    """Base for class callbacks of Thea's events: one no-op method per event; override any."""

    def on_message(self, user_id: Any, message: Any, timestamp: Any) -> Any: ...
    def on_state_change(self, user_id: Any, old_state: Any, new_state: Any) -> Any: ...
    def on_error(self, user_id: Any, error: Any, traceback: Any) -> Any: ...
    def on_session_timeout(self, user_id: Any, session_id: Any) -> Any: ...
    def on_intent_detected(self, user_id: Any, intent: Any, score: Any) -> Any: ...
    def on_agent_delegated(self, user_id: Any, agent: Any, intent: Any) -> Any: ...
