"""Callback faults: callbacks and span processors that raise, hang, crawl or emit recursively.

Each fault stays inside the callback: the emitter gets control back (a hung callback within
its timeout plus 50 ms), sees no exception, and the fault is counted on /metrics. Nothing
deadlocks, recursion is bounded, and a processor raising in ``on_end`` neither replaces the
application's own exception nor keeps the span from the next processor.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client.registry import CollectorRegistry

import spanhooks
from spanhooks import CallbackManager
from spanhooks.callbacks.dispatch import MAX_DEPTH
from spanhooks.callbacks.processors import IsolatedSpanProcessor
from spanhooks.callbacks.routes import callable_name
from spanhooks.metrics.families import install_collector

from ._proxy import FaultProxy, Sink
from .conftest import Pipeline, produce

HUNG_MARGIN = 0.05
"""The stated bound: a hung callback returns control within its timeout plus 50 ms."""

TIMEOUT = 0.2


def message(manager: CallbackManager) -> float:
    """Trigger one Thea ``on_message``; the seconds until control came back."""
    started = time.perf_counter()
    manager.trigger("on_message", user_id="u", message="m", timestamp=0.0)
    return time.perf_counter() - started


def observed(manager: CallbackManager) -> CollectorRegistry:
    registry = CollectorRegistry()
    install_collector(registry)
    manager.enable_metrics()
    return registry


def sample(registry: CollectorRegistry, family: str, callback: object) -> float | None:
    return registry.get_sample_value(family, {"callback": callable_name(callback)})


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """What hung callbacks wait on; opened after the test so the shared workers come back."""
    event = threading.Event()
    yield event
    event.set()


def test_a_raising_callback_is_isolated_counted_and_the_next_one_still_runs() -> None:
    manager = CallbackManager()
    registry = observed(manager)
    seen: list[str] = []

    def raising_on_message(**_: Any) -> None:
        raise RuntimeError("callback bug")

    manager.register("on_message", raising_on_message)
    manager.register("on_message", lambda **_: seen.append("next"))
    message(manager)
    assert seen == ["next"]
    assert sample(registry, "spanhooks_callback_errors_total", raising_on_message) == 1


def test_a_hung_sync_callback_returns_control_within_its_timeout_plus_50ms(
    gate: threading.Event,
) -> None:
    manager = CallbackManager()
    registry = observed(manager)

    def hung_sync(**_: Any) -> None:
        gate.wait()

    manager.register("on_message", hung_sync, timeout=TIMEOUT)
    assert message(manager) <= TIMEOUT + HUNG_MARGIN
    assert sample(registry, "spanhooks_callback_timeouts_total", hung_sync) == 1


def test_a_hung_async_callback_from_sync_code_returns_within_its_timeout_plus_50ms() -> None:
    manager = CallbackManager()
    registry = observed(manager)

    async def hung_async(**_: Any) -> None:
        await asyncio.Event().wait()

    manager.register("on_message", hung_async, timeout=TIMEOUT)
    assert message(manager) <= TIMEOUT + HUNG_MARGIN
    assert sample(registry, "spanhooks_callback_timeouts_total", hung_async) == 1


async def test_a_hung_async_callback_awaited_returns_within_its_timeout_plus_50ms() -> None:
    manager = CallbackManager()
    registry = observed(manager)

    async def hung_awaited(**_: Any) -> None:
        await asyncio.Event().wait()

    manager.register("on_message", hung_awaited, timeout=TIMEOUT)
    started = time.perf_counter()
    await manager.emit_async("on_message", user_id="u", message="m", timestamp=0.0)
    assert time.perf_counter() - started <= TIMEOUT + HUNG_MARGIN
    assert sample(registry, "spanhooks_callback_timeouts_total", hung_awaited) == 1


def test_more_hung_callbacks_than_workers_each_return_within_their_timeout(
    gate: threading.Event,
) -> None:
    manager = CallbackManager()

    def hung_many(**_: Any) -> None:
        gate.wait()

    manager.register("on_message", hung_many, timeout=TIMEOUT)
    workers = int(os.environ.get("SPANHOOKS_CALLBACK_WORKERS", "8"))
    waits = [message(manager) for _ in range(workers + 2)]
    assert max(waits) <= TIMEOUT + HUNG_MARGIN
    assert manager.stats()["callback_timeouts"] == workers + 2


def test_a_very_slow_callback_is_left_behind_at_its_timeout_and_the_next_still_runs() -> None:
    manager = CallbackManager()
    seen: list[str] = []
    finished = threading.Event()

    def slow(**_: Any) -> None:
        time.sleep(0.5)
        finished.set()

    manager.register("on_message", slow, timeout=0.1, priority=1)
    manager.register("on_message", lambda **_: seen.append("next"))
    assert message(manager) <= 0.1 + HUNG_MARGIN
    assert seen == ["next"]
    assert finished.wait(5)  # it still runs to completion, off the emitter's thread
    assert manager.stats() | {"callback_timeouts": 1} == manager.stats()


def test_a_callback_that_emits_its_own_event_stops_at_the_depth_limit_and_is_counted() -> None:
    manager = CallbackManager()
    calls: list[int] = []

    def echo(**kwargs: Any) -> None:
        calls.append(1)
        manager.trigger("on_message", **kwargs)

    manager.register("on_message", echo)
    message(manager)
    assert len(calls) == MAX_DEPTH
    assert manager.stats()["dropped_dispatches"] == 1


def test_a_timed_callback_that_emits_recursively_cannot_exhaust_the_worker_pool() -> None:
    manager = CallbackManager()
    calls: list[int] = []

    def timed_echo(**kwargs: Any) -> None:
        calls.append(1)
        manager.trigger("on_message", **kwargs)

    manager.register("on_message", timed_echo, timeout=TIMEOUT)
    assert message(manager) <= TIMEOUT + HUNG_MARGIN
    assert len(calls) == MAX_DEPTH  # deeper than the pool has workers, none waiting for one
    assert manager.stats()["callback_timeouts"] == 0


def test_a_hung_callback_does_not_keep_the_process_from_exiting(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import threading
            import spanhooks
            manager = spanhooks.CallbackManager()
            manager.register("on_message", lambda **_: threading.Event().wait(), timeout=0.1)
            manager.trigger("on_message", user_id="u", message="m", timestamp=0.0)
            print("returned", flush=True)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=30
    )
    assert (done.returncode, done.stdout.strip()) == (0, "returned"), done.stderr


class RaisingProcessor(SpanProcessor):
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        raise RuntimeError("processor bug in on_start")

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("processor bug in on_end")


class RecordingProcessor(SpanProcessor):
    def __init__(self) -> None:
        self.ended: list[str] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span.name)


def raise_inside_a_span(provider: Any) -> None:
    with provider.get_tracer("app").start_as_current_span("user work"):
        raise ValueError("the application's own error")


def test_a_processor_raising_in_on_end_keeps_the_users_exception_and_feeds_the_next(
    pipeline: Pipeline,
) -> None:
    recording = RecordingProcessor()
    telemetry = pipeline(jsonl=False, span_processors=[RaisingProcessor(), recording])
    with pytest.raises(ValueError, match="the application's own error"):
        raise_inside_a_span(telemetry.tracer_provider)
    assert recording.ended == ["user work"]
    (isolated,) = [
        p
        for p in telemetry.processors
        if isinstance(p, IsolatedSpanProcessor) and isinstance(p.inner, RaisingProcessor)
    ]
    assert isolated.errors == 2  # on_start and on_end, each counted and logged


def test_a_processor_added_later_is_isolated_the_same_way(pipeline: Pipeline) -> None:
    telemetry = pipeline(jsonl=False)
    recording = RecordingProcessor()
    spanhooks.add_span_processor(RaisingProcessor())
    spanhooks.add_span_processor(recording)
    with pytest.raises(ValueError, match="the application's own error"):
        raise_inside_a_span(telemetry.tracer_provider)
    assert recording.ended == ["user work"]


def test_a_span_callback_raising_on_end_keeps_the_users_exception(pipeline: Pipeline) -> None:
    recording = RecordingProcessor()
    telemetry = pipeline(jsonl=False, span_processors=[recording])
    registry = observed(telemetry.manager)

    def raising_on_span(span: ReadableSpan) -> None:
        raise RuntimeError("span callback bug")

    telemetry.manager.on_span(raising_on_span)
    with pytest.raises(ValueError, match="the application's own error"):
        raise_inside_a_span(telemetry.tracer_provider)
    assert recording.ended == ["user work"]
    assert sample(registry, "spanhooks_callback_errors_total", raising_on_span) == 1


def test_a_users_own_batch_processor_before_a_hanging_collector_keeps_flush_and_shutdown_bounds(
    pipeline: Pipeline, sink_and_proxy: tuple[Sink, FaultProxy]
) -> None:
    _, proxy = sink_and_proxy
    proxy.set_mode("hang")
    # The SDK's processor ignores its flush timeout and waits up to 30 s at shutdown.
    theirs = BatchSpanProcessor(OTLPSpanExporter(f"{proxy.endpoint}/v1/traces", timeout=30))
    telemetry = pipeline(jsonl=False, span_processors=[theirs], shutdown_timeout=0.5)
    produce(telemetry, 5)
    started = time.monotonic()
    assert not telemetry.force_flush(300)
    assert time.monotonic() - started < 0.3 + 0.1
    started = time.monotonic()
    telemetry.shutdown()
    assert time.monotonic() - started < 0.5 + 0.1
