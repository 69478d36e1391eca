"""The Agent Messaging Protocol's meeting lifecycle: ``MeetingEventType`` with typed event data.

A meeting is a span from ``MEETING_STARTED`` to ``MEETING_ENDED`` (matched by meeting id);
turn changes, joins, leaves and timeouts are span events on it. Handlers receive one
:class:`MeetingEvent`, whose ``data`` is the typed data class for its type.

Everything recorded is an id or a count (``meeting.id``, ``meeting.host_id``,
``meeting.participant_ids``, ``meeting.participant_count``, ``meeting.participant_id``, the
speakers' ids, ``meeting.timeout_seconds``, ``meeting.reason``), never meeting message content;
each value passes the attribute policy's redaction like any other.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from spanhooks.events.spec import Bound, EventSet, end, point, start
from spanhooks.util.text import safe_str

__all__ = [
    "MEETING",
    "MeetingCallback",
    "MeetingEndedEventData",
    "MeetingEvent",
    "MeetingEventType",
    "MeetingStartedEventData",
    "ParticipantJoinedEventData",
    "ParticipantLeftEventData",
    "TimeoutOccurredEventData",
    "TurnChangedEventData",
]


class MeetingEventType(str, Enum):
    """Meeting lifecycle events."""

    MEETING_STARTED = "meeting_started"
    MEETING_ENDED = "meeting_ended"
    TURN_CHANGED = "turn_changed"
    PARTICIPANT_JOINED = "participant_joined"
    PARTICIPANT_LEFT = "participant_left"
    TIMEOUT_OCCURRED = "timeout_occurred"


@dataclass(frozen=True)
class MeetingStartedEventData:
    host_id: str
    participant_ids: Sequence[str] = ()


@dataclass(frozen=True)
class MeetingEndedEventData:
    host_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class TurnChangedEventData:
    previous_speaker_id: str | None
    current_speaker_id: str | None


@dataclass(frozen=True)
class ParticipantJoinedEventData:
    participant_id: str


@dataclass(frozen=True)
class ParticipantLeftEventData:
    participant_id: str


@dataclass(frozen=True)
class TimeoutOccurredEventData:
    speaker_id: str | None
    timeout_seconds: float | None = None


@dataclass(frozen=True)
class MeetingEvent:
    """What a meeting event handler receives: the type, the meeting and the typed data."""

    event_type: MeetingEventType
    meeting_id: Any
    data: Any = None
    timestamp: float = field(default_factory=time.time)


def _meeting_id(bound: Bound) -> Any:
    event = bound.get("event")
    return getattr(event, "meeting_id", None)


_FIELDS = (
    "host_id",
    "participant_id",
    "previous_speaker_id",
    "current_speaker_id",
    "speaker_id",
    "timeout_seconds",
    "reason",
)
_MAX_PARTICIPANT_IDS = 128


def _attributes(bound: Bound) -> dict[str, Any]:
    """The meeting's id first, then each id the typed data carries; a field that cannot be
    read is left out, the others kept."""
    event = bound.get("event")
    attrs: dict[str, Any] = {"meeting.id": str(_meeting_id(bound))}
    try:
        data = getattr(event, "data", None)
    except Exception:
        return attrs
    for name in _FIELDS:
        try:
            value = getattr(data, name, None)
        except Exception:
            continue
        if value is not None:
            attrs[f"meeting.{name}"] = value
    try:
        participants = getattr(data, "participant_ids", None)
        if participants and not isinstance(participants, str | bytes):
            ids = tuple(safe_str(p) for p in itertools.islice(participants, _MAX_PARTICIPANT_IDS))
            attrs["meeting.participant_ids"] = ids
            count = len(participants) if hasattr(participants, "__len__") else len(ids)
            attrs["meeting.participant_count"] = count
    except Exception:
        pass
    return attrs


_COMMON: dict[str, Any] = {"extract": _attributes, "record_args": False}

MEETING = EventSet(
    "meeting",
    [
        start("meeting_started", "event", span_name="meeting", key=_meeting_id, **_COMMON),
        end("meeting_ended", "event", key=_meeting_id, **_COMMON),
        point("turn_changed", "event", **_COMMON),
        point("participant_joined", "event", **_COMMON),
        point("participant_left", "event", **_COMMON),
        point("timeout_occurred", "event", **_COMMON),
    ],
    enum=MeetingEventType,
)


class MeetingCallback:
    """Base for class callbacks of meeting events: one no-op method per event, each given the
    :class:`MeetingEvent`."""

    def on_meeting_started(self, event: Any) -> Any: ...
    def on_meeting_ended(self, event: Any) -> Any: ...
    def on_turn_changed(self, event: Any) -> Any: ...
    def on_participant_joined(self, event: Any) -> Any: ...
    def on_participant_left(self, event: Any) -> Any: ...
    def on_timeout_occurred(self, event: Any) -> Any: ...
