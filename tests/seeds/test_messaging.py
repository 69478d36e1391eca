"""The Agent Messaging Protocol's own examples (tests/seeds/documents/messaging.txt) run on
spanhooks with only their imports changed (``agent_messaging...`` ->
``spanhooks.compat.messaging``, the ``MESSAGING`` import map), each with the trace a user of the
seed should see.

Every block of the document is in :data:`TABLE`, keyed by the line its code starts on:
runnable as is, runnable after a stated minimal completion, or not code to run (and why). A
completion is one of: ``top-level await`` (the block awaits outside a function, as in an
asyncio REPL; it is compiled with ``PyCF_ALLOW_TOP_LEVEL_AWAIT``, nothing else changes),
``given`` names the block uses but never defines (injected into its namespace, listed in the
table), an ``import`` line for a name an earlier block of the document imported, an ``append``
that calls what the block only defines, or a ``replace`` of the seed's ``...`` placeholders
with arguments. Nothing else in a block is edited.

What a block does is driven by the test (sending a message, starting a meeting) only where the
block itself defines handlers and stops; the driving code is in the test, not in the block.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

import spanhooks.compat.messaging as compat
from spanhooks.compat.messaging import (
    AgentMessaging,
    HandlerContext,
    MeetingEvent,
    MeetingEventType,
    MessageContext,
    clear_handlers,
    get_handler,
    register_conversation_handler,
    register_message_notification_handler,
    register_one_way_handler,
)
from spanhooks.testing import Capture
from spanhooks.tracing.attributes import AttributePolicy, set_active_policy

from .blocks import Block, document, fenced_blocks
from .import_maps import MESSAGING, rewrite_imports

BLOCKS = fenced_blocks(document("messaging"))
BY_LINE = {block.line: block for block in BLOCKS}

AS_IS = "runnable as is"
COMPLETED = "runnable after completion"
NOT_CODE = "not code to run"

IMPORTS = "from spanhooks.compat.messaging import "
TABLE: dict[int, tuple[str, str]] = {
    61: (AS_IS, "names the three HandlerContext members"),
    71: (COMPLETED, "given: send_push_notification (the seed never defines it)"),
    98: (COMPLETED, "given: sdk (an entered AgentMessaging), a ONE_WAY handler; top-level await"),
    105: (COMPLETED, "given: sdk, a CONVERSATION handler; top-level await"),
    112: (COMPLETED, "given: sdk, CONVERSATION and MESSAGE_NOTIFICATION handlers; top-level await"),
    121: (
        COMPLETED,
        "top-level await; import: register_one_way_handler, AgentMessaging; "
        "replace: send(...) -> send('alice', ['bob'], {...})",
    ),
    136: (COMPLETED, "import: register_one_way_handler (block 71's)"),
    148: (NOT_CODE, "two comment lines, no statement"),
    157: (COMPLETED, "import: dataclass, Any, Optional, HandlerContext (a listing of the class)"),
    199: (AS_IS, "names the six MeetingEventType members"),
    212: (COMPLETED, "top-level await; import: AgentMessaging (the block uses it unimported)"),
    239: (AS_IS, "imports the typed data classes, defines on_turn_changed"),
    258: (
        COMPLETED,
        "top-level await; import: AgentMessaging; given: event_type, handler1, handler2",
    ),
    270: (COMPLETED, "given: sdk, event_type, handler1, handler2"),
    278: (COMPLETED, "given: sdk, event_type, handler (registered first)"),
    293: (COMPLETED, "given: db, webhook_client, websocket_manager (in-memory fakes)"),
    324: (COMPLETED, "given: Notification, Query, MeetingMsg (message types), AgentMessaging"),
    340: (COMPLETED, "import: register_one_way_handler, MessageContext (block 71's)"),
    359: (COMPLETED, "import: register_one_way_handler, MessageContext (block 71's)"),
    371: (COMPLETED, "import: register_conversation_handler, MessageContext; given: process"),
    392: (NOT_CODE, "shell commands (pip install, mypy)"),
    402: (COMPLETED, "import: TypedDict (the block uses it unimported); append: await main()"),
    427: (COMPLETED, "import: register_one_way_handler, MessageContext (block 71's)"),
    448: (NOT_CODE, "a decision tree drawn in text"),
    491: (COMPLETED, "import: register_one_way_handler, MessageContext; given: Notification"),
    498: (COMPLETED, "import: register_one_way_handler; given: redis (in-memory fake)"),
    514: (COMPLETED, "import: register_one_way_handler; given: process_message, logger"),
    525: (
        COMPLETED,
        "import: AgentMessaging; replace: send(...) -> send('alice', ['bob'], {...}); "
        "append: await main()",
    ),
    543: (
        COMPLETED,
        "top-level await; import: AgentMessaging; given: event_type, handler; "
        "replace: create_meeting(...) -> create_meeting('alice', ['bob'])",
    ),
    553: (COMPLETED, "import: MeetingEvent; given: close_websockets, cleanup_resources"),
    561: (COMPLETED, "import: asyncio, time; replace: sleep(5) -> sleep(0.01) (suite speed)"),
    572: (COMPLETED, "import: MeetingEvent, MeetingStartedEventData"),
    593: (
        COMPLETED,
        "top-level await; import: register_conversation_handler, AgentMessaging, "
        "MeetingEventType; given: log_meeting_start",
    ),
    615: (
        COMPLETED,
        "import: register_one_way_handler; given: premium_processing, standard_processing",
    ),
    628: (COMPLETED, "given: my_handler; append: await test_handler()"),
    660: (AS_IS, "clears the handlers registered before it"),
    673: (AS_IS, "run in a subprocess: logging.basicConfig changes the process's root logger"),
}


def test_the_document_has_37_blocks_each_classified() -> None:
    assert len(BLOCKS) == 37
    assert sorted(TABLE) == [block.line for block in BLOCKS]
    kinds = [kind for kind, _ in TABLE.values()]
    assert (kinds.count(AS_IS), kinds.count(COMPLETED), kinds.count(NOT_CODE)) == (5, 29, 3)
    assert {BY_LINE[line].language for line, (kind, _) in TABLE.items() if kind != NOT_CODE} == {
        "python"
    }


def test_blocks_that_are_not_code_really_are_not() -> None:
    assert all(line.lstrip().startswith("#") for line in BY_LINE[148].text.splitlines())
    assert BY_LINE[392].language == "bash"
    assert BY_LINE[448].language == "" and BY_LINE[448].text.startswith("START:")


def test_compat_all_is_exactly_the_seed_names() -> None:
    assert compat.__all__ == [
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
    assert all(hasattr(compat, name) for name in compat.__all__)


# -- running a block ------------------------------------------------------------------------


@dataclass
class Ran:
    """A block after it ran: its namespace and what it (and the handlers it defined) printed,
    line by line."""

    ns: dict[str, Any]
    printed: list[str]

    @contextlib.contextmanager
    def printing(self) -> Iterator[None]:
        """Add what is printed inside the ``with`` block (the block's handlers running)."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            yield
        self.printed.extend(out.getvalue().splitlines())


async def run(
    line: int,
    *,
    given: dict[str, Any] | None = None,
    imports: str = "",
    replace: tuple[tuple[str, str], ...] = (),
    append: str = "",
) -> Ran:
    """Run block ``line`` after the import rewrite and only the completion its table row
    states, in a fresh namespace; top-level ``await`` is allowed."""
    block: Block = BY_LINE[line]
    kind, _ = TABLE[line]
    assert kind != NOT_CODE
    if kind == AS_IS:
        assert not (given or imports or replace or append), "an as-is block gets no completion"
    text = rewrite_imports(block.text, MESSAGING)
    assert "agent_messaging" not in text
    for old, new in replace:
        assert old in text, old
        text = text.replace(old, new)
    source = (imports + "\n" if imports else "") + text + ("\n" + append if append else "")
    code = compile(source, f"<messaging.txt block {line}>", "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    module = types.ModuleType(f"messaging_block_{line}")  # a real module: dataclasses look it up
    sys.modules[module.__name__] = module
    ns: dict[str, Any] = module.__dict__
    ns.update(given or {})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = eval(code, ns)
        if asyncio.iscoroutine(result):
            await result
    return Ran(ns, out.getvalue().splitlines())


@pytest.fixture(autouse=True)
def _no_global_handlers() -> Iterator[None]:
    clear_handlers()
    yield
    clear_handlers()


@pytest.fixture
def cap(spanhooks_capture: Capture) -> Capture:
    """Spans of the process-wide manager's provider: where messaging spans go."""
    return spanhooks_capture


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def parent_of(cap: Capture, span: ReadableSpan) -> ReadableSpan | None:
    if span.parent is None:
        return None
    [parent] = [s for s in cap.spans() if s.context.span_id == span.parent.span_id]
    return parent


def calls() -> tuple[list[Any], Callable[..., Any]]:
    """A list and an async function that appends its arguments to it."""
    seen: list[Any] = []

    async def record(*args: Any) -> None:
        seen.append(args if len(args) != 1 else args[0])

    return seen, record


def recording_one_way() -> list[tuple[Any, MessageContext]]:
    seen: list[tuple[Any, MessageContext]] = []

    @register_one_way_handler
    async def record(message: Any, context: MessageContext) -> None:
        seen.append((message, context))

    return seen


async def meeting(sdk: AgentMessaging[Any, Any, Any], *participants: str) -> int:
    """Create and start a meeting hosted by alice; its id."""
    meeting_id = await sdk.meeting.create_meeting("alice", list(participants))
    await sdk.meeting.start_meeting("alice", meeting_id)
    return meeting_id


# -- global message handlers ----------------------------------------------------------------


async def test_61_the_handler_contexts_exist(cap: Capture) -> None:
    ran = await run(61)
    assert [c.value for c in ran.ns["HandlerContext"]] == [
        "one_way",
        "conversation",
        "message_notification",
    ]
    assert cap.spans() == []  # naming an enum records nothing


async def test_71_registered_handlers_process_messages_with_sender_and_receiver_in_the_trace(
    cap: Capture,
) -> None:
    pushes, push = [], lambda agent, text: pushes.append((agent, text))
    ran = await run(71, given={"send_push_notification": push})
    with ran.printing():
        async with AgentMessaging() as sdk:
            await sdk.one_way.send("alice", ["bob"], {"text": "hi"})
            response = await sdk.conversation.send_and_wait("alice", "bob", {"question": "Hi"})
            await sdk.conversation.send_no_wait("alice", "carol", {"text": "Urgent!"})
    assert ran.printed == ["Notification from alice: {'text': 'hi'}"]
    assert response == {"answer": "Processed: Hi"}
    assert pushes == [("carol", "New message!")]
    assert get_handler(HandlerContext.ONE_WAY) is ran.ns["handle_notification"]
    one_way = cap.span("process one_way")
    assert one_way.kind is SpanKind.CONSUMER
    assert {
        "messaging.system": "agent_messaging",
        "messaging.operation.type": "process",
        "messaging.destination.name": "bob",
        "spanhooks.messaging.sender_id": "alice",
        "spanhooks.messaging.receiver_id": "bob",
        "spanhooks.messaging.organization_id": "default",
        "spanhooks.messaging.context": "one_way",
        "spanhooks.messaging.outcome": "handled",
    }.items() <= attrs(one_way).items()
    assert attrs(one_way)["spanhooks.messaging.handler"].endswith("handle_notification")
    assert parent_of(cap, one_way).name == "send one_way"  # type: ignore[union-attr]
    notification = cap.span("process message_notification")
    assert attrs(notification)["spanhooks.messaging.receiver_id"] == "carol"
    conversations = cap.spans("process conversation")  # send_and_wait, then send_no_wait
    assert sorted(attrs(s)["spanhooks.messaging.receiver_id"] for s in conversations) == [
        "bob",
        "carol",
    ]
    assert all("spanhooks.messaging.message" not in attrs(s) for s in cap.spans())  # no capture


async def test_98_one_way_send_calls_the_handler_per_recipient_in_a_child_span(
    cap: Capture,
) -> None:
    seen = recording_one_way()
    async with AgentMessaging() as sdk:
        await run(98, given={"sdk": sdk})
    assert [(m, c.sender_id, c.receiver_id) for m, c in seen] == [
        ({"text": "Hello"}, "alice", "bob")
    ]
    assert cap.tree() == [
        {
            "name": "send one_way",
            "status": "UNSET",
            "events": [],
            "children": [
                {"name": "process one_way", "status": "UNSET", "events": [], "children": []}
            ],
        }
    ]
    send = cap.span("send one_way")
    assert send.kind is SpanKind.PRODUCER
    assert attrs(send)["spanhooks.messaging.recipient_ids"] == ("bob",)
    assert attrs(send)["spanhooks.messaging.sender_id"] == "alice"
    assert attrs(cap.span("process one_way"))["messaging.message.id"] == "1"


async def test_105_send_and_wait_returns_the_conversation_handlers_response(cap: Capture) -> None:
    @register_conversation_handler
    async def answer(message: dict[str, str], context: MessageContext) -> dict[str, str]:
        return {"answer": f"{context.receiver_id} says hello to {message['question']}"}

    async with AgentMessaging() as sdk:
        ran = await run(105, given={"sdk": sdk})
    assert ran.ns["response"] == {"answer": "bob says hello to Hi"}
    send, process = cap.span("send conversation"), cap.span("process conversation")
    assert send.kind is SpanKind.CLIENT
    assert attrs(send)["messaging.operation.name"] == "send_and_wait"
    assert parent_of(cap, process) is not None and parent_of(cap, process).name == send.name  # type: ignore[union-attr]
    session = attrs(send)["messaging.message.conversation_id"]
    assert attrs(process)["messaging.message.conversation_id"] == session
    assert attrs(process)["session.id"] == session
    assert "spanhooks.messaging.response" not in attrs(send)  # content: capture is off


async def test_112_send_no_wait_notifies_a_receiver_that_is_not_waiting(cap: Capture) -> None:
    conversation, notified = [], []
    register_conversation_handler(lambda message, context: conversation.append(message))
    register_message_notification_handler(
        lambda message, context: notified.append(context.receiver_id)
    )
    async with AgentMessaging() as sdk:
        await run(112, given={"sdk": sdk})
    assert conversation == [{"text": "Urgent!"}]
    assert notified == ["bob"]
    send = cap.span("send conversation")
    assert attrs(send)["messaging.operation.name"] == "send_no_wait"
    assert attrs(send)["spanhooks.messaging.notified"] is True
    notification = cap.span("process message_notification")
    assert parent_of(cap, notification).name == "send conversation"  # type: ignore[union-attr]
    assert attrs(notification)["spanhooks.messaging.context"] == "message_notification"


async def test_a_receiver_waiting_in_send_and_wait_is_not_notified(cap: Capture) -> None:
    notified: list[str] = []
    register_message_notification_handler(lambda m, c: notified.append(c.receiver_id))
    async with AgentMessaging() as sdk:

        @register_conversation_handler
        async def bob_asks_back(message: Any, context: MessageContext) -> str:
            if context.receiver_id == "bob":  # bob answers alice while alice waits
                await sdk.conversation.send_no_wait("bob", "alice", {"text": "one moment"})
            return "done"

        assert await sdk.conversation.send_and_wait("alice", "bob", {"q": 1}) == "done"
    assert notified == []  # alice was waiting: the message reaches her without a notification


async def test_121_one_registration_serves_every_sdk_instance(cap: Capture) -> None:
    ran = await run(
        121,
        imports=IMPORTS + "register_one_way_handler, AgentMessaging",
        replace=(("send(...)", "send('alice', ['bob'], {'text': 'hi'})"),),
    )
    assert get_handler(HandlerContext.ONE_WAY) is ran.ns["handle"]
    processed = cap.spans("process one_way")
    assert len(processed) == 2
    assert {attrs(s)["spanhooks.messaging.handler"].rsplit(".", 1)[-1] for s in processed} == {
        "handle"
    }
    assert len({s.context.trace_id for s in processed}) == 2  # one trace per send


async def test_136_the_last_registration_wins(cap: Capture) -> None:
    ran = await run(136, imports=IMPORTS + "register_one_way_handler")
    assert get_handler(HandlerContext.ONE_WAY) is ran.ns["handler2"]
    async with AgentMessaging() as sdk:
        await sdk.one_way.send("alice", ["bob"], {"text": "hi"})
    handler = attrs(cap.span("process one_way"))["spanhooks.messaging.handler"]
    assert handler.endswith("handler2")


async def test_157_message_context_has_the_seeds_fields_in_order(cap: Capture) -> None:
    ran = await run(
        157,
        imports="from dataclasses import dataclass\nfrom typing import Any, Optional\n"
        + IMPORTS
        + "HandlerContext",
    )
    listed = [f.name for f in fields(ran.ns["MessageContext"])]
    assert listed == [f.name for f in fields(MessageContext)]
    minimal = MessageContext("alice", "bob", "org", HandlerContext.ONE_WAY)
    assert (minimal.message_id, minimal.session_id, minimal.meeting_id, minimal.metadata) == (
        None,
        None,
        None,
        {},
    )
    assert cap.spans() == []


# -- meeting event handlers -----------------------------------------------------------------


async def test_199_the_meeting_event_types_exist(cap: Capture) -> None:
    ran = await run(199)
    assert [e.value for e in ran.ns["MeetingEventType"]] == [
        "meeting_started",
        "meeting_ended",
        "turn_changed",
        "participant_joined",
        "participant_left",
        "timeout_occurred",
    ]
    assert cap.spans() == []


async def test_212_starting_a_meeting_calls_the_instance_handler_and_opens_a_meeting_span(
    cap: Capture,
) -> None:
    ran = await run(212, imports=IMPORTS + "AgentMessaging")
    assert ran.printed == [
        "Meeting 1 started!",
        "Host: alice",
        "Participants: ['bob', 'charlie']",
    ]
    sdk = ran.ns["sdk"]
    await sdk.meeting.end_meeting("alice", ran.ns["meeting_id"])  # to read the finished span
    [tree] = cap.tree()
    assert tree["name"] == "meeting" and tree["status"] == "UNSET"
    assert tree["events"] == ["turn_changed"]
    assert [child["name"] for child in tree["children"]] == ["speaking_turn"]
    span = cap.span("meeting")
    assert span.parent is None  # no span was open: the meeting is a root
    assert {
        "meeting.id": "1",
        "meeting.host_id": "alice",
        "meeting.participant_ids": ("bob", "charlie"),
        "meeting.participant_count": 2,
    }.items() <= attrs(span).items()


async def test_239_turn_changes_carry_typed_data_and_each_turn_is_a_span(cap: Capture) -> None:
    ran = await run(239)
    with ran.printing():
        async with AgentMessaging() as sdk:
            sdk._event_handler.register_handler(
                MeetingEventType.TURN_CHANGED, ran.ns["on_turn_changed"]
            )
            meeting_id = await meeting(sdk, "bob")
            await sdk.meeting.speak("alice", meeting_id, {"text": "welcome"})
            await sdk.meeting.end_meeting("alice", meeting_id)
    assert ran.printed == [
        "Turn changed from None to alice",
        "Turn changed from alice to bob",
    ]
    span = cap.span("meeting")
    assert [e.name for e in span.events] == ["turn_changed", "turn_changed"]
    turns = cap.children(span, "speaking_turn")
    assert [attrs(t)["meeting.speaker_id"] for t in turns] == ["alice", "bob"]
    [said] = [e for t in turns for e in t.events if e.name == "meeting.message"]
    assert dict(said.attributes or {}) == {
        "meeting.id": "1",
        "meeting.speaker_id": "alice",
        "messaging.message.id": "1",
    }  # who spoke, not what: content is off


async def test_258_each_sdk_instance_has_its_own_handlers_and_its_meetings_are_siblings(
    cap: Capture,
) -> None:
    first, handler1 = calls()
    second, handler2 = calls()
    given = {
        "event_type": MeetingEventType.MEETING_STARTED,
        "handler1": handler1,
        "handler2": handler2,
    }
    ran = await run(258, imports=IMPORTS + "AgentMessaging", given=given)
    await meeting(ran.ns["sdk1"], "bob")
    await meeting(ran.ns["sdk2"], "carol")
    assert [e.data.participant_ids for e in first] == [["bob"]]
    assert [e.data.participant_ids for e in second] == [["carol"]]
    for sdk in (ran.ns["sdk1"], ran.ns["sdk2"]):
        await sdk.meeting.end_meeting("alice", 1)
    meetings = cap.spans("meeting")
    assert len(meetings) == 2
    assert [m.parent for m in meetings] == [None, None]  # siblings, not nested


async def test_270_every_handler_registered_for_an_event_is_called(cap: Capture) -> None:
    first, handler1 = calls()
    second, handler2 = calls()
    sdk: AgentMessaging[Any, Any, Any] = AgentMessaging()
    given = {
        "sdk": sdk,
        "event_type": MeetingEventType.MEETING_STARTED,
        "handler1": handler1,
        "handler2": handler2,
    }
    await run(270, given=given)
    async with sdk:
        meeting_id = await meeting(sdk, "bob")
        await sdk.meeting.end_meeting("alice", meeting_id)
    assert len(first) == len(second) == 1
    assert first[0] is second[0]  # the same MeetingEvent
    assert cap.span("meeting").status.status_code is StatusCode.UNSET


async def test_278_an_unregistered_handler_is_no_longer_called(cap: Capture) -> None:
    seen, handler = calls()
    sdk: AgentMessaging[Any, Any, Any] = AgentMessaging()
    sdk._event_handler.register_handler(MeetingEventType.MEETING_STARTED, handler)
    given = {"sdk": sdk, "event_type": MeetingEventType.MEETING_STARTED, "handler": handler}
    await run(278, given=given)
    async with sdk:
        meeting_id = await meeting(sdk, "bob")
        await sdk.meeting.end_meeting("alice", meeting_id)
    assert seen == []
    assert len(cap.spans("meeting")) == 1  # the meeting is in the trace, handlers or not


class FakeStore:
    """``db``, ``webhook_client`` and ``websocket_manager`` of block 293, in memory."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, method: str) -> Callable[..., Any]:
        async def call(*args: Any) -> None:
            self.calls.append((method, args))

        return call


async def test_293_integration_handlers_get_the_meeting_id_type_and_timestamp(
    cap: Capture,
) -> None:
    db, webhook, sockets = FakeStore(), FakeStore(), FakeStore()
    given = {"db": db, "webhook_client": webhook, "websocket_manager": sockets}
    ran = await run(293, given=given)
    async with AgentMessaging() as sdk:
        for name in ("log_meeting_start", "notify_external_system", "update_dashboard"):
            sdk._event_handler.register_handler(MeetingEventType.MEETING_STARTED, ran.ns[name])
        meeting_id = await meeting(sdk, "bob")
        await sdk.meeting.end_meeting("alice", meeting_id)
    [(method, (table, row))] = db.calls
    assert (method, table, row["meeting_id"], row["event"]) == (
        "insert",
        "meeting_logs",
        1,
        "started",
    )
    assert isinstance(row["timestamp"], float)
    assert webhook.calls == [
        (
            "post",
            (
                "https://api.example.com/meeting-events",
                {"meeting_id": "1", "type": "meeting_started"},
            ),
        )
    ]
    assert sockets.calls == [
        ("broadcast", ({"type": "meeting_update", "meeting_id": "1", "event": "meeting_started"},))
    ]
    assert attrs(cap.span("meeting"))["meeting.id"] == "1"


# -- type safety ----------------------------------------------------------------------------


async def test_324_the_sdk_takes_three_message_type_parameters(cap: Capture) -> None:
    given = {name: type(name, (dict,), {}) for name in ("Notification", "Query", "MeetingMsg")}
    given["AgentMessaging"] = AgentMessaging
    await run(324, given=given)
    typed = AgentMessaging[given["Notification"], given["Query"], given["MeetingMsg"]]  # type: ignore[valid-type]
    assert typing.get_origin(typed) is AgentMessaging
    assert isinstance(typed(), AgentMessaging)
    assert cap.spans() == []


async def test_340_a_typed_dict_message_reaches_the_handler(cap: Capture) -> None:
    ran = await run(340, imports=IMPORTS + "register_one_way_handler, MessageContext")
    with ran.printing():
        async with AgentMessaging() as sdk:
            await sdk.one_way.send(
                "alice", ["bob"], {"type": "alert", "text": "disk full", "priority": "high"}
            )
    assert ran.printed == ["[high] disk full"]
    assert attrs(cap.span("process one_way"))["spanhooks.messaging.outcome"] == "handled"


async def test_359_a_handler_that_fails_is_an_error_span_and_delivery_goes_on(
    cap: Capture,
) -> None:
    ran = await run(359, imports=IMPORTS + "register_one_way_handler, MessageContext")
    with ran.printing():
        async with AgentMessaging() as sdk:
            await sdk.one_way.send("alice", ["bob", "carol"], {"text": "hi"})
    assert ran.printed == []  # message.text raised before printing
    failed = cap.spans("process one_way")
    assert sorted(attrs(s)["spanhooks.messaging.receiver_id"] for s in failed) == ["bob", "carol"]
    for span in failed:
        assert span.status.status_code is StatusCode.ERROR
        assert attrs(span)["error.type"] == "AttributeError"
        assert attrs(span)["spanhooks.messaging.outcome"] == "failed"
        [event] = [e for e in span.events if e.name == "spanhooks.callback.error"]
        assert "exception.stacktrace" not in (event.attributes or {})
    assert cap.span("send one_way").status.status_code is StatusCode.UNSET


async def test_371_a_pydantic_query_gets_a_pydantic_answer(cap: Capture) -> None:
    ran = await run(
        371,
        imports=IMPORTS + "register_conversation_handler, MessageContext",
        given={"process": lambda question: f"answer to {question}"},
    )
    query = ran.ns["Query"](question="2+2?", context="math")
    async with AgentMessaging() as sdk:
        answer = await sdk.conversation.send_and_wait("alice", "bob", query)
    assert answer == ran.ns["Query"](question="2+2?", context="answer to 2+2?")
    assert attrs(cap.span("process conversation"))["spanhooks.messaging.outcome"] == "handled"


async def test_402_what_mypy_would_reject_fails_in_the_handler_not_in_the_sender(
    cap: Capture,
) -> None:
    ran = await run(402, imports="from typing import TypedDict", append="await main()")
    assert ran.printed == ["Hi"]  # then message['invalid'] raised; the second lacks 'text'
    failed = cap.spans("process one_way")
    assert len(failed) == 2
    assert {attrs(s)["error.type"] for s in failed} == {"KeyError"}
    assert [s.status.status_code for s in cap.spans("send one_way")] == [StatusCode.UNSET] * 2


async def test_427_runtime_validation_inside_the_handler(cap: Capture) -> None:
    ran = await run(427, imports=IMPORTS + "register_one_way_handler, MessageContext")
    with ran.printing():
        async with AgentMessaging() as sdk:
            await sdk.one_way.send("alice", ["bob"], {"text": "hi"})
        async with AgentMessaging() as sdk:
            await sdk.one_way.send("alice", ["bob"], {"priority": "low"})
    assert ran.printed[0] == "Valid: hi"
    assert ran.printed[1].startswith("Invalid message: 1 validation error for Notification")
    assert [attrs(s)["spanhooks.messaging.outcome"] for s in cap.spans("process one_way")] == [
        "handled",
        "handled",
    ]


# -- best practices -------------------------------------------------------------------------


async def test_491_a_type_hinted_handler_runs(cap: Capture) -> None:
    class Notification(typing.TypedDict):
        text: str

    ran = await run(
        491,
        imports=IMPORTS + "register_one_way_handler, MessageContext",
        given={"Notification": Notification},
    )
    assert get_handler(HandlerContext.ONE_WAY) is ran.ns["handle"]
    async with AgentMessaging() as sdk:
        await sdk.one_way.send("alice", ["bob"], {"text": "hi"})
    assert attrs(cap.span("process one_way"))["spanhooks.messaging.outcome"] == "handled"


async def test_498_the_stateless_handler_replaces_the_stateful_one(cap: Capture) -> None:
    counts: dict[str, int] = {}

    async def incr(key: str) -> None:
        counts[key] = counts.get(key, 0) + 1

    ran = await run(
        498,
        imports=IMPORTS + "register_one_way_handler",
        given={"redis": SimpleNamespace(incr=incr)},
    )
    async with AgentMessaging() as sdk:
        await sdk.one_way.send("alice", ["bob", "carol"], {"text": "hi"})
    assert counts == {"request_count": 2}
    assert ran.ns["request_count"] == 0  # the BAD handler was replaced before any message
    assert len(cap.spans("process one_way")) == 2


async def test_514_a_handler_that_catches_its_error_logs_it_and_its_span_is_not_an_error(
    cap: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    async def process_message(message: Any) -> None:
        raise RuntimeError("database unavailable")

    given = {"process_message": process_message, "logger": logging.getLogger("seed.app")}
    await run(514, imports=IMPORTS + "register_one_way_handler", given=given)
    with caplog.at_level(logging.ERROR, logger="seed.app"):
        async with AgentMessaging() as sdk:
            await sdk.one_way.send("alice", ["bob"], {"text": "hi"})
    [record] = [r for r in caplog.records if r.name == "seed.app"]
    assert record.getMessage() == "Handler error: database unavailable"
    assert record.context.receiver_id == "bob"  # type: ignore[attr-defined]
    span = cap.span("process one_way")
    assert span.status.status_code is StatusCode.UNSET
    assert attrs(span)["spanhooks.messaging.outcome"] == "handled"


async def test_525_handlers_registered_at_startup_serve_the_sdk_made_later(cap: Capture) -> None:
    ran = await run(
        525,
        imports=IMPORTS + "AgentMessaging",
        replace=(("send(...)", "send('alice', ['bob'], {'text': 'hi'})"),),
        append="await main()",
    )
    assert get_handler(HandlerContext.ONE_WAY) is ran.ns["handle"]
    assert attrs(cap.span("process one_way"))["spanhooks.messaging.handler"].endswith("handle")


async def test_543_handlers_registered_right_after_creation_see_the_first_meeting(
    cap: Capture,
) -> None:
    seen, handler = calls()
    given = {"event_type": MeetingEventType.MEETING_STARTED, "handler": handler}
    ran = await run(
        543,
        imports=IMPORTS + "AgentMessaging",
        given=given,
        replace=(("create_meeting(...)", "create_meeting('alice', ['bob'])"),),
    )
    assert seen == [] and cap.spans() == []  # creating a meeting starts nothing
    sdk = ran.ns["sdk"]
    await sdk.meeting.start_meeting("alice", 1)
    await sdk.meeting.end_meeting("alice", 1)
    assert [event.event_type for event in seen] == [MeetingEventType.MEETING_STARTED]
    assert len(cap.spans("meeting")) == 1


async def test_553_the_ended_handler_cleans_up_and_the_meeting_span_closes(cap: Capture) -> None:
    closed, close_websockets = calls()
    cleaned, cleanup_resources = calls()
    given = {"close_websockets": close_websockets, "cleanup_resources": cleanup_resources}
    ran = await run(553, imports=IMPORTS + "MeetingEvent", given=given)
    async with AgentMessaging() as sdk:
        sdk._event_handler.register_handler(
            MeetingEventType.MEETING_ENDED, ran.ns["on_meeting_ended"]
        )
        meeting_id = await meeting(sdk, "bob")
        assert closed == []
        await sdk.meeting.end_meeting("alice", meeting_id)
    assert closed == cleaned == [1]
    span = cap.span("meeting")
    assert attrs(span)["meeting.reason"] == "ended by host"
    assert span.status.status_code is StatusCode.UNSET


async def test_561_an_async_handler_does_not_block_the_others(cap: Capture) -> None:
    ran = await run(
        561, imports="import asyncio\nimport time", replace=(("sleep(5)", "sleep(0.01)"),)
    )
    order: list[str] = []
    good = ran.ns["on_turn_changed"]  # the GOOD one: the BAD one has the same name

    async def slow(event: MeetingEvent) -> None:
        order.append("slow started")
        await good(event)
        order.append("slow finished")

    async def quick(event: MeetingEvent) -> None:
        order.append("quick")

    async with AgentMessaging() as sdk:
        sdk._event_handler.register_handler(MeetingEventType.TURN_CHANGED, slow)
        sdk._event_handler.register_handler(MeetingEventType.TURN_CHANGED, quick)
        meeting_id = await meeting(sdk, "bob")
        await sdk.meeting.end_meeting("alice", meeting_id)
    assert order == ["slow started", "quick", "slow finished"]  # run concurrently
    assert [e.name for e in cap.span("meeting").events] == ["turn_changed"]


async def test_572_started_event_data_lists_the_participants(cap: Capture) -> None:
    ran = await run(572, imports=IMPORTS + "MeetingEvent, MeetingStartedEventData")
    with ran.printing():
        async with AgentMessaging() as sdk:
            sdk._event_handler.register_handler(
                MeetingEventType.MEETING_STARTED, ran.ns["on_meeting_started"]
            )
            meeting_id = await meeting(sdk, "bob", "carol")
            await sdk.meeting.end_meeting("alice", meeting_id)
    assert ran.printed == ["Participants: ['bob', 'carol']"]
    assert attrs(cap.span("meeting"))["meeting.participant_ids"] == ("bob", "carol")


# -- FAQ ------------------------------------------------------------------------------------


async def test_593_both_systems_together_and_a_conversation_is_not_nested_in_a_meeting(
    cap: Capture,
) -> None:
    logged: list[MeetingEvent] = []
    ran = await run(
        593,
        imports=IMPORTS + "register_conversation_handler, AgentMessaging, MeetingEventType",
        given={"log_meeting_start": logged.append},
    )
    sdk = ran.ns["sdk"]
    async with sdk:
        meeting_id = await meeting(sdk, "bob")
        answer = await sdk.conversation.send_and_wait("alice", "bob", {"question": "?"})
        await sdk.meeting.end_meeting("alice", meeting_id)
    assert answer == {"answer": "..."}
    assert [event.meeting_id for event in logged] == [1]
    roots = [node["name"] for node in cap.tree()]
    assert roots == ["meeting", "send conversation"]  # siblings: the meeting is not current


async def test_615_routing_by_organization_inside_one_handler(cap: Capture) -> None:
    premium, premium_processing = calls()
    standard, standard_processing = calls()
    given = {"premium_processing": premium_processing, "standard_processing": standard_processing}
    await run(615, imports=IMPORTS + "register_one_way_handler", given=given)
    async with AgentMessaging() as sdk:
        await sdk.register_agent("bob", "org_premium", "Bob")
        await sdk.register_agent("carol", "org_basic", "Carol")
        await sdk.one_way.send("alice", ["bob", "carol"], {"text": "hi"})
    assert premium == standard == [{"text": "hi"}]
    organizations = {
        attrs(s)["spanhooks.messaging.receiver_id"]: attrs(s)["spanhooks.messaging.organization_id"]
        for s in cap.spans("process one_way")
    }
    assert organizations == {"bob": "org_premium", "carol": "org_basic"}


async def test_628_a_handler_tested_as_a_plain_async_function(cap: Capture) -> None:
    async def my_handler(message: Any, context: MessageContext) -> dict[str, Any]:
        return {"echo": message["text"], "to": context.receiver_id}

    ran = await run(628, given={"my_handler": my_handler}, append="await test_handler()")
    assert ran.ns["test_handler"].pytestmark[0].name == "asyncio"
    assert cap.spans() == []  # calling a handler directly is not a delivery: nothing is traced


async def test_660_clear_handlers_removes_every_global_handler(cap: Capture) -> None:
    register_one_way_handler(lambda m, c: None)
    register_conversation_handler(lambda m, c: None)
    register_message_notification_handler(lambda m, c: None)
    await run(660)
    assert [get_handler(context) for context in HandlerContext] == [None, None, None]
    async with AgentMessaging() as sdk:
        await sdk.one_way.send("alice", ["bob"], {"text": "hi"})
    span = cap.span("process one_way")
    assert attrs(span)["spanhooks.messaging.outcome"] == "unhandled"
    assert "spanhooks.messaging.handler" not in attrs(span)


CHILD = """
import asyncio, sys
import spanhooks
spanhooks.setup(jsonl_path=sys.argv[1], service_name="seed-messaging")
from spanhooks.compat.messaging import AgentMessaging, register_one_way_handler
{block}
@register_one_way_handler
async def handle(message, context):
    pass

async def main():
    async with AgentMessaging() as sdk:
        await sdk.one_way.send("alice", ["bob"], {{"text": "hi"}})

asyncio.run(main())
spanhooks.shutdown()
"""


def test_673_debug_logging_shows_registrations_and_invocations(tmp_path: Path) -> None:
    block = rewrite_imports(BY_LINE[673].text, MESSAGING)
    spans_file = tmp_path / "spans.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(block=block), str(spans_file)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SPANHOOKS_METRICS_PORT": ""},
    )
    assert done.returncode == 0, done.stderr
    assert "registered the one_way handler __main__.handle" in done.stderr
    assert "invoking the one_way handler __main__.handle for a message from alice to bob" in (
        done.stderr
    )
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    [process] = [s for s in spans if s["name"] == "process one_way"]
    assert process["attributes"]["spanhooks.messaging.sender_id"] == "alice"
    assert process["attributes"]["spanhooks.messaging.receiver_id"] == "bob"


# -- content rules and meeting trees beyond the blocks ----------------------------------------


@pytest.fixture
def capturing() -> Iterator[None]:
    """Content capture on, with a redaction pattern, for the duration of a test."""
    previous = set_active_policy(
        AttributePolicy(capture_content=True, redact_patterns=("sk-\\w+",))
    )
    yield
    set_active_policy(previous)


async def test_with_capture_on_messages_and_responses_are_recorded_redacted(
    cap: Capture, capturing: None
) -> None:
    @register_conversation_handler
    async def answer(message: Any, context: MessageContext) -> dict[str, str]:
        return {"answer": "use sk-secret123", "password": "hunter2"}

    async with AgentMessaging() as sdk:
        await sdk.conversation.send_and_wait("alice", "bob", {"question": "key sk-abc"})
    process = attrs(cap.span("process conversation"))
    assert json.loads(process["spanhooks.messaging.message"]) == {"question": "key [REDACTED]"}
    assert json.loads(process["spanhooks.messaging.response"]) == {
        "answer": "use [REDACTED]",
        "password": "[REDACTED]",
    }
    assert process["spanhooks.messaging.sender_id"] == "alice"  # ids stay


async def test_meeting_messages_are_content_too(cap: Capture, capturing: None) -> None:
    async with AgentMessaging() as sdk:
        meeting_id = await meeting(sdk, "bob")
        await sdk.meeting.speak("alice", meeting_id, {"text": "token sk-zzz"})
        await sdk.meeting.end_meeting("alice", meeting_id)
    [said] = [e for s in cap.spans("speaking_turn") for e in s.events]
    assert json.loads((said.attributes or {})["spanhooks.messaging.message"]) == {
        "text": "token [REDACTED]"
    }


async def test_sequential_meetings_are_siblings_under_the_callers_span(cap: Capture) -> None:
    async with AgentMessaging() as sdk:
        with cap.tracer.start_as_current_span("app"):
            for _ in range(2):
                meeting_id = await meeting(sdk, "bob")
                await sdk.meeting.end_meeting("alice", meeting_id)
            await sdk.one_way.send("alice", ["bob"], {"text": "after"})
    [app] = cap.tree()
    assert [child["name"] for child in app["children"]] == ["meeting", "meeting", "send one_way"]


async def test_a_meeting_left_open_does_not_swallow_what_comes_next(cap: Capture) -> None:
    async with AgentMessaging() as sdk:
        first = await meeting(sdk, "bob")
        second = await meeting(sdk, "carol")  # the first is still going on
        await sdk.one_way.send("alice", ["bob"], {"text": "between"})
        await sdk.meeting.end_meeting("alice", first)
        await sdk.meeting.end_meeting("alice", second)
    assert [node["name"] for node in cap.tree()] == ["meeting", "meeting", "send one_way"]


async def test_the_whole_meeting_lifecycle_is_in_its_span(cap: Capture) -> None:
    seen: list[MeetingEventType] = []
    timed_out = asyncio.Event()
    async with AgentMessaging() as sdk:
        for kind in MeetingEventType:
            sdk._event_handler.register_handler(kind, lambda e: seen.append(e.event_type))
        sdk._event_handler.register_handler(
            MeetingEventType.TIMEOUT_OCCURRED, lambda e: timed_out.set()
        )
        meeting_id = await sdk.meeting.create_meeting("alice", ["bob"], turn_duration=0.01)
        await sdk.meeting.start_meeting("alice", meeting_id, next_speaker="bob")
        await sdk.meeting.attend_meeting("carol", meeting_id)
        await asyncio.wait_for(timed_out.wait(), 10)  # bob never speaks
        await sdk.meeting.leave_meeting("carol", meeting_id)
        await sdk.meeting.end_meeting("alice", meeting_id)
    span = cap.span("meeting")
    names = [e.name for e in span.events]
    assert names[:4] == ["turn_changed", "participant_joined", "timeout_occurred", "turn_changed"]
    assert "participant_left" in names
    timeout = next(e for e in span.events if e.name == "timeout_occurred")
    assert dict(timeout.attributes or {}) == {
        "meeting.id": "1",
        "meeting.speaker_id": "bob",
        "meeting.timeout_seconds": 0.01,
    }
    assert seen[0] is MeetingEventType.MEETING_STARTED
    assert seen[-1] is MeetingEventType.MEETING_ENDED
    assert attrs(span)["meeting.host_id"] == "alice"
