"""Decorated generators and async generators: the span covers the whole stream and ends right
however the stream ends, with no "Failed to detach context" error.

Each early-exit shape here is one reported against OpenLLMetry, OpenInference, Logfire or agent
frameworks: ``break``, ``return`` from the loop, an exception in the consumer, an exception in
the stream, cancellation of the consuming task, garbage collection of an unfinished stream, and
a stream resumed in another thread or task. The first test shows that the check catches the
error when a span is held open across ``yield`` the naive way.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

import spanhooks
from spanhooks import GenAIEvent
from spanhooks.testing import Capture, capture

TTFC = "gen_ai.response.time_to_first_chunk"
CLOSED_EARLY = "spanhooks.stream.closed_early"
CHUNKS = "spanhooks.stream.chunks"


@pytest.fixture
def cap() -> Iterator[Capture]:
    with capture() as c:
        yield c
    assert not trace.get_current_span().is_recording(), "a stream left its span current"


@pytest.fixture
def detach_errors(caplog: pytest.LogCaptureFixture) -> Any:
    """The "Failed to detach context" records OpenTelemetry logged during the test."""
    caplog.set_level(logging.ERROR, logger="opentelemetry.context")

    def records() -> list[str]:
        return [r.getMessage() for r in caplog.records if "detach" in r.getMessage()]

    return records


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _numbers(cap: Capture, n: int = 3, name: str = "numbers") -> Any:
    @spanhooks.instrument(name=name, manager=cap.manager)
    def numbers() -> Iterator[int]:
        yield from range(n)

    return numbers


def _anumbers(cap: Capture, n: int = 3, name: str = "anumbers") -> Any:
    @spanhooks.instrument(name=name, manager=cap.manager)
    async def anumbers() -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    return anumbers


def test_the_check_catches_a_span_held_open_across_yield_the_naive_way(
    cap: Capture, detach_errors: Any
) -> None:
    def naive() -> Iterator[int]:
        with cap.tracer.start_as_current_span("naive"):
            yield 1
            yield 2

    stream = naive()
    contextvars.copy_context().run(next, stream)  # started in one context...
    contextvars.copy_context().run(stream.close)  # ...closed from another
    assert detach_errors() == ["Failed to detach context"]


# -- generators ----------------------------------------------------------------------------


def test_an_exhausted_stream_ends_its_span_with_chunks_and_time_to_first_chunk(
    cap: Capture, detach_errors: Any
) -> None:
    assert list(_numbers(cap)()) == [0, 1, 2]
    span = cap.span("numbers")
    attributes = _attributes(span)
    assert span.status.status_code is StatusCode.UNSET
    assert attributes[CHUNKS] == 3
    assert CLOSED_EARLY not in attributes
    assert span.end_time is not None and span.start_time is not None
    assert 0 < attributes[TTFC] <= (span.end_time - span.start_time) / 1e9
    assert [event.name for event in span.events] == ["first_chunk"]
    assert detach_errors() == []


def test_a_generators_return_value_passes_through(cap: Capture) -> None:
    @spanhooks.instrument(manager=cap.manager)
    def counted() -> Iterator[int]:
        yield 1
        return 42

    def consume() -> Iterator[int]:
        result = yield from counted()
        assert result == 42

    assert list(consume()) == [1]


def test_break_ends_the_span_as_closed_early(cap: Capture, detach_errors: Any) -> None:
    for item in _numbers(cap, 10)():
        if item == 1:
            break
    gc.collect()
    span = cap.span("numbers")
    assert span.status.status_code is StatusCode.UNSET
    assert _attributes(span)[CLOSED_EARLY] is True
    assert _attributes(span)[CHUNKS] == 2
    assert detach_errors() == []


def test_returning_from_the_loop_ends_the_span(cap: Capture, detach_errors: Any) -> None:
    numbers = _numbers(cap, 10)

    def first() -> int:
        for item in numbers():
            return item
        return -1

    assert first() == 0
    gc.collect()
    assert _attributes(cap.span("numbers"))[CLOSED_EARLY] is True
    assert detach_errors() == []


def test_an_exception_in_the_consumer_closes_the_stream_without_blaming_it(
    cap: Capture, detach_errors: Any
) -> None:
    with pytest.raises(RuntimeError):
        for _ in _numbers(cap, 10)():
            raise RuntimeError("consumer failed")
    gc.collect()
    span = cap.span("numbers")
    assert span.status.status_code is StatusCode.UNSET
    assert _attributes(span)[CLOSED_EARLY] is True
    assert detach_errors() == []


def test_an_exception_in_the_stream_is_recorded_and_reraised(
    cap: Capture, detach_errors: Any
) -> None:
    error = ValueError("stream broke")

    @spanhooks.instrument(name="broken", manager=cap.manager)
    def broken() -> Iterator[int]:
        yield 1
        raise error

    with pytest.raises(ValueError) as raised:
        list(broken())
    assert raised.value is error
    span = cap.span("broken")
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["first_chunk", "exception"]
    assert detach_errors() == []


def test_an_unfinished_stream_collected_in_another_thread_ends_its_span(
    cap: Capture, detach_errors: Any
) -> None:
    stream = _numbers(cap, 10)()
    next(stream)
    holder = [stream]
    del stream

    def drop() -> None:
        holder.clear()
        gc.collect()

    worker = threading.Thread(target=drop)
    worker.start()
    worker.join()
    assert _attributes(cap.span("numbers"))[CLOSED_EARLY] is True
    assert detach_errors() == []


def test_a_stream_resumed_in_another_thread_finishes_cleanly(
    cap: Capture, detach_errors: Any
) -> None:
    stream = _numbers(cap, 4)()
    items = [next(stream)]
    worker = threading.Thread(target=lambda: items.extend(stream))
    worker.start()
    worker.join()
    assert items == [0, 1, 2, 3]
    assert _attributes(cap.span("numbers"))[CHUNKS] == 4
    assert detach_errors() == []


def test_the_span_is_current_only_while_the_streams_own_code_runs(cap: Capture) -> None:
    inside: list[bool] = []

    @spanhooks.instrument(name="observed", manager=cap.manager)
    def observed() -> Iterator[int]:
        for i in range(2):
            inside.append(trace.get_current_span().is_recording())
            yield i

    for _ in observed():
        assert not trace.get_current_span().is_recording()
    assert inside == [True, True]


def test_calls_made_by_a_stream_nest_under_its_span(cap: Capture) -> None:
    @spanhooks.tool(manager=cap.manager)
    def fetch(i: int) -> int:
        return i

    @spanhooks.instrument(name="pipeline", manager=cap.manager)
    def pipeline() -> Iterator[int]:
        for i in range(2):
            yield fetch(i)

    assert list(pipeline()) == [0, 1]
    [root] = cap.tree()
    assert root["name"] == "pipeline"
    assert [child["name"] for child in root["children"]] == ["execute_tool fetch"] * 2


def test_send_and_throw_reach_the_stream(cap: Capture) -> None:
    @spanhooks.instrument(name="echo", manager=cap.manager)
    def echo() -> Iterator[Any]:
        received = None
        while True:
            try:
                received = yield received
            except KeyError:
                received = "recovered"

    stream = echo()
    next(stream)
    assert stream.send("hello") == "hello"
    assert stream.throw(KeyError("k")) == "recovered"
    stream.close()
    assert _attributes(cap.span("echo"))[CLOSED_EARLY] is True


def test_a_streaming_llm_call_reads_usage_from_its_last_chunk(cap: Capture) -> None:
    @spanhooks.llm(model="gpt-4o", manager=cap.manager)
    def stream_chat(prompt: str) -> Iterator[dict[str, Any]]:
        yield {"choices": [{"delta": {"content": "Hel"}}]}
        yield {
            "model": "gpt-4o-2024",
            "choices": [{"finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        }

    assert len(list(stream_chat("hi"))) == 2
    attributes = _attributes(cap.span("chat gpt-4o"))
    assert attributes["gen_ai.usage.input_tokens"] == 3
    assert attributes["gen_ai.usage.output_tokens"] == 2
    assert attributes[TTFC] > 0


def test_first_chunk_reaches_callbacks_once(cap: Capture) -> None:
    seen: list[tuple[str, float]] = []
    cap.manager.register(GenAIEvent.FIRST_CHUNK, lambda name, seconds: seen.append((name, seconds)))
    list(_numbers(cap, 5)())
    assert len(seen) == 1 and seen[0][0] == "numbers" and seen[0][1] > 0


# -- async generators --------------------------------------------------------------------


async def test_an_exhausted_async_stream_ends_its_span(cap: Capture, detach_errors: Any) -> None:
    assert [i async for i in _anumbers(cap)()] == [0, 1, 2]
    span = cap.span("anumbers")
    assert span.status.status_code is StatusCode.UNSET
    assert _attributes(span)[CHUNKS] == 3
    assert _attributes(span)[TTFC] > 0
    assert detach_errors() == []


async def test_break_then_aclose_ends_the_async_span_as_closed_early(
    cap: Capture, detach_errors: Any
) -> None:
    stream = _anumbers(cap, 10)()
    async for item in stream:
        if item == 1:
            break
    await stream.aclose()
    span = cap.span("anumbers")
    assert span.status.status_code is StatusCode.UNSET
    assert _attributes(span)[CLOSED_EARLY] is True
    assert detach_errors() == []


async def test_an_abandoned_async_stream_is_finalised_by_the_loop_without_errors(
    cap: Capture, detach_errors: Any
) -> None:
    async def consume() -> None:
        async for item in _anumbers(cap, 10)():
            if item == 1:
                break  # no aclose(): the event loop's finaliser closes it, in a task of its own

    await consume()
    gc.collect()
    for _ in range(5):
        await asyncio.sleep(0)
    assert _attributes(cap.span("anumbers"))[CLOSED_EARLY] is True
    assert detach_errors() == []


async def test_cancelling_the_consuming_task_ends_the_span_as_an_error(
    cap: Capture, detach_errors: Any
) -> None:
    started = asyncio.Event()

    @spanhooks.instrument(name="slow", manager=cap.manager)
    async def slow() -> AsyncIterator[int]:
        yield 0
        started.set()
        await asyncio.sleep(3600)
        yield 1

    async def consume() -> None:
        async for _ in slow():
            pass

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    span = cap.span("slow")
    assert span.status.status_code is StatusCode.ERROR
    assert _attributes(span)["error.type"] == "asyncio.exceptions.CancelledError"
    assert detach_errors() == []


async def test_an_exception_in_an_async_stream_is_recorded_and_reraised(
    cap: Capture, detach_errors: Any
) -> None:
    @spanhooks.instrument(name="abroken", manager=cap.manager)
    async def abroken() -> AsyncIterator[int]:
        yield 1
        raise ValueError("broke")

    with pytest.raises(ValueError, match="broke"):
        async for _ in abroken():
            pass
    assert cap.span("abroken").status.status_code is StatusCode.ERROR
    assert detach_errors() == []


async def test_an_async_stream_resumed_in_another_task_finishes_cleanly(
    cap: Capture, detach_errors: Any
) -> None:
    stream = _anumbers(cap, 4)()
    first = await stream.__anext__()

    async def rest() -> list[int]:
        return [i async for i in stream]

    assert [first, *await asyncio.create_task(rest())] == [0, 1, 2, 3]
    assert _attributes(cap.span("anumbers"))[CHUNKS] == 4
    assert detach_errors() == []


async def test_athrow_reaches_the_async_stream(cap: Capture) -> None:
    @spanhooks.instrument(name="aecho", manager=cap.manager)
    async def aecho() -> AsyncIterator[str]:
        try:
            yield "first"
        except KeyError:
            yield "recovered"

    stream = aecho()
    assert await stream.__anext__() == "first"
    assert await stream.athrow(KeyError("k")) == "recovered"
    await stream.aclose()
    assert _attributes(cap.span("aecho"))[CLOSED_EARLY] is True


async def test_concurrent_streams_keep_their_own_spans(cap: Capture) -> None:
    @spanhooks.agent(manager=cap.manager)
    async def worker(n: int) -> int:
        return sum([i async for i in _anumbers(cap, 3, name=f"stream{n}")()])

    assert await asyncio.gather(*(worker(n) for n in range(20))) == [3] * 20
    roots = cap.tree()
    assert len(roots) == 20
    for root in roots:
        assert [child["name"] for child in root["children"]] == [
            root["children"][0]["name"]
        ] and root["children"][0]["name"].startswith("stream")
