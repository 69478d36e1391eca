"""Polling manager: periodic runs, conditions, retries, per-task control, no pile-up."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

import spanhooks
from spanhooks.ops import PollingManager
from spanhooks.testing import Capture


@pytest.fixture
def polling(spanhooks_capture: Capture) -> Iterator[PollingManager]:
    manager = PollingManager(tracer_provider=spanhooks_capture.provider)
    yield manager
    manager.shutdown()


def wait_for(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_a_task_runs_repeatedly_and_each_run_is_a_span(
    polling: PollingManager, spanhooks_capture: Capture
) -> None:
    three = threading.Event()
    runs: list[int] = []

    def check() -> dict[str, str]:
        runs.append(1)
        if len(runs) >= 3:
            three.set()
        return {"status": "healthy"}

    polling.register_polling_task("db_health", check, interval=0.02)
    assert three.wait(5)
    wait_for(lambda: polling.get_task_status("db_health")["successes"] >= 3)
    assert any(span.name == "poll db_health" for span in spanhooks_capture.spans())


def test_a_task_registered_in_a_session_runs_in_it_as_a_trace_of_its_own(
    polling: PollingManager, spanhooks_capture: Capture
) -> None:
    ran = threading.Event()
    tracer = spanhooks_capture.provider.get_tracer("app")
    with spanhooks.session("ops-1", user_id="ops"), tracer.start_as_current_span("startup"):
        polling.register_polling_task("queue_depth", ran.set, interval=60)
    assert ran.wait(5)
    wait_for(lambda: spanhooks_capture.spans("poll queue_depth"))
    [run] = spanhooks_capture.spans("poll queue_depth")
    attributes = run.attributes or {}
    assert (attributes["session.id"], attributes["user.id"]) == ("ops-1", "ops")
    assert run.parent is None


def test_async_callbacks_run_to_completion(polling: PollingManager) -> None:
    done = threading.Event()

    async def probe() -> None:
        await asyncio.sleep(0)
        done.set()

    polling.register_polling_task("async_probe", probe, interval=0.05)
    assert done.wait(5)


def test_the_condition_skips_runs_while_false(polling: PollingManager) -> None:
    enabled = threading.Event()
    ran = threading.Event()
    polling.register_polling_task("gated", ran.set, interval=0.02, condition=enabled.is_set)
    wait_for(lambda: polling.get_task_status("gated")["skipped"] >= 2)
    assert not ran.is_set()
    enabled.set()
    assert ran.wait(5)


def test_a_failing_task_is_retried_with_backoff_and_counted(polling: PollingManager) -> None:
    attempts: list[float] = []

    def flaky() -> None:
        attempts.append(time.monotonic())
        raise ConnectionError("down")

    polling.register_polling_task("flaky", flaky, interval=10.0, max_retries=2, retry_delay=0.05)
    wait_for(lambda: polling.get_task_status("flaky")["failures"] >= 3)
    status = polling.get_task_status("flaky")
    assert status["failures"] >= 3 and status["consecutive_failures"] >= 3
    assert attempts[2] - attempts[1] >= attempts[1] - attempts[0]  # the delay doubles
    time.sleep(0.3)
    assert len(attempts) == 3  # retries exhausted: back to the 10 s interval


def test_a_slow_run_does_not_pile_up_runs(polling: PollingManager) -> None:
    concurrent = [0]
    overlaps: list[int] = []
    lock = threading.Lock()

    def slow() -> None:
        with lock:
            concurrent[0] += 1
            overlaps.append(concurrent[0])
        time.sleep(0.1)  # longer than the interval on purpose
        with lock:
            concurrent[0] -= 1

    polling.register_polling_task("slow", slow, interval=0.01)
    wait_for(lambda: polling.get_task_status("slow")["runs"] >= 3)
    assert max(overlaps) == 1


def test_tasks_can_be_paused_stopped_and_started(polling: PollingManager) -> None:
    runs: list[int] = []
    polling.register_polling_task("ctl", lambda: runs.append(1), interval=0.02)
    wait_for(lambda: len(runs) >= 1)
    polling.pause_task("ctl")
    wait_for(lambda: polling.get_task_status("ctl")["state"] == "paused")
    count = len(runs)
    time.sleep(0.1)
    assert len(runs) == count
    polling.start_task("ctl")
    wait_for(lambda: len(runs) > count)
    polling.stop_task("ctl")
    assert polling.get_all_tasks_status()["ctl"]["state"] in ("stopped", "running")


def test_bad_registrations_fail_clearly(polling: PollingManager) -> None:
    with pytest.raises(ValueError, match="interval"):
        polling.register_polling_task("x", lambda: None, interval=0)
    polling.register_polling_task("dup", lambda: None, interval=1)
    with pytest.raises(ValueError, match="already registered"):
        polling.register_polling_task("dup", lambda: None, interval=1)
    with pytest.raises(KeyError):
        polling.pause_task("missing")
