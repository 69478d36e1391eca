"""Resource manager: priority then LIFO cleanup, isolation, context managers, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from spanhooks.ops import CleanupPriority, ResourceManager, ResourceType
from spanhooks.testing import Capture


@pytest.fixture
def resources(spanhooks_capture: Capture) -> ResourceManager:
    return ResourceManager(tracer_provider=spanhooks_capture.provider, handle_exit=False)


def test_cleanups_run_by_priority_then_newest_first(resources: ResourceManager) -> None:
    order: list[str] = []
    resources.register_cleanup(lambda: order.append("low"), ResourceType.FILE, CleanupPriority.LOW)
    resources.register_cleanup(
        lambda: order.append("medium-old"), ResourceType.FILE, CleanupPriority.MEDIUM
    )
    resources.register_cleanup(
        lambda: order.append("medium-new"), ResourceType.FILE, CleanupPriority.MEDIUM
    )
    resources.register_cleanup(
        lambda: order.append("critical"), ResourceType.WEBSOCKET, CleanupPriority.CRITICAL
    )
    assert resources.cleanup_all() == {"succeeded": 4, "failed": 0}
    assert order == ["critical", "medium-new", "medium-old", "low"]
    assert resources.cleanup_all() == {"succeeded": 0, "failed": 0}  # each runs once


def test_a_failing_cleanup_does_not_stop_the_others(
    resources: ResourceManager, spanhooks_capture: Capture
) -> None:
    ran: list[str] = []

    def broken() -> None:
        raise OSError("already closed")

    resources.register_cleanup(lambda: ran.append("after"), ResourceType.FILE, CleanupPriority.LOW)
    resources.register_cleanup(
        broken, ResourceType.WEBSOCKET, CleanupPriority.CRITICAL, "main socket"
    )
    assert resources.cleanup_all() == {"succeeded": 1, "failed": 1}
    assert ran == ["after"]
    stats = resources.get_resource_stats()
    assert stats["completed"] == {"websocket:failure": 1, "file:success": 1}
    failed = spanhooks_capture.span("cleanup websocket")
    assert failed.status.status_code.name == "ERROR"


def test_managed_resource_cleans_up_on_error(resources: ResourceManager) -> None:
    closed: list[str] = []
    with (
        pytest.raises(ValueError),
        resources.managed_resource("ws", lambda: closed.append("ws"), ResourceType.WEBSOCKET),
    ):
        raise ValueError("handler failed")
    assert closed == ["ws"]
    assert resources.get_resource_stats()["pending"] == 0


async def test_managed_resource_async_awaits_an_async_cleanup(resources: ResourceManager) -> None:
    closed: list[str] = []

    async def close() -> None:
        closed.append("closed")

    async with resources.managed_resource_async("conn", close, ResourceType.NETWORK) as conn:
        assert conn == "conn"
    assert closed == ["closed"]


async def test_async_with_managed_resource_runs_a_sync_cleanup_off_the_loop(
    spanhooks_capture: Capture,
) -> None:
    resources = ResourceManager(
        max_workers=2, tracer_provider=spanhooks_capture.provider, handle_exit=False
    )
    loop_thread = threading.get_ident()
    closed_on: list[int] = []
    with spanhooks_capture.tracer.start_as_current_span("call"):
        async with resources.managed_resource(
            "ws",
            lambda: closed_on.append(threading.get_ident()),
            ResourceType.WEBSOCKET,
            CleanupPriority.HIGH,
        ) as ws:
            assert ws == "ws"
            assert resources.get_resource_stats()["pending"] == 1
    assert len(closed_on) == 1 and closed_on != [loop_thread]
    assert resources.get_resource_stats()["pending"] == 0
    call, cleanup = spanhooks_capture.span("call"), spanhooks_capture.span("cleanup websocket")
    assert cleanup.parent is not None and cleanup.parent.span_id == call.context.span_id
    attributes = dict(cleanup.attributes or {})
    assert attributes["spanhooks.cleanup.reason"] == "managed"
    assert attributes["spanhooks.cleanup.priority"] == CleanupPriority.HIGH
    assert attributes["spanhooks.cleanup.resource_type"] == "websocket"
    assert isinstance(attributes["spanhooks.cleanup.id"], int)


def test_the_thread_pool_size_is_an_option_checked_at_once() -> None:
    assert ResourceManager(max_workers=8, handle_exit=False).max_workers == 8
    with pytest.raises(ValueError, match="max_workers"):
        ResourceManager(max_workers=0, handle_exit=False)


def test_sigterm_runs_cleanups_then_dies_of_sigterm(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, signal, sys, time
            from spanhooks.ops import register_cleanup
            register_cleanup(lambda: open({str(marker)!r}, "w").write("done"), "file", 100, "marker")
            print("ready", flush=True)
            time.sleep(30)
            """
        )
    )
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == -signal.SIGTERM
    assert marker.read_text() == "done"


def test_unknown_resource_types_are_rejected(resources: ResourceManager) -> None:
    with pytest.raises(ValueError):
        resources.register_cleanup(lambda: None, "spaceship")
    with pytest.raises(TypeError):
        resources.register_cleanup("not callable")  # type: ignore[arg-type]
    assert os.getpid() > 0
