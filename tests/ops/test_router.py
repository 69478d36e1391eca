"""Event router: handlers by priority, middleware that transforms or drops, handler stats."""

from __future__ import annotations

import asyncio
from typing import Any

from spanhooks.ops import EventRouter


def test_handlers_run_by_priority() -> None:
    router = EventRouter()
    order: list[str] = []
    router.register_realtime_handler(
        "session.created", lambda data: order.append("secondary"), priority=50
    )
    router.register_realtime_handler(
        "session.created", lambda data: order.append("primary"), priority=100
    )
    assert router.route("session.created", {"id": 1}) is True
    assert order == ["primary", "secondary"]


def test_middleware_transforms_and_drops_events() -> None:
    router = EventRouter()
    seen: list[Any] = []
    router.register_realtime_handler("audio", seen.append)
    router.register_middleware(lambda event_type, data: {**data, "tagged": True}, priority=100)
    router.register_middleware(
        lambda event_type, data: None if data.get("noise") else data, priority=50
    )
    assert router.route("audio", {"chunk": 1}) is True
    assert router.route("audio", {"chunk": 2, "noise": True}) is False
    assert seen == [{"chunk": 1, "tagged": True}]
    assert router.get_handler_stats()["events"] == {"audio:handled": 1, "audio:dropped": 1}


def test_a_failing_middleware_is_skipped_not_fatal() -> None:
    router = EventRouter()
    seen: list[Any] = []

    def broken(event_type: str, data: Any) -> Any:
        raise RuntimeError("middleware bug")

    router.register_middleware(broken)
    router.register_realtime_handler("x", seen.append)
    assert router.route("x", 1) is True
    assert seen == [1]


def test_handler_stats_count_calls_errors_and_latency() -> None:
    router = EventRouter()

    def ok(data: Any) -> None:
        return None

    def broken(data: Any) -> None:
        raise ValueError("bad")

    router.register_realtime_handler("e", ok)
    router.register_realtime_handler("e", broken)
    for _ in range(3):
        router.route("e", {})
    stats = {h["name"].rsplit(".", 1)[-1]: h for h in router.get_handler_stats()["handlers"]}
    assert stats["ok"]["calls"] == 3 and stats["ok"]["errors"] == 0
    assert stats["broken"]["errors"] == 3
    assert stats["ok"]["avg_seconds"] >= 0 and stats["ok"]["event_type"] == "e"


def test_unhandled_events_are_counted() -> None:
    router = EventRouter()
    assert router.route("nobody.listens", {}) is False
    assert router.get_handler_stats()["unhandled"] == 1


async def test_async_routing_can_run_handlers_concurrently() -> None:
    router = EventRouter()
    both = asyncio.Event()
    seen: list[str] = []

    async def waits(data: Any) -> None:
        seen.append("waits")
        await asyncio.wait_for(both.wait(), 2)

    async def releases(data: Any) -> None:
        seen.append("releases")
        both.set()

    router.register_realtime_handler("m", waits)
    router.register_realtime_handler("m", releases)
    assert await router.route_async("m", {}, concurrent=True) is True
    assert sorted(seen) == ["releases", "waits"]
