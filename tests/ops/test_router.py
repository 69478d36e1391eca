"""Event router: handlers by priority, middleware that transforms or drops, handler stats."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from opentelemetry import trace

from spanhooks.ops import EventRouter
from spanhooks.ops.router import MAX_EVENT_TYPES
from spanhooks.testing import Capture
from spanhooks.tracing.attributes import AttributePolicy, set_active_policy


def test_the_seed_usage_works_as_written() -> None:
    router = EventRouter()
    lines: list[str] = []

    def primary_handler(data: Any) -> None:
        lines.append("Primary processing")

    def secondary_handler(data: Any) -> None:
        lines.append("Secondary processing")

    router.register_realtime_handler("session.created", primary_handler, priority=100)
    router.register_realtime_handler("session.created", secondary_handler, priority=50)

    def logging_middleware(event_type: str, data: Any) -> Any:
        lines.append(f"Processing {event_type}")
        return data

    router.register_middleware(logging_middleware, priority=100)
    assert router.route("session.created", {"id": 1}) is True
    assert lines == ["Processing session.created", "Primary processing", "Secondary processing"]


def test_several_handlers_run_by_priority_and_ties_keep_registration_order() -> None:
    router = EventRouter()
    order: list[str] = []
    router.register_realtime_handler("audio", lambda data: order.append("low"), priority=-5)
    router.register_realtime_handler("audio", lambda data: order.append("first-0"))
    router.register_realtime_handler("audio", lambda data: order.append("high"), priority=10)
    router.register_realtime_handler("audio", lambda data: order.append("second-0"))
    router.register_realtime_handler("video", lambda data: order.append("video"))
    router.route("audio", b"chunk")
    assert order == ["high", "first-0", "second-0", "low"]


def test_middleware_transforms_in_priority_order_and_none_drops_the_event() -> None:
    router = EventRouter()
    seen: list[Any] = []
    router.register_realtime_handler("audio", seen.append)
    router.register_middleware(lambda event_type, data: {**data, "tagged": event_type}, 100)
    router.register_middleware(lambda event_type, data: None if data.get("noise") else data, 50)
    assert router.route("audio", {"chunk": 1}) is True
    assert router.route("audio", {"chunk": 2, "noise": True}) is False
    assert seen == [{"chunk": 1, "tagged": "audio"}]
    stats = router.get_handler_stats()
    assert stats["events"] == {"audio": {"handled": 1, "dropped": 1}}
    assert stats["dropped"] == 1


def test_a_raising_middleware_is_skipped_and_the_event_goes_on() -> None:
    router = EventRouter()
    seen: list[Any] = []

    def broken(event_type: str, data: Any) -> Any:
        raise RuntimeError("middleware bug")

    router.register_middleware(broken)
    router.register_realtime_handler("x", seen.append)
    assert router.route("x", 1) is True
    assert seen == [1]
    assert router.get_handler_stats()["middleware"][0]["errors"] == 1


def test_handler_stats_count_calls_errors_and_latency() -> None:
    router = EventRouter()

    def ok(data: Any) -> None:
        return None

    def broken(data: Any) -> None:
        raise ValueError("bad")

    router.register_realtime_handler("e", ok, priority=7)
    router.register_realtime_handler("e", broken)
    for _ in range(3):
        router.route("e", {})
    stats = {h["name"].rsplit(".", 1)[-1]: h for h in router.get_handler_stats()["handlers"]}
    assert (
        stats["ok"].items()
        >= {
            "event_type": "e",
            "priority": 7,
            "calls": 3,
            "errors": 0,
            "timeouts": 0,
        }.items()
    )
    assert stats["broken"]["calls"] == 3
    assert stats["broken"]["errors"] == 3
    assert stats["ok"]["avg_seconds"] > 0


def test_a_handler_past_its_timeout_is_counted_and_routing_goes_on() -> None:
    router = EventRouter()
    release = threading.Event()
    after: list[Any] = []
    router.register_realtime_handler("slow", lambda data: release.wait(5), 1, timeout=0.05)
    router.register_realtime_handler("slow", after.append)
    try:
        assert router.route("slow", "x") is True
    finally:
        release.set()
    assert after == ["x"]
    [slow, _] = router.get_handler_stats()["handlers"]
    assert slow["timeouts"] == 1


def test_an_event_nobody_handles_is_counted_and_logged_at_debug(
    spanhooks_logs: pytest.LogCaptureFixture,
) -> None:
    router = EventRouter("rt")
    assert router.route("nobody.listens", {}) is False
    assert router.route("nobody.listens", {}) is False
    stats = router.get_handler_stats()
    assert stats["unhandled"] == 2
    assert stats["events"] == {"nobody.listens": {"unhandled": 2}}
    assert "rt: no handler for event type 'nobody.listens'" in spanhooks_logs.text


def test_distinct_event_types_counted_are_bounded() -> None:
    router = EventRouter()
    for n in range(MAX_EVENT_TYPES + 10):
        router.route(f"type-{n}", None)
    events = router.get_handler_stats()["events"]
    assert len(events) == MAX_EVENT_TYPES + 1
    assert events["_other"] == {"unhandled": 10}


def test_each_routed_event_is_a_span_event_on_the_current_span(
    spanhooks_capture: Capture,
) -> None:
    router = EventRouter(tracer_provider=spanhooks_capture.provider)
    router.register_realtime_handler("session.created", lambda data: None)
    router.register_realtime_handler("session.created", lambda data: None)
    with spanhooks_capture.tracer.start_as_current_span("turn"):
        router.route("session.created", {})
        router.route("unknown", {})
    [span] = spanhooks_capture.spans()
    assert [dict(e.attributes or {}) for e in span.events if e.name == "router.event"] == [
        {"router.event_type": "session.created", "router.handlers": 2, "router.outcome": "handled"},
        {"router.event_type": "unknown", "router.handlers": 0, "router.outcome": "unhandled"},
    ]


def test_an_event_routed_outside_any_span_gets_a_span_of_its_own_that_handlers_run_in(
    spanhooks_capture: Capture,
) -> None:
    router = EventRouter(tracer_provider=spanhooks_capture.provider)
    inside: list[int] = []
    router.register_realtime_handler(
        "session.created",
        lambda data: inside.append(trace.get_current_span().get_span_context().span_id),
    )
    router.register_realtime_handler("session.created", lambda data: 1 / 0)
    router.register_middleware(lambda event_type, data: None if data == "drop" else data)
    router.route("session.created", {"text": "hello"})
    router.route("session.created", "drop")
    router.route("nobody.listens", {})
    handled, dropped, unhandled = spanhooks_capture.spans()
    assert [handled.name, dropped.name, unhandled.name] == [
        "route session.created",
        "route session.created",
        "route nobody.listens",
    ]
    assert dict(handled.attributes or {}) == {
        "router.name": "router",
        "router.event_type": "session.created",
        "router.handlers": 2,
        "router.outcome": "handled",
    }
    assert [e.name for e in handled.events] == ["router.event", "spanhooks.callback.error"]
    assert inside == [handled.context.span_id]
    assert dict(dropped.attributes or {})["router.outcome"] == "dropped"
    assert dict(unhandled.attributes or {})["router.outcome"] == "unhandled"
    assert not trace.get_current_span().is_recording()


async def test_async_routing_outside_any_span_also_gets_its_span(
    spanhooks_capture: Capture,
) -> None:
    router = EventRouter(tracer_provider=spanhooks_capture.provider)

    async def handler(data: Any) -> None:
        pass

    router.register_realtime_handler("response.done", handler)
    assert await router.route_async("response.done", {}) is True
    span = spanhooks_capture.span("route response.done")
    assert dict(span.attributes or {})["router.outcome"] == "handled"


def test_the_data_is_content_recorded_only_on_opt_in_and_redacted(
    spanhooks_capture: Capture,
) -> None:
    router = EventRouter(tracer_provider=spanhooks_capture.provider)
    router.register_realtime_handler("input.text", lambda data: None)
    previous = set_active_policy(AttributePolicy())
    try:
        router.route("input.text", {"text": "my words", "api_key": "sk-1"})
        set_active_policy(AttributePolicy(capture_content=True))
        router.route("input.text", {"text": "my words", "api_key": "sk-1"})
    finally:
        set_active_policy(previous)
    hidden, shown = (dict(s.events[0].attributes or {}) for s in spanhooks_capture.spans())
    assert "router.data" not in hidden
    assert json.loads(shown["router.data"]) == {"text": "my words", "api_key": "[REDACTED]"}


async def test_async_routing_awaits_handlers_in_priority_order() -> None:
    router = EventRouter()
    order: list[str] = []

    async def first(data: Any) -> None:
        await asyncio.sleep(0)
        order.append("first")

    router.register_realtime_handler("m", lambda data: order.append("second"), priority=1)
    router.register_realtime_handler("m", first, priority=2)
    assert await router.route_async("m", {}) is True
    assert order == ["first", "second"]


async def test_async_routing_can_run_handlers_concurrently() -> None:
    router = EventRouter()
    both = asyncio.Event()
    seen: list[str] = []

    async def waits(data: Any) -> None:
        seen.append("waits")
        await asyncio.wait_for(both.wait(), 2)
        seen.append("released")

    async def releases(data: Any) -> None:
        seen.append("releases")
        both.set()

    router.register_realtime_handler("m", waits, priority=10)
    router.register_realtime_handler("m", releases)
    assert await router.route_async("m", {}, concurrent=True) is True
    assert seen == ["waits", "releases", "released"]
    assert router.get_handler_stats()["handlers"][0]["timeouts"] == 0


async def test_async_middleware_is_awaited_by_route_async() -> None:
    router = EventRouter()
    seen: list[Any] = []

    async def enrich(event_type: str, data: Any) -> Any:
        await asyncio.sleep(0)
        return {**data, "enriched": True}

    router.register_middleware(enrich)
    router.register_realtime_handler("e", seen.append)
    assert await router.route_async("e", {"n": 1}) is True
    assert seen == [{"n": 1, "enriched": True}]
    with pytest.raises(RuntimeError, match="route_async"):
        router.route("e", {"n": 2})  # inside a running loop it could not be awaited
    assert len(seen) == 1


def test_async_middleware_also_works_from_sync_code_without_a_loop() -> None:
    router = EventRouter()
    seen: list[Any] = []

    async def enrich(event_type: str, data: Any) -> Any:
        return data + 1

    router.register_middleware(enrich)
    router.register_realtime_handler("e", seen.append)
    assert router.route("e", 1) is True
    assert seen == [2]


def test_unregister_removes_handlers_and_middleware() -> None:
    router = EventRouter()
    seen: list[Any] = []
    handler_id = router.register_realtime_handler("e", seen.append)
    middleware_id = router.register_middleware(lambda event_type, data: None)
    assert router.unregister_handler(middleware_id) is True
    assert router.route("e", 1) is True
    assert router.unregister_handler(handler_id) is True
    assert router.unregister_handler(handler_id) is False
    assert router.route("e", 2) is False
    assert seen == [1]


def test_bad_registrations_are_refused_at_once() -> None:
    router = EventRouter()
    with pytest.raises(ValueError, match="event_type"):
        router.register_realtime_handler("", print)
    with pytest.raises(TypeError, match="not callable"):
        router.register_realtime_handler("e", "print")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        router.register_middleware(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        router.register_realtime_handler("e", print, timeout=-1)
    assert router.get_handler_stats()["handlers"] == []
