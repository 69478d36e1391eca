"""The Agent Messaging Protocol (seed 003) at one import path: ``agent_messaging``,
``agent_messaging.handlers`` and ``agent_messaging.models`` all become
``spanhooks.compat.messaging``.

What is the same as spanhooks' own: the global message handlers (``register_one_way_handler``,
``register_conversation_handler``, ``register_message_notification_handler``: one per
:class:`HandlerContext`, the last registration wins, :func:`clear_handlers`), the typed
:class:`MessageContext`, the per-instance :class:`MeetingEventHandler` (many handlers per
event, run concurrently, ``unregister_handler``) and the meeting event types with their typed
data classes, all re-exported from :mod:`spanhooks.ops.messaging` and
:mod:`spanhooks.vocab.meeting`.

What this module adds, and why: the seed's examples drive those handlers through its SDK,
``AgentMessaging`` (``sdk.one_way.send``, ``sdk.conversation.send_and_wait``/``send_no_wait``,
``sdk.meeting.create_meeting``/``start_meeting``..., ``sdk._event_handler``), which spanhooks
did not have. :class:`AgentMessaging` here is an in-memory stand-in with the seed's call shapes
and handler semantics, so the seed's code runs unchanged and its trace is right; it keeps no
database, so entering it (``async with``) connects nothing, and exiting waits for the
fire-and-forget handler tasks it started. Handlers are invoked as the seed says:

- ``one_way.send(sender, recipients, message)``: the ONE_WAY handler once per recipient, each
  in its own task (``asyncio.create_task``); ``send`` returns the message ids at once.
- ``conversation.send_and_wait(sender, receiver, message, timeout=30.0)``: the CONVERSATION
  handler, awaited; its return value is the response (``TimeoutError`` after ``timeout``).
  The sender is *waiting* (locked) meanwhile.
- ``conversation.send_no_wait(sender, receiver, message)``: the CONVERSATION handler in a task,
  and the MESSAGE_NOTIFICATION handler (in a task) when the receiver is not waiting.
- meetings: ``start_meeting`` fires MEETING_STARTED, then TURN_CHANGED to the first speaker;
  ``attend_meeting``/``leave_meeting`` PARTICIPANT_JOINED/LEFT; ``speak`` and ``pass_turn``
  TURN_CHANGED; a turn longer than ``turn_duration`` TIMEOUT_OCCURRED (and the turn passes);
  ``end_meeting`` MEETING_ENDED. Meeting messages reach no message handler (the seed's FAQ).

Ambiguities resolved (the seed says no more): the first speaker is ``next_speaker`` if given,
else the host; the turn passes to ``next_speaker``, else to the next agent in the order host,
then participants in the order given (then late joiners); ``organization_id`` in a handler's
context is the receiver's organization (``register_agent``), else the SDK's
``organization_id``; a conversation's ``session_id`` is the same for both directions between
two agents.

The trace: every send is a span (``send one_way``/``send conversation``, PRODUCER, or CLIENT for
``send_and_wait``) with the sender, receivers and message ids, parent of the ``process
{context}`` span of each handler invocation (see :mod:`spanhooks.ops.messaging`); each meeting is
a ``meeting`` span (never nested in another meeting: sequential meetings are siblings) with a
``speaking_turn`` child per turn, joins, leaves, turn changes, timeouts and ``meeting.message``
events (speaker and message ids). Message content is recorded only when the active attribute
policy captures content, through its redaction; ids always.

Threading contract: an :class:`AgentMessaging` belongs to one asyncio event loop (as the
seed's does); registering handlers is safe from any thread; handlers run through spanhooks'
dispatch core, isolated (a raising handler is logged, recorded on its span, and delivery goes
on).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, TypeVar

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider

from spanhooks.ops.messaging import (
    MESSAGING_SYSTEM,
    HandlerContext,
    MeetingEventHandler,
    MessageContext,
    clear_handlers,
    get_handler,
    invoke_handler,
    invoke_handler_sync,
    messaging_tracer,
    register_conversation_handler,
    register_message_notification_handler,
    register_one_way_handler,
)
from spanhooks.tracing.attributes import active_policy
from spanhooks.tracing.failures import error_description, exception_type_name
from spanhooks.vocab.meeting import (
    MeetingEndedEventData,
    MeetingEvent,
    MeetingEventType,
    MeetingStartedEventData,
    ParticipantJoinedEventData,
    ParticipantLeftEventData,
    TimeoutOccurredEventData,
    TurnChangedEventData,
)

__all__ = [
    "AgentMessaging",
    "Conversation",
    "HandlerContext",
    "MeetingEndedEventData",
    "MeetingEvent",
    "MeetingEventHandler",
    "MeetingEventType",
    "MeetingManager",
    "MeetingStartedEventData",
    "MessageContext",
    "OneWayMessenger",
    "ParticipantJoinedEventData",
    "ParticipantLeftEventData",
    "TimeoutOccurredEventData",
    "TurnChangedEventData",
    "clear_handlers",
    "get_handler",
    "invoke_handler",
    "invoke_handler_sync",
    "register_conversation_handler",
    "register_message_notification_handler",
    "register_one_way_handler",
]

T_OneWay = TypeVar("T_OneWay")
T_Conversation = TypeVar("T_Conversation")
T_Meeting = TypeVar("T_Meeting")


class AgentMessaging(Generic[T_OneWay, T_Conversation, T_Meeting]):
    """The seed's SDK, in memory: ``one_way``, ``conversation``, ``meeting`` and this
    instance's meeting event handlers, ``_event_handler`` (the seed's own attribute name).

    ``AgentMessaging[Notification, Query, MeetingMsg]()`` types the three message kinds for a
    type checker, as in the seed; at run time they are not checked. ``tracer_provider``:
    where this instance's meeting spans go (default: where the process-wide manager's do).
    ``organization_id``: the organization of agents not registered with :meth:`register_agent`.
    ``handler_timeout``: seconds after which a meeting event handler is given up on.
    """

    def __init__(
        self,
        *,
        organization_id: str = "default",
        tracer_provider: TracerProvider | None = None,
        handler_timeout: float | None = None,
    ) -> None:
        self.organization_id = organization_id
        self._event_handler = MeetingEventHandler(
            tracer_provider=tracer_provider, timeout=handler_timeout
        )
        self._message_ids = itertools.count(1)
        self._organizations: dict[str, str] = {}
        self._agents: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.one_way: OneWayMessenger[T_OneWay] = OneWayMessenger(self)
        self.conversation: Conversation[T_Conversation] = Conversation(self)
        self.meeting: MeetingManager[T_Meeting] = MeetingManager(self)

    async def __aenter__(self) -> AgentMessaging[T_OneWay, T_Conversation, T_Meeting]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.meeting._stop_timers()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def register_organization(self, external_id: str, name: str | None = None) -> str:
        """Record an organization; returns its id (here, ``external_id``)."""
        self._organizations[external_id] = name or external_id
        return external_id

    async def register_agent(
        self, external_id: str, organization_external_id: str, name: str | None = None
    ) -> str:
        """Record an agent and its organization; returns its id (here, ``external_id``)."""
        self._organizations.setdefault(organization_external_id, organization_external_id)
        self._agents[external_id] = organization_external_id
        return external_id

    def _organization_of(self, agent_id: str) -> str:
        return self._agents.get(agent_id, self.organization_id)

    def _next_message_id(self) -> int:
        return next(self._message_ids)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` as a task of its own (in the current context: its spans nest under the
        current span), kept until it finishes so that exiting the SDK can wait for it."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _context(
        self,
        sender_id: str,
        receiver_id: str,
        kind: HandlerContext,
        message_id: int,
        session_id: str | None = None,
        meeting_id: int | None = None,
    ) -> MessageContext:
        return MessageContext(
            sender_id=sender_id,
            receiver_id=receiver_id,
            organization_id=self._organization_of(receiver_id),
            handler_context=kind,
            message_id=message_id,
            session_id=session_id,
            meeting_id=meeting_id,
        )


def _send_span(
    kind: HandlerContext,
    operation: str,
    sender_id: str,
    attributes: dict[str, Any],
    message: Any,
    span_kind: SpanKind = SpanKind.PRODUCER,
) -> Any:
    """The span of one send: ids always, the message only when content is captured."""
    policy = active_policy()
    values: dict[str, Any] = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": operation,
        "spanhooks.messaging.context": kind.value,
        "spanhooks.messaging.sender_id": sender_id,
        **attributes,
    }
    if policy.capture_content:
        values["spanhooks.messaging.message"] = message
    return messaging_tracer().start_as_current_span(
        f"send {kind.value}",
        kind=span_kind,
        attributes=policy.recorded(values),
        record_exception=False,
    )


class OneWayMessenger(Generic[T_OneWay]):
    """Fire-and-forget messages: ``await sdk.one_way.send(sender, [recipients], message)``."""

    def __init__(self, sdk: AgentMessaging[Any, Any, Any]) -> None:
        self._sdk = sdk

    async def send(
        self, sender_id: str, recipient_ids: Iterable[str] | str, message: T_OneWay
    ) -> list[int]:
        """Hand ``message`` to the ONE_WAY handler once per recipient, each in its own task;
        returns the message ids (one per recipient) without waiting for the handlers."""
        recipients = [recipient_ids] if isinstance(recipient_ids, str) else list(recipient_ids)
        ids = [self._sdk._next_message_id() for _ in recipients]
        with _send_span(
            HandlerContext.ONE_WAY,
            "send",
            sender_id,
            {
                "spanhooks.messaging.recipient_ids": tuple(recipients),
                "messaging.batch.message_count": len(recipients),
                "spanhooks.messaging.message_ids": tuple(ids),
            },
            message,
        ):
            for recipient, message_id in zip(recipients, ids, strict=True):
                context = self._sdk._context(
                    sender_id, recipient, HandlerContext.ONE_WAY, message_id
                )
                self._sdk._spawn(invoke_handler(HandlerContext.ONE_WAY, message, context))
        return ids


class Conversation(Generic[T_Conversation]):
    """Request-response messages between two agents."""

    def __init__(self, sdk: AgentMessaging[Any, Any, Any]) -> None:
        self._sdk = sdk
        self._sessions: dict[frozenset[str], str] = {}
        self._waiting: dict[str, int] = {}

    def _session(self, a: str, b: str) -> str:
        pair = frozenset((a, b))
        session = self._sessions.get(pair)
        if session is None:
            session = self._sessions[pair] = f"session-{len(self._sessions) + 1}"
        return session

    def is_waiting(self, agent_id: str) -> bool:
        """Whether ``agent_id`` is waiting for a reply (locked in ``send_and_wait``)."""
        return self._waiting.get(agent_id, 0) > 0

    async def send_and_wait(
        self,
        sender_id: str,
        receiver_id: str,
        message: T_Conversation,
        timeout: float = 30.0,
    ) -> Any:
        """The CONVERSATION handler's response to ``message`` (None without a handler or
        when it failed); raises ``TimeoutError`` after ``timeout`` seconds."""
        session_id = self._session(sender_id, receiver_id)
        message_id = self._sdk._next_message_id()
        context = self._sdk._context(
            sender_id, receiver_id, HandlerContext.CONVERSATION, message_id, session_id
        )
        with _send_span(
            HandlerContext.CONVERSATION,
            "send_and_wait",
            sender_id,
            _ids(receiver_id, message_id, session_id),
            message,
            SpanKind.CLIENT,
        ) as span:
            self._waiting[sender_id] = self._waiting.get(sender_id, 0) + 1
            try:
                response = await asyncio.wait_for(
                    invoke_handler(HandlerContext.CONVERSATION, message, context), timeout
                )
            except TimeoutError as error:
                _failed(span, error)
                raise
            finally:
                self._waiting[sender_id] -= 1
            policy = active_policy()
            if response is not None and policy.capture_content:
                span.set_attributes(policy.recorded({"spanhooks.messaging.response": response}))
            return response

    async def send_no_wait(self, sender_id: str, receiver_id: str, message: T_Conversation) -> int:
        """Hand ``message`` to the CONVERSATION handler in a task, and to the
        MESSAGE_NOTIFICATION handler too when the receiver is not waiting; returns its id."""
        session_id = self._session(sender_id, receiver_id)
        message_id = self._sdk._next_message_id()
        notify = not self.is_waiting(receiver_id)
        attributes = _ids(receiver_id, message_id, session_id)
        attributes["spanhooks.messaging.notified"] = notify
        with _send_span(
            HandlerContext.CONVERSATION, "send_no_wait", sender_id, attributes, message
        ):
            for kind in (
                (HandlerContext.CONVERSATION, HandlerContext.MESSAGE_NOTIFICATION)
                if notify
                else (HandlerContext.CONVERSATION,)
            ):
                context = self._sdk._context(sender_id, receiver_id, kind, message_id, session_id)
                self._sdk._spawn(invoke_handler(kind, message, context))
        return message_id


def _ids(receiver_id: str, message_id: int, session_id: str) -> dict[str, Any]:
    return {
        "messaging.destination.name": receiver_id,
        "spanhooks.messaging.receiver_id": receiver_id,
        "messaging.message.id": str(message_id),
        "messaging.message.conversation_id": session_id,
        "session.id": session_id,
    }


def _failed(span: Span, error: BaseException) -> None:
    span.set_attribute("error.type", exception_type_name(error))
    span.set_status(Status(StatusCode.ERROR, error_description(error, active_policy())))


@dataclass
class _Meeting:
    id: int
    host_id: str
    participant_ids: list[str]
    turn_duration: float | None
    status: str = "created"
    """``created``, ``active`` or ``ended``."""
    attending: list[str] = field(default_factory=list)
    current_speaker: str | None = None
    timer: asyncio.Task[None] | None = None


class MeetingManager(Generic[T_Meeting]):
    """Meetings with turns; each lifecycle step fires this SDK's meeting event handlers."""

    def __init__(self, sdk: AgentMessaging[Any, Any, Any]) -> None:
        self._sdk = sdk
        self._ids = itertools.count(1)
        self._meetings: dict[int, _Meeting] = {}

    @property
    def _events(self) -> MeetingEventHandler:
        return self._sdk._event_handler

    def _get(self, meeting_id: int) -> _Meeting:
        meeting = self._meetings.get(meeting_id)
        if meeting is None:
            raise LookupError(f"no meeting {meeting_id!r}")
        return meeting

    def _active(self, meeting_id: int) -> _Meeting:
        meeting = self._get(meeting_id)
        if meeting.status != "active":
            raise RuntimeError(f"meeting {meeting_id} is {meeting.status}, not active")
        return meeting

    async def create_meeting(
        self,
        organizer_id: str,
        participant_ids: Iterable[str],
        turn_duration: float | None = None,
    ) -> int:
        """A new meeting hosted by ``organizer_id``; returns its id. Nothing fires yet."""
        meeting_id = next(self._ids)
        participants = [p for p in participant_ids if p != organizer_id]
        self._meetings[meeting_id] = _Meeting(meeting_id, organizer_id, participants, turn_duration)
        return meeting_id

    async def start_meeting(
        self,
        organizer_id: str,
        meeting_id: int,
        initial_message: T_Meeting | None = None,
        next_speaker: str | None = None,
    ) -> None:
        """Start the meeting (host only): MEETING_STARTED, then TURN_CHANGED to the first
        speaker (``next_speaker``, else the host), who speaks ``initial_message`` if given."""
        meeting = self._get(meeting_id)
        if organizer_id != meeting.host_id:
            raise PermissionError(f"only the host {meeting.host_id!r} may start the meeting")
        if meeting.status != "created":
            raise RuntimeError(f"meeting {meeting_id} is already {meeting.status}")
        meeting.status = "active"
        meeting.attending = [meeting.host_id, *meeting.participant_ids]
        await self._fire(
            MeetingEventType.MEETING_STARTED,
            meeting,
            MeetingStartedEventData(meeting.host_id, list(meeting.participant_ids)),
        )
        if initial_message is not None:  # the host opens, then the turn passes on
            await self._change_turn(meeting, meeting.host_id)
            await self.speak(meeting.host_id, meeting_id, initial_message, next_speaker)
        else:
            await self._change_turn(meeting, next_speaker or meeting.host_id)

    async def attend_meeting(self, agent_id: str, meeting_id: int) -> bool:
        """Join the meeting: PARTICIPANT_JOINED; False if already attending."""
        meeting = self._get(meeting_id)
        if meeting.status == "ended" or agent_id in meeting.attending:
            return False
        meeting.attending.append(agent_id)
        if agent_id != meeting.host_id and agent_id not in meeting.participant_ids:
            meeting.participant_ids.append(agent_id)
        await self._fire(
            MeetingEventType.PARTICIPANT_JOINED, meeting, ParticipantJoinedEventData(agent_id)
        )
        return True

    async def leave_meeting(self, agent_id: str, meeting_id: int) -> bool:
        """Leave the meeting: PARTICIPANT_LEFT (and the turn passes if it was theirs)."""
        meeting = self._get(meeting_id)
        if agent_id not in meeting.attending:
            return False
        speaking = meeting.current_speaker == agent_id
        following = self._following(meeting, agent_id) if speaking else None
        meeting.attending.remove(agent_id)
        await self._fire(
            MeetingEventType.PARTICIPANT_LEFT, meeting, ParticipantLeftEventData(agent_id)
        )
        if speaking and meeting.status == "active":
            await self._change_turn(meeting, following)
        return True

    async def speak(
        self,
        speaker_id: str,
        meeting_id: int,
        message: T_Meeting,
        next_speaker: str | None = None,
    ) -> int:
        """Say ``message`` on your turn (else PermissionError); the turn then passes to
        ``next_speaker`` or the next agent (TURN_CHANGED). Returns the message id."""
        meeting = self._active(meeting_id)
        if meeting.current_speaker != speaker_id:
            raise PermissionError(
                f"it is {meeting.current_speaker!r}'s turn in meeting {meeting_id}, "
                f"not {speaker_id!r}'s"
            )
        message_id = self._sdk._next_message_id()
        span = self._events.turn_span(meeting_id) or self._events.meeting_span(meeting_id)
        if span is not None and span.is_recording():
            policy = active_policy()
            values: dict[str, Any] = {
                "meeting.id": str(meeting_id),
                "meeting.speaker_id": speaker_id,
                "messaging.message.id": str(message_id),
            }
            if policy.capture_content:
                values["spanhooks.messaging.message"] = message
            span.add_event("meeting.message", policy.recorded(values))
        await self._change_turn(meeting, next_speaker or self._following(meeting, speaker_id))
        return message_id

    async def pass_turn(self, agent_id: str, meeting_id: int) -> None:
        """Give the turn to the next agent (TURN_CHANGED); only the current speaker may."""
        meeting = self._active(meeting_id)
        if meeting.current_speaker != agent_id:
            raise PermissionError(f"it is not {agent_id!r}'s turn in meeting {meeting_id}")
        await self._change_turn(meeting, self._following(meeting, agent_id))

    async def end_meeting(self, organizer_id: str, meeting_id: int) -> None:
        """End the meeting (host only): MEETING_ENDED."""
        meeting = self._get(meeting_id)
        if organizer_id != meeting.host_id:
            raise PermissionError(f"only the host {meeting.host_id!r} may end the meeting")
        if meeting.status != "active":
            raise RuntimeError(f"meeting {meeting_id} is {meeting.status}, not active")
        self._stop_timer(meeting)
        meeting.status = "ended"
        meeting.current_speaker = None
        await self._fire(
            MeetingEventType.MEETING_ENDED,
            meeting,
            MeetingEndedEventData(meeting.host_id, "ended by host"),
        )

    async def get_meeting_status(self, meeting_id: int) -> dict[str, Any]:
        """The meeting's status, host, participants, attendees and current speaker."""
        meeting = self._get(meeting_id)
        return {
            "meeting_id": meeting.id,
            "status": meeting.status,
            "host_id": meeting.host_id,
            "participant_ids": list(meeting.participant_ids),
            "attending": list(meeting.attending),
            "current_speaker_id": meeting.current_speaker,
            "turn_duration": meeting.turn_duration,
        }

    def _following(self, meeting: _Meeting, agent_id: str) -> str | None:
        order = [meeting.host_id, *meeting.participant_ids]
        present = [a for a in order if a in meeting.attending or a == agent_id]
        if agent_id not in present:
            return present[0] if present else None
        rest = [a for a in present if a != agent_id]
        if not rest:
            return agent_id
        index = present.index(agent_id)
        return present[(index + 1) % len(present)]

    async def _change_turn(self, meeting: _Meeting, speaker: str | None) -> None:
        self._stop_timer(meeting)
        previous, meeting.current_speaker = meeting.current_speaker, speaker
        await self._fire(
            MeetingEventType.TURN_CHANGED, meeting, TurnChangedEventData(previous, speaker)
        )
        if speaker is not None and meeting.turn_duration is not None:
            meeting.timer = asyncio.get_running_loop().create_task(
                self._time_out(meeting, speaker, meeting.turn_duration)
            )

    async def _time_out(self, meeting: _Meeting, speaker: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if meeting.status != "active" or meeting.current_speaker != speaker:
            return
        meeting.timer = None  # this task is the timer: _change_turn must not cancel it
        await self._fire(
            MeetingEventType.TIMEOUT_OCCURRED, meeting, TimeoutOccurredEventData(speaker, seconds)
        )
        await self._change_turn(meeting, self._following(meeting, speaker))

    def _stop_timer(self, meeting: _Meeting) -> None:
        timer, meeting.timer = meeting.timer, None
        if timer is not None and not timer.done():
            timer.cancel()

    def _stop_timers(self) -> None:
        for meeting in self._meetings.values():
            self._stop_timer(meeting)

    async def _fire(self, kind: MeetingEventType, meeting: _Meeting, data: Any) -> None:
        await self._events.emit(MeetingEvent(kind, meeting.id, data))
