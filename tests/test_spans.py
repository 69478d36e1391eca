"""Span mapping: every seed's events become the right spans, span events and statuses."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from spanhooks import (
    CallbackEvent,
    CallbackManager,
    EventSet,
    MeetingEventType,
    current_call,
    end,
    start,
)
from spanhooks.testing import Capture, capture
from spanhooks.vocab.logillm import (
    ModuleEndEvent,
    ModuleStartEvent,
    ProviderErrorEvent,
    ProviderRequestEvent,
    ProviderResponseEvent,
)
from spanhooks.vocab.meeting import (
    MeetingEvent,
    MeetingStartedEventData,
    ParticipantJoinedEventData,
    TurnChangedEventData,
)

PROCESS = SimpleNamespace(display_name="helper", model_name="claude-x", provider="anthropic")


def _llmproc_turn(manager: CallbackManager) -> None:
    manager.emit(CallbackEvent.TURN_START, PROCESS)
    manager.emit(
        CallbackEvent.API_REQUEST, {"model": "claude-x", "max_tokens": 64, "messages": ["hi"]}
    )
    manager.emit(
        CallbackEvent.API_RESPONSE,
        {
            "id": "msg_1",
            "model": "claude-x",
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 11, "output_tokens": 4},
        },
    )
    manager.emit(CallbackEvent.TOOL_START, "search", {"q": "otel"})
    manager.emit(CallbackEvent.STDERR_WRITE, "warming up")
    manager.emit(CallbackEvent.TOOL_END, "search", {"hits": 3})
    manager.emit(CallbackEvent.RESPONSE, "done")
    manager.emit(
        CallbackEvent.TURN_END, PROCESS, {"usage": {"input_tokens": 20, "output_tokens": 5}}, [1]
    )


def test_an_llmproc_turn_becomes_an_agent_span_with_chat_and_tool_children(
    spanhooks_capture: Capture,
) -> None:
    _llmproc_turn(spanhooks_capture.manager)
    assert spanhooks_capture.tree() == [
        {
            "name": "invoke_agent helper",
            "status": "UNSET",
            "events": ["response"],
            "children": [
                {"name": "chat claude-x", "status": "UNSET", "events": [], "children": []},
                {
                    "name": "execute_tool search",
                    "status": "UNSET",
                    "events": ["stderr_write"],
                    "children": [],
                },
            ],
        }
    ]
    agent = spanhooks_capture.span("invoke_agent helper").attributes or {}
    assert agent[gen_ai.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert agent[gen_ai.GEN_AI_AGENT_NAME] == "helper"
    assert agent[gen_ai.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert gen_ai.GEN_AI_SYSTEM not in agent  # deprecated: gen_ai.provider.name replaces it
    chat = spanhooks_capture.span("chat claude-x")
    assert chat.kind is trace.SpanKind.CLIENT
    assert {
        gen_ai.GEN_AI_OPERATION_NAME: "chat",
        gen_ai.GEN_AI_REQUEST_MODEL: "claude-x",
        gen_ai.GEN_AI_REQUEST_MAX_TOKENS: 64,
        gen_ai.GEN_AI_RESPONSE_ID: "msg_1",
        gen_ai.GEN_AI_RESPONSE_FINISH_REASONS: ("tool_use",),
        gen_ai.GEN_AI_USAGE_INPUT_TOKENS: 11,
        gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS: 4,
    }.items() <= dict(chat.attributes or {}).items()
    tool = spanhooks_capture.span("execute_tool search").attributes or {}
    assert tool[gen_ai.GEN_AI_TOOL_NAME] == "search"
    assert tool[gen_ai.GEN_AI_OPERATION_NAME] == "execute_tool"


def test_content_is_not_recorded_unless_opted_in(spanhooks_capture: Capture) -> None:
    _llmproc_turn(spanhooks_capture.manager)
    spanhooks_capture.manager.trigger(
        "on_message", user_id="u", message="my secret plan", timestamp=0
    )
    recorded = repr(
        [(s.attributes, [e.attributes for e in s.events]) for s in spanhooks_capture.spans()]
    )
    for content in ("otel", "hits", "warming up", "done", "my secret plan", "'hi'"):
        assert content not in recorded


def test_content_is_recorded_when_capture_is_on() -> None:
    with capture(capture_content=True) as cap:
        _llmproc_turn(cap.manager)
    tool = cap.span("execute_tool search").attributes or {}
    assert tool[gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"q":"otel"}'
    assert tool[gen_ai.GEN_AI_TOOL_CALL_RESULT] == '{"hits":3}'
    [response] = cap.span("invoke_agent helper").events
    assert response.attributes == {
        "gen_ai.output.messages": '[{"role":"assistant","parts":[{"type":"text","content":"done"}],'
        '"finish_reason":"stop"}]'
    }


def test_the_content_switch_follows_the_genai_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    assert CallbackManager().capture_content is True
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false")
    assert CallbackManager().capture_content is False


def test_a_failing_tool_marks_its_span_error(spanhooks_capture: Capture) -> None:
    manager = spanhooks_capture.manager
    manager.emit(CallbackEvent.TOOL_START, "calculator", {"expr": "1/0"})
    manager.emit(
        CallbackEvent.TOOL_END,
        "calculator",
        SimpleNamespace(is_error=True, error="division by zero"),
    )
    span = spanhooks_capture.span("execute_tool calculator")
    assert span.status.status_code.name == "ERROR"
    assert span.status.description == "division by zero"


def test_thea_events_are_span_events_on_the_current_span_and_errors_are_recorded(
    spanhooks_capture: Capture,
) -> None:
    manager = spanhooks_capture.manager
    with spanhooks_capture.tracer.start_as_current_span("handle_request"):
        manager.trigger("on_message", user_id="alvaro_123", message="Agendar", timestamp=1)
        manager.trigger("on_intent_detected", user_id="alvaro_123", intent="agenda", score=0.95)
        manager.trigger(
            "on_agent_delegated", user_id="alvaro_123", agent="AgendaAgent", intent="agenda"
        )
        manager.trigger(
            "on_state_change", user_id="alvaro_123", old_state="initial", new_state="delegated"
        )
        manager.trigger(
            "on_error", user_id="alvaro_123", error=ConnectionError("lost"), traceback="tb"
        )
        manager.trigger("on_session_timeout", user_id="alvaro_123", session_id="sess_1")
    span = spanhooks_capture.span("handle_request")
    assert [e.name for e in span.events] == [
        "on_message",
        "on_intent_detected",
        "on_agent_delegated",
        "on_state_change",
        "on_error",
        "exception",
        "on_session_timeout",
    ]
    assert span.status.status_code.name == "ERROR"
    by_name = {e.name: dict(e.attributes or {}) for e in span.events}
    assert by_name["on_intent_detected"] == {
        "user.id": "alvaro_123",
        "thea.intent": "agenda",
        "thea.score": 0.95,
    }
    assert by_name["on_agent_delegated"][gen_ai.GEN_AI_AGENT_NAME] == "AgendaAgent"
    assert by_name["on_session_timeout"]["session.id"] == "sess_1"
    assert by_name["exception"]["exception.type"] == "ConnectionError"


def test_a_point_event_with_no_open_span_gets_a_span_of_its_own(spanhooks_capture: Capture) -> None:
    spanhooks_capture.manager.trigger("on_intent_detected", user_id="u", intent="agenda", score=0.5)
    span = spanhooks_capture.span("on_intent_detected")
    assert [e.name for e in span.events] == ["on_intent_detected"]


def test_logillm_events_nest_and_carry_call_ids(spanhooks_capture: Capture) -> None:
    manager = spanhooks_capture.manager
    outer = ModuleStartEvent(module=SimpleNamespace(), inputs={"question": "q"})
    manager.emit(outer)
    request = ProviderRequestEvent(
        provider=SimpleNamespace(name="openai", model="gpt-x"),
        messages=["q"],
        parameters={"temperature": 0.1},
    )
    manager.emit(request)
    manager.emit(
        ProviderResponseEvent(
            provider=None, response={"id": "r"}, usage={"prompt_tokens": 3, "completion_tokens": 2}
        )
    )
    manager.emit(ModuleEndEvent(module=None, outputs={"answer": "a"}, success=True, duration=0.1))
    assert outer.context is not None and request.context is not None
    assert request.context.parent_call_id == outer.context.call_id
    assert outer.context.parent_call_id is None
    chat = spanhooks_capture.span("chat gpt-x")
    assert format(chat.context.span_id, "016x") == request.context.call_id
    attrs = chat.attributes or {}
    assert attrs[gen_ai.GEN_AI_PROVIDER_NAME] == "openai"
    assert attrs[gen_ai.GEN_AI_REQUEST_TEMPERATURE] == 0.1
    assert attrs[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] == 3
    assert attrs[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] == 2
    assert spanhooks_capture.tree()[0]["name"] == "module SimpleNamespace"


def test_a_provider_error_ends_the_request_span_with_the_exception(
    spanhooks_capture: Capture,
) -> None:
    manager = spanhooks_capture.manager
    manager.emit(
        ProviderRequestEvent(provider=SimpleNamespace(name="openai"), parameters={"model": "m"})
    )
    manager.emit(ProviderErrorEvent(provider=None, error=TimeoutError("upstream timed out")))
    span = spanhooks_capture.span("chat m")
    assert span.status.status_code.name == "ERROR"
    assert span.events[0].name == "exception"
    assert (span.attributes or {})["error.type"] == "TimeoutError"


def test_a_meeting_is_a_span_with_lifecycle_span_events(spanhooks_capture: Capture) -> None:
    manager = spanhooks_capture.manager

    def emit(kind: MeetingEventType, data: object, meeting_id: int = 5) -> None:
        manager.emit(kind, MeetingEvent(kind, meeting_id, data))

    emit(MeetingEventType.MEETING_STARTED, MeetingStartedEventData("alice", ("bob",)))
    emit(MeetingEventType.PARTICIPANT_JOINED, ParticipantJoinedEventData("bob"))
    emit(MeetingEventType.TURN_CHANGED, TurnChangedEventData("alice", "bob"))
    emit(MeetingEventType.MEETING_ENDED, None)
    span = spanhooks_capture.span("meeting")
    assert [e.name for e in span.events] == ["participant_joined", "turn_changed"]
    assert (span.attributes or {})["meeting.host_id"] == "alice"
    assert dict(span.events[1].attributes or {}) == {
        "meeting.id": "5",
        "meeting.previous_speaker_id": "alice",
        "meeting.current_speaker_id": "bob",
    }


def test_an_end_is_matched_by_explicit_call_id_over_nesting(spanhooks_capture: Capture) -> None:
    manager = spanhooks_capture.manager
    first = manager.emit(CallbackEvent.TOOL_START, "fetch", {})
    manager.emit(CallbackEvent.TOOL_START, "fetch", {})
    manager.emit(CallbackEvent.TOOL_END, "fetch", "first done", call_id=first)
    [ended] = spanhooks_capture.spans()
    assert format(ended.context.span_id, "016x") == first


def test_an_end_closes_the_innermost_open_call_with_the_same_key(
    spanhooks_capture: Capture,
) -> None:
    manager = spanhooks_capture.manager
    manager.emit(CallbackEvent.TOOL_START, "outer_tool", {})
    manager.emit(CallbackEvent.TOOL_START, "inner_tool", {})
    manager.emit(CallbackEvent.TOOL_END, "outer_tool", "r")
    assert [s.name for s in spanhooks_capture.spans()] == ["execute_tool outer_tool"]
    manager.emit(CallbackEvent.TOOL_END, "inner_tool", "r")
    assert spanhooks_capture.tree()[0]["children"][0]["name"] == "execute_tool inner_tool"


def test_an_end_without_a_start_is_ignored_and_counted(
    spanhooks_capture: Capture, spanhooks_logs: pytest.LogCaptureFixture
) -> None:
    manager = spanhooks_capture.manager
    seen: list[str] = []
    manager.register(CallbackEvent.TOOL_END, lambda tool_name, result: seen.append(tool_name))
    manager.emit(CallbackEvent.TOOL_END, "ghost", None)
    manager.emit(CallbackEvent.TOOL_END, "ghost", None, call_id="00000000000000ff")
    assert seen == ["ghost", "ghost"]  # callbacks still hear about it
    assert manager.stats()["unmatched_ends"] == 2
    assert spanhooks_capture.spans() == []
    assert "no open start to close" in spanhooks_logs.text


async def test_start_and_end_in_different_tasks_close_the_right_span_without_detach_errors(
    spanhooks_capture: Capture, spanhooks_logs: pytest.LogCaptureFixture
) -> None:
    manager = spanhooks_capture.manager
    spanhooks_logs.set_level(logging.DEBUG)
    manager.emit(CallbackEvent.TURN_START, PROCESS)
    call_id = manager.emit(CallbackEvent.TOOL_START, "remote", {})

    async def finisher() -> None:
        await asyncio.sleep(0)
        manager.emit(CallbackEvent.TOOL_END, "remote", "ok")

    await asyncio.create_task(finisher())
    # The starting task still has the ended tool span in its context: new work nests under the turn.
    manager.emit(CallbackEvent.TOOL_START, "next", {})
    manager.emit(CallbackEvent.TOOL_END, "next", "ok")
    manager.emit(CallbackEvent.TURN_END, PROCESS, None, [])
    assert "Failed to detach context" not in spanhooks_logs.text
    turn = spanhooks_capture.tree()[0]
    assert [child["name"] for child in turn["children"]] == [
        "execute_tool remote",
        "execute_tool next",
    ]
    assert call_id == format(spanhooks_capture.span("execute_tool remote").context.span_id, "016x")


def test_start_and_end_in_different_threads_close_the_right_span(
    spanhooks_capture: Capture, spanhooks_logs: pytest.LogCaptureFixture
) -> None:
    manager = spanhooks_capture.manager
    call_id = manager.emit(CallbackEvent.API_REQUEST, {"model": "m"})
    worker = threading.Thread(target=manager.emit, args=(CallbackEvent.API_RESPONSE, {"id": "x"}))
    worker.start()
    worker.join()
    [span] = spanhooks_capture.spans()
    assert format(span.context.span_id, "016x") == call_id
    assert "Failed to detach context" not in spanhooks_logs.text
    manager.emit(CallbackEvent.TOOL_START, "after", {})
    manager.emit(CallbackEvent.TOOL_END, "after", "ok")
    assert (
        spanhooks_capture.span("execute_tool after").parent is None
    )  # not under the ended chat span


def test_spans_from_other_instrumentations_nest_under_the_open_span(
    spanhooks_capture: Capture,
) -> None:
    manager = spanhooks_capture.manager
    http_client = spanhooks_capture.provider.get_tracer("an.http.client")
    manager.emit(CallbackEvent.TOOL_START, "web", {})
    with http_client.start_as_current_span("GET /search"):
        manager.emit(CallbackEvent.STDERR_WRITE, "inside the request")
    manager.emit(CallbackEvent.TOOL_END, "web", "ok")
    [tool] = spanhooks_capture.tree()
    assert tool["children"][0]["name"] == "GET /search"
    assert tool["children"][0]["events"] == ["stderr_write"]


def test_current_call_reports_the_open_call_and_its_parent(spanhooks_capture: Capture) -> None:
    manager = spanhooks_capture.manager
    seen: list[Any] = []
    manager.register(
        CallbackEvent.TOOL_START, lambda tool_name, tool_args: seen.append(current_call())
    )
    turn_id = manager.emit(CallbackEvent.TURN_START, PROCESS)
    tool_id = manager.emit(CallbackEvent.TOOL_START, "t", {})
    assert seen[0].call_id == tool_id and seen[0].parent_call_id == turn_id
    assert current_call() == seen[0]


def test_a_start_never_ended_is_closed_as_abandoned_when_the_cap_is_reached() -> None:
    with capture(max_open_spans=3) as cap:
        for index in range(5):
            cap.manager.emit(CallbackEvent.TOOL_START, f"leak{index}", {})
            trace.get_current_span()  # the leak keeps nesting in this context
        stats = cap.manager.stats()
        abandoned = [s for s in cap.spans() if (s.attributes or {}).get("spanhooks.abandoned")]
    assert stats["abandoned_spans"] == 2 and stats["open_spans"] == 3
    assert {s.name for s in abandoned} == {"execute_tool leak0", "execute_tool leak1"}
    assert all(s.status.status_code.name == "ERROR" for s in abandoned)


def test_spans_still_open_at_shutdown_are_exported_as_abandoned() -> None:
    with capture() as cap:
        cap.manager.emit(CallbackEvent.TURN_START, PROCESS)
        assert cap.manager.close_open_spans("process exit") == 1
        [span] = cap.spans()
    assert span.status.description == "abandoned: process exit"


def test_payloads_that_cannot_be_serialised_never_raise(spanhooks_capture: Capture) -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

        __str__ = __repr__

    cyclic: dict[str, Any] = {"name": "loop"}
    cyclic["self"] = cyclic
    events = EventSet("odd", [start("thing_start", "a", "b", "c", "d"), end("thing_end")])
    spanhooks_capture.manager.declare(events)
    spanhooks_capture.manager.emit("thing_start", Hostile(), cyclic, b"\x00\xff", float("nan"))
    spanhooks_capture.manager.emit("thing_end")
    attrs = spanhooks_capture.span("thing").attributes or {}
    assert attrs["odd.a"].startswith("<unrepresentable ")
    assert attrs["odd.b"] == '{"name":"loop","self":"<cycle>"}'
    assert attrs["odd.c"] == "<2 bytes>"
    assert attrs["odd.d"] == "nan"


def test_long_values_are_truncated_to_valid_json_keeping_ids_first() -> None:
    import json

    with capture(max_attribute_length=64, capture_content=True) as cap:
        cap.manager.emit(CallbackEvent.TOOL_START, "t" * 100, {"blob": "x" * 1000, "n": [1, 2, 3]})
        cap.manager.emit(CallbackEvent.TOOL_END, "t" * 100, None)
    attrs = cap.spans()[0].attributes or {}
    arguments = attrs[gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS]
    assert isinstance(arguments, str) and len(arguments) <= 64
    kept = json.loads(arguments)  # the document keeps its shape: its long string is cut
    assert kept["n"] == [1, 2, 3]
    assert kept["blob"].startswith("xxx") and kept["blob"].endswith("...[truncated]")
    assert len(str(attrs[gen_ai.GEN_AI_TOOL_NAME])) == 64
    assert list(attrs).index(gen_ai.GEN_AI_TOOL_NAME) < list(attrs).index(
        gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS
    )


def test_ids_survive_when_a_payload_has_more_attributes_than_the_limit() -> None:
    wide = EventSet(
        "wide",
        [
            start("batch_start", *[f"f{i}" for i in range(300)], attributes={"f299": "batch.id"}),
            end("batch_end"),
        ],
    )
    with capture() as cap:
        cap.manager.set_attribute_policy(cap.manager.attribute_policy.__class__(max_attributes=32))
        cap.manager.declare(wide)
        cap.manager.emit("batch_start", *range(300))
        cap.manager.emit("batch_end")
    attrs = cap.span("batch").attributes or {}
    assert attrs["batch.id"] == 299
    assert cap.span("batch").instrumentation_scope.name == "spanhooks.wide"
    assert len(attrs) <= 32


def test_secret_looking_arguments_are_redacted(spanhooks_capture: Capture) -> None:
    events = EventSet(
        "auth", [start("login_start", "user", "api_key", "password"), end("login_end")]
    )
    spanhooks_capture.manager.declare(events)
    spanhooks_capture.manager.emit("login_start", "ann", "sk-live-123", "hunter2")
    spanhooks_capture.manager.emit("login_end")
    attrs = spanhooks_capture.span("login").attributes or {}
    assert attrs["auth.api_key"] == attrs["auth.password"] == "[REDACTED]"
    assert attrs["auth.user"] == "ann"


def test_no_span_work_is_done_when_tracing_is_not_configured() -> None:
    manager = CallbackManager()
    seen: list[str] = []
    manager.register(CallbackEvent.RESPONSE, seen.append)
    assert manager.emit(CallbackEvent.TURN_START, PROCESS) is None  # no call id without tracing
    manager.emit(CallbackEvent.RESPONSE, "still dispatched")
    assert seen == ["still dispatched"]
    assert manager.stats()["open_spans"] == 0
    gc.collect()


def test_a_start_older_than_the_age_limit_is_closed_as_abandoned() -> None:
    import time

    with capture(max_span_age=0.05) as cap:
        cap.manager.emit(CallbackEvent.TOOL_START, "stale", {})
        time.sleep(0.1)
        cap.manager.emit(CallbackEvent.TOOL_START, "fresh", {})
        [stale] = cap.spans()
    assert stale.name == "execute_tool stale"
    assert stale.status.description is not None and "abandoned" in stale.status.description
