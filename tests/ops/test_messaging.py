"""Messaging: global handlers by decorator (last wins), meeting handlers with typed data and spans."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from spanhooks.ops import (
    HandlerContext,
    MeetingEventHandler,
    MessageContext,
    clear_handlers,
    get_handler,
    invoke_handler,
    invoke_handler_sync,
    register_conversation_handler,
    register_one_way_handler,
)
from spanhooks.testing import Capture
from spanhooks.vocab.meeting import (
    MeetingEvent,
    MeetingEventType,
    MeetingStartedEventData,
    ParticipantJoinedEventData,
    TurnChangedEventData,
)


@pytest.fixture(autouse=True)
def _no_global_handlers() -> Iterator[None]:
    clear_handlers()
    yield
    clear_handlers()


def context(kind: HandlerContext = HandlerContext.CONVERSATION) -> MessageContext:
    return MessageContext(
        sender_id="alice", receiver_id="bob", organization_id="org", handler_context=kind
    )


async def test_the_conversation_handler_returns_the_response() -> None:
    @register_conversation_handler
    async def handle_query(message: dict[str, Any], ctx: MessageContext) -> dict[str, Any]:
        return {"answer": f"Processed: {message['question']} for {ctx.receiver_id}"}

    assert await invoke_handler(HandlerContext.CONVERSATION, {"question": "Hi"}, context()) == {
        "answer": "Processed: Hi for bob"
    }


def test_the_last_registration_wins_and_clear_removes_all() -> None:
    seen: list[str] = []

    @register_one_way_handler
    def first(message: Any, ctx: MessageContext) -> None:
        seen.append("first")

    @register_one_way_handler
    def second(message: Any, ctx: MessageContext) -> None:
        seen.append("second")

    invoke_handler_sync(HandlerContext.ONE_WAY, {"text": "Hello"}, context(HandlerContext.ONE_WAY))
    assert seen == ["second"]
    assert get_handler(HandlerContext.ONE_WAY) is second
    clear_handlers()
    assert get_handler(HandlerContext.ONE_WAY) is None
    assert invoke_handler_sync(HandlerContext.ONE_WAY, {}, context(HandlerContext.ONE_WAY)) is None


def test_a_raising_handler_does_not_stop_delivery() -> None:
    @register_one_way_handler
    def broken(message: Any, ctx: MessageContext) -> None:
        raise RuntimeError("handler bug")

    assert invoke_handler_sync(HandlerContext.ONE_WAY, {}, context(HandlerContext.ONE_WAY)) is None


def meeting_event(kind: MeetingEventType, data: object = None) -> MeetingEvent:
    return MeetingEvent(kind, 42, data)


async def test_meeting_handlers_run_concurrently_and_can_be_unregistered(
    spanhooks_capture: Capture,
) -> None:
    handler = MeetingEventHandler(tracer_provider=spanhooks_capture.provider)
    both = asyncio.Event()
    seen: list[str] = []

    async def waits(event: MeetingEvent) -> None:
        seen.append("waits")
        await asyncio.wait_for(both.wait(), 2)

    async def releases(event: MeetingEvent) -> None:
        seen.append(f"releases {event.data.host_id}")
        both.set()

    handler.register_handler(MeetingEventType.MEETING_STARTED, waits)
    handler.register_handler(MeetingEventType.MEETING_STARTED, releases)
    await handler.emit(
        meeting_event(MeetingEventType.MEETING_STARTED, MeetingStartedEventData("alice", ("bob",)))
    )
    assert sorted(seen) == ["releases alice", "waits"]
    assert handler.unregister_handler(MeetingEventType.MEETING_STARTED, waits)
    assert not handler.unregister_handler(MeetingEventType.MEETING_STARTED, waits)


async def test_a_meeting_is_a_span_with_a_child_span_per_speaking_turn(
    spanhooks_capture: Capture,
) -> None:
    handler = MeetingEventHandler(tracer_provider=spanhooks_capture.provider)
    await handler.emit(
        meeting_event(MeetingEventType.MEETING_STARTED, MeetingStartedEventData("alice"))
    )
    await handler.emit(
        meeting_event(MeetingEventType.PARTICIPANT_JOINED, ParticipantJoinedEventData("bob"))
    )
    await handler.emit(
        meeting_event(MeetingEventType.TURN_CHANGED, TurnChangedEventData(None, "alice"))
    )
    await handler.emit(
        meeting_event(MeetingEventType.TURN_CHANGED, TurnChangedEventData("alice", "bob"))
    )
    await handler.emit(meeting_event(MeetingEventType.MEETING_ENDED))
    [meeting] = spanhooks_capture.tree(attributes=True)
    assert meeting["name"] == "meeting"
    assert meeting["events"] == ["participant_joined", "turn_changed", "turn_changed"]
    speakers = [child["attributes"]["meeting.speaker_id"] for child in meeting["children"]]
    assert speakers == ["alice", "bob"]


async def test_meetings_never_nest_even_when_one_ends_in_another_task(
    spanhooks_capture: Capture,
) -> None:
    handler = MeetingEventHandler(tracer_provider=spanhooks_capture.provider)
    await handler.emit(
        meeting_event(MeetingEventType.MEETING_STARTED, MeetingStartedEventData("a"))
    )
    await asyncio.create_task(handler.emit(meeting_event(MeetingEventType.MEETING_ENDED)))
    await handler.emit(
        MeetingEvent(MeetingEventType.MEETING_STARTED, 43, MeetingStartedEventData("a"))
    )
    handler.emit_sync(MeetingEvent(MeetingEventType.MEETING_ENDED, 43))
    invoke_handler_sync(HandlerContext.ONE_WAY, {}, context(HandlerContext.ONE_WAY))
    assert [node["name"] for node in spanhooks_capture.tree()] == [
        "meeting",
        "meeting",
        "process one_way",
    ]


def test_a_handler_span_carries_the_ids_and_its_outcome(spanhooks_capture: Capture) -> None:
    @register_one_way_handler
    def broken(message: Any, ctx: MessageContext) -> None:
        raise RuntimeError("handler bug")

    message_context = MessageContext(
        "alice", "bob", "org", HandlerContext.ONE_WAY, message_id=7, session_id="s1", meeting_id=3
    )
    invoke_handler_sync(HandlerContext.ONE_WAY, {"text": "secret"}, message_context)
    span = spanhooks_capture.span("process one_way")
    attributes = dict(span.attributes or {})
    assert attributes["spanhooks.messaging.sender_id"] == "alice"
    assert attributes["messaging.destination.name"] == "bob"
    assert attributes["spanhooks.messaging.organization_id"] == "org"
    assert attributes["messaging.message.id"] == "7"
    assert attributes["messaging.message.conversation_id"] == "s1"
    assert attributes["meeting.id"] == "3"
    assert attributes["spanhooks.messaging.outcome"] == "failed"
    assert attributes["error.type"] == "RuntimeError"
    assert "spanhooks.messaging.message" not in attributes  # content: capture is off
