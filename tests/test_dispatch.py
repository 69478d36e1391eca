"""The dispatch core: order, isolation, timeouts, async bridging, thread safety."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from spanhooks import CallbackEvent, CallbackManager, Dispatcher, DispatchMode, Priority
from spanhooks.testing import Capture


def test_higher_priority_runs_first_and_ties_keep_registration_order() -> None:
    manager = CallbackManager()
    order: list[str] = []
    manager.register("on_message", lambda **kw: order.append("normal-1"))
    manager.register("on_message", lambda **kw: order.append("low"), priority=Priority.LOW)
    manager.register("on_message", lambda **kw: order.append("high"), priority=Priority.HIGH)
    manager.register("on_message", lambda **kw: order.append("normal-2"))
    manager.register("on_message", lambda **kw: order.append("custom-150"), priority=150)
    manager.trigger("on_message", user_id="u", message="m", timestamp=0)
    assert order == ["custom-150", "high", "normal-1", "normal-2", "low"]


def test_a_class_callback_priority_attribute_is_honoured() -> None:
    manager = CallbackManager()
    order: list[str] = []

    class Late:
        priority = Priority.LOWEST

        def tool_start(self, tool_name: str, tool_args: Any) -> None:
            order.append("late")

    class Early:
        priority = Priority.HIGHEST

        def tool_start(self, tool_name: str, tool_args: Any) -> None:
            order.append("early")

    manager.register(Late())
    manager.register(Early())
    manager.emit(CallbackEvent.TOOL_START, "t", {})
    assert order == ["early", "late"]


def test_a_raising_callback_never_reaches_the_emitter_and_the_next_one_runs(
    spanhooks_logs: pytest.LogCaptureFixture,
) -> None:
    manager = CallbackManager()
    ran: list[str] = []

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("callback bug")

    manager.register("on_message", broken, priority=10)
    manager.register("on_message", lambda **kw: ran.append("next"))
    manager.trigger("on_message", user_id="u", message="m", timestamp=0)
    assert ran == ["next"]
    assert manager.stats()["callback_errors"] == 1
    assert manager.get_registered_callbacks()[0]["errors"] == 1
    assert "callback bug" in spanhooks_logs.text or "RuntimeError" in spanhooks_logs.text


def test_a_failing_callback_is_logged_without_flooding(
    spanhooks_logs: pytest.LogCaptureFixture,
) -> None:
    manager = CallbackManager()

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("again")

    manager.register("on_message", broken)
    for _ in range(1000):
        manager.trigger("on_message", user_id="u", message="m", timestamp=0)
    records = [r for r in spanhooks_logs.records if r.levelno >= logging.ERROR]
    assert manager.stats()["callback_errors"] == 1000
    assert 1 <= len(records) <= 5


def test_a_callback_error_is_recorded_on_the_span(spanhooks_capture: Capture) -> None:
    manager = spanhooks_capture.manager

    def broken(tool_name: str, tool_args: Any) -> None:
        raise ValueError("bad tool hook")

    manager.register(CallbackEvent.TOOL_START, broken)
    manager.emit(CallbackEvent.TOOL_START, "search", {})
    manager.emit(CallbackEvent.TOOL_END, "search", "ok")
    span = spanhooks_capture.span("execute_tool search")
    [event] = [e for e in span.events if e.name == "spanhooks.callback.error"]
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert span.status.status_code.name == "UNSET"  # the tool itself did not fail


def test_raise_errors_reraises_for_tests() -> None:
    manager = CallbackManager(raise_errors=True)

    def broken(**kwargs: Any) -> None:
        raise KeyError("surfaced")

    manager.register("on_message", broken)
    with pytest.raises(KeyError, match="surfaced"):
        manager.trigger("on_message", user_id="u", message="m", timestamp=0)


def test_base_exceptions_are_not_swallowed() -> None:
    manager = CallbackManager()

    def interrupt(**kwargs: Any) -> None:
        raise KeyboardInterrupt

    manager.register("on_message", interrupt)
    with pytest.raises(KeyboardInterrupt):
        manager.trigger("on_message", user_id="u", message="m", timestamp=0)


def test_a_hanging_sync_callback_is_abandoned_after_its_timeout() -> None:
    manager = CallbackManager()
    release = threading.Event()
    after: list[str] = []
    manager.register("on_message", lambda **kw: release.wait(5), timeout=0.1)
    manager.register("on_message", lambda **kw: after.append("ran"))
    started = time.perf_counter()
    manager.trigger("on_message", user_id="u", message="m", timestamp=0)
    elapsed = time.perf_counter() - started
    release.set()
    assert after == ["ran"]
    assert manager.stats()["callback_timeouts"] == 1
    assert elapsed < 0.1 + 1.0  # generous bound for a loaded 2-core machine; the point is "not 5 s"


def test_a_hanging_async_callback_times_out_from_sync_code() -> None:
    manager = CallbackManager()

    async def hang(**kwargs: Any) -> None:
        await asyncio.sleep(5)

    manager.register("on_message", hang, timeout=0.05)
    manager.trigger("on_message", user_id="u", message="m", timestamp=0)
    assert manager.stats()["callback_timeouts"] == 1


async def test_a_hanging_async_callback_times_out_when_awaited() -> None:
    manager = CallbackManager()
    after: list[str] = []

    async def hang(**kwargs: Any) -> None:
        await asyncio.sleep(5)

    manager.register("on_message", hang, timeout=0.05)
    manager.register("on_message", lambda **kw: after.append("ran"))
    await manager.emit_async("on_message", user_id="u", message="m", timestamp=0)
    assert after == ["ran"]
    assert manager.stats()["callback_timeouts"] == 1


def test_an_async_callback_emitted_from_sync_code_runs_to_completion() -> None:
    manager = CallbackManager()
    done: list[str] = []

    async def slow(tool_name: str, tool_args: Any) -> None:
        await asyncio.sleep(0.01)
        done.append(tool_name)

    manager.register(CallbackEvent.TOOL_START, slow)
    manager.emit(CallbackEvent.TOOL_START, "search", {})
    assert done == ["search"]


async def test_an_async_callback_emitted_synchronously_inside_a_loop_runs_as_a_task() -> None:
    manager = CallbackManager()
    done: list[str] = []

    async def slow(tool_name: str, tool_args: Any) -> None:
        await asyncio.sleep(0)
        done.append(tool_name)

    manager.register(CallbackEvent.TOOL_START, slow)
    manager.emit(CallbackEvent.TOOL_START, "search", {})
    await manager.drain(timeout=1)
    assert done == ["search"]


async def test_emit_async_awaits_sync_and_async_callbacks_in_priority_order() -> None:
    manager = CallbackManager()
    order: list[str] = []

    async def first(**kwargs: Any) -> None:
        await asyncio.sleep(0.01)
        order.append("async-high")

    manager.register("on_message", lambda **kw: order.append("sync-low"), priority=-1)
    manager.register("on_message", first, priority=1)
    await manager.emit_async("on_message", user_id="u", message="m", timestamp=0)
    assert order == ["async-high", "sync-low"]


async def test_concurrent_dispatch_runs_async_callbacks_at_the_same_time() -> None:
    manager = CallbackManager()
    both_running = asyncio.Event()
    arrived: list[str] = []

    async def waiter(**kwargs: Any) -> None:
        arrived.append("waiter")
        await asyncio.wait_for(both_running.wait(), 2)

    async def releaser(**kwargs: Any) -> None:
        arrived.append("releaser")
        both_running.set()

    manager.register("on_message", waiter)
    manager.register("on_message", releaser)
    await manager.emit_async("on_message", concurrent=True, user_id="u", message="m", timestamp=0)
    assert sorted(arrived) == ["releaser", "waiter"]
    assert manager.stats()["callback_errors"] == 0


def test_a_callback_that_emits_recursively_is_stopped_at_the_depth_limit() -> None:
    manager = CallbackManager()
    calls: list[int] = []

    def echo(user_id: str, message: str, timestamp: float) -> None:
        calls.append(1)
        manager.trigger("on_message", user_id=user_id, message=message, timestamp=timestamp)

    manager.register("on_message", echo)
    manager.trigger("on_message", user_id="u", message="m", timestamp=0)
    assert len(calls) == 16
    assert manager.stats()["dropped_dispatches"] == 1


def test_pipe_mode_threads_a_value_through_callbacks_and_none_drops_it() -> None:
    dispatcher: Dispatcher[str] = Dispatcher()
    dispatcher.add("upper", {"evt": lambda data: data.upper()}, priority=2)
    dispatcher.add("exclaim", {"evt": lambda data: data + "!"}, priority=1)
    assert (
        dispatcher.dispatch(dispatcher.routes("evt"), "evt", ("hi",), {}, mode=DispatchMode.PIPE)
        == "HI!"
    )
    dispatcher.add("drop", {"evt": lambda data: None}, priority=3)
    assert (
        dispatcher.dispatch(dispatcher.routes("evt"), "evt", ("hi",), {}, mode=DispatchMode.PIPE)
        is None
    )


def test_collect_mode_returns_results_in_priority_order() -> None:
    dispatcher: Dispatcher[str] = Dispatcher()
    dispatcher.add("a", {"q": lambda x: x + 1}, priority=1)
    dispatcher.add("b", {"q": lambda x: x * 10}, priority=2)
    assert dispatcher.dispatch(
        dispatcher.routes("q"), "q", (2,), {}, mode=DispatchMode.COLLECT
    ) == [20, 3]


def test_registering_and_unregistering_while_eight_threads_emit_is_safe() -> None:
    manager = CallbackManager()
    stop = threading.Event()
    errors: list[BaseException] = []
    emitted = [0] * 8

    def emitter(index: int) -> None:
        try:
            while not stop.is_set():
                manager.emit(CallbackEvent.RESPONSE, "text")
                emitted[index] += 1
        except BaseException as exc:  # the test fails on any escape, even a BaseException
            errors.append(exc)

    threads = [threading.Thread(target=emitter, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    counted: list[int] = []
    for _ in range(300):
        ids = [
            manager.register(CallbackEvent.RESPONSE, lambda text: counted.append(1))
            for _ in range(3)
        ]
        for callback_id in ids:
            assert manager.unregister(callback_id)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(count > 0 for count in emitted)
    assert manager.get_registered_callbacks() == []


def test_a_timeout_must_be_positive() -> None:
    manager = CallbackManager()
    with pytest.raises(ValueError, match="timeout"):
        manager.register("on_message", lambda **kw: None, timeout=0)
    with pytest.raises(TypeError, match="priority"):
        manager.register("on_message", lambda **kw: None, priority="high")  # type: ignore[arg-type]


def test_timed_callbacks_still_run_during_interpreter_shutdown(tmp_path: Path) -> None:
    script = tmp_path / "exit.py"
    script.write_text(
        "import atexit, spanhooks\n"
        "m = spanhooks.CallbackManager()\n"
        "m.register('on_message', lambda **kw: print('ran at exit'), timeout=5)\n"
        "atexit.register(lambda: m.trigger('on_message', user_id='u', message='m', timestamp=0))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ran at exit"
    assert "Traceback" not in done.stderr
