"""Thea's ``CallbackManager`` vocabulary: named events triggered with keyword arguments.

All six are point events (span events on the current span, or a zero-length span of their own
when none is open). Event identities stay plain strings, so ``trigger('on_message',
user_id=..., message=..., timestamp=...)`` works unchanged. Identifiers (``user_id`` as
``user.id``, ``session_id`` as ``session.id``, the agent as ``gen_ai.agent.name``, intents,
states, scores, timestamps) are always recorded; content is recorded only on opt-in (the
attribute policy's ``capture_content``) and through its redaction: the message text of
``on_message`` and the traceback string of ``on_error`` (a traceback can quote the values of
the failing call). ``on_error``'s ``error`` is recorded as the exception it is, with ERROR
status, like every failure spanhooks records.

Thea's manager also accepts event names nobody declared. :func:`undeclared_event` is how such a
name is recorded when a manager is told to accept them (``spanhooks.compat.thea``): a point
event of set ``thea`` whose keyword arguments are read by the same rules, since nothing says
which of them are content: identifiers and numbers always, text and structures only on opt-in.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, cast

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from spanhooks.events.spec import Bound, EventSet, EventSpec, FailureIn, point
from spanhooks.tracing.attributes import active_policy
from spanhooks.tracing.content_events import INPUT_MESSAGES
from spanhooks.util.redaction import REDACTED
from spanhooks.vocab._messages import text_messages

__all__ = ["THEA", "TheaCallback"]
"""``undeclared_event`` is for managers that accept undeclared names (``spanhooks.compat.thea``),
not part of the vocabulary."""

_USER = {"user_id": "user.id"}


def _error(error: Any) -> BaseException | str | None:
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
            extract_content=lambda b: {INPUT_MESSAGES: text_messages("user", b.get("message"))},
            doc="A user sent a message (content: ``gen_ai.input.messages``, one user message).",
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
            content={"traceback"},
            error=FailureIn("error", _error),
            doc="An error occurred: recorded as an exception, the current span marked ERROR; "
            "the traceback string is content.",
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


# -- events nobody declared -------------------------------------------------------------------

_CONVENTION_KEYS = {
    "user_id": "user.id",
    "session_id": "session.id",
    "conversation_id": gen_ai.GEN_AI_CONVERSATION_ID,
    "agent": gen_ai.GEN_AI_AGENT_NAME,
}
"""Keyword arguments of undeclared events recorded under a convention's name."""

_IDENTIFIER_ARGS = frozenset(
    {"id", "agent", "intent", "old_state", "new_state", "state", "status", "score", "timestamp"}
)
"""Keyword names that identify rather than carry content: the six events' own identifier
arguments and a state or status; names ending ``_id`` are identifiers too."""

_ERROR_ARGS = ("error", "exception")
_PLAIN = (bool, int, float, datetime.datetime, datetime.date, datetime.time, datetime.timedelta)


def _is_identifier(key: str, value: Any) -> bool:
    return key in _IDENTIFIER_ARGS or key.endswith("_id") or type(value) in _PLAIN


def _is_exception(value: Any) -> bool:
    return issubclass(type(value), BaseException)  # not isinstance: it may call user code


def _key(key: str) -> str:
    return _CONVENTION_KEYS.get(key) or f"thea.{key}"


def _undeclared_ids(bound: Bound) -> dict[str, Any]:
    """What an undeclared event always records: identifiers, numbers, flags, times."""
    policy = active_policy()
    recorded: dict[str, Any] = {}
    for key, value in bound.items():
        if type(key) is not str or _is_exception(value):
            continue
        if policy.sensitive(key):
            recorded[_key(key)] = REDACTED
        elif _is_identifier(key, value):
            recorded[_key(key)] = value
    return recorded


def _undeclared_content(bound: Bound) -> dict[str, Any]:
    """What an undeclared event records only on opt-in: every other (text, structured) value."""
    policy = active_policy()
    return {
        _key(key): value
        for key, value in bound.items()
        if type(key) is str
        and not _is_exception(value)
        and not policy.sensitive(key)
        and not _is_identifier(key, value)
    }


def _undeclared_error(bound: Bound) -> BaseException | None:
    for name in _ERROR_ARGS:
        value = bound.get(name)
        if _is_exception(value):
            return cast(BaseException, value)
    return None


_UNDECLARED = EventSet(
    "thea",
    [
        point(
            "undeclared",
            record_args=False,
            extract=_undeclared_ids,
            extract_content=_undeclared_content,
            error=_undeclared_error,
            doc="An event Thea's code triggered without declaring it.",
        )
    ],
)["undeclared"]


def undeclared_event(name: str) -> EventSpec:
    """The spec of an event called ``name`` that no set declares, as Thea's manager accepts it.

    ``name`` may be any string (it is user input: where it is recorded, as a span event or span
    name, it is cut to the span-name bound). The event's keyword arguments are recorded by the
    rules in the module docstring; an ``error=`` or ``exception=`` that is an exception is
    recorded as one, with ERROR status.
    """
    return dataclasses.replace(_UNDECLARED, name=name, identity=name, doc=_UNDECLARED.doc)


class TheaCallback:
    """Base for class callbacks of Thea's events: one no-op method per event; override any."""

    def on_message(self, user_id: Any, message: Any, timestamp: Any) -> Any: ...
    def on_state_change(self, user_id: Any, old_state: Any, new_state: Any) -> Any: ...
    def on_error(self, user_id: Any, error: Any, traceback: Any) -> Any: ...
    def on_session_timeout(self, user_id: Any, session_id: Any) -> Any: ...
    def on_intent_detected(self, user_id: Any, intent: Any, score: Any) -> Any: ...
    def on_agent_delegated(self, user_id: Any, agent: Any, intent: Any) -> Any: ...
