"""Parent/child links across asyncio tasks, threads, forked children and subprocesses."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

import spanhooks
from spanhooks import CallbackEvent, ContextThreadPoolExecutor, propagate
from spanhooks.testing import Capture


async def test_fifty_concurrent_tasks_each_keep_their_own_parent(
    spanhooks_capture: Capture,
) -> None:
    manager = spanhooks_capture.manager

    async def agent(index: int) -> None:
        manager.emit(CallbackEvent.TURN_START, SimpleNamespace(display_name=f"agent{index}"))
        await asyncio.sleep(0.001 * (index % 5))
        manager.emit(CallbackEvent.TOOL_START, f"tool{index}", {})
        await asyncio.sleep(0.001 * (index % 3))
        manager.emit(CallbackEvent.TOOL_END, f"tool{index}", "ok")
        manager.emit(CallbackEvent.TURN_END, None, None, [])

    await asyncio.gather(*(agent(i) for i in range(50)))
    trees = spanhooks_capture.tree()
    assert len(trees) == 50
    for tree in trees:
        index = tree["name"].removeprefix("invoke_agent agent")
        assert [child["name"] for child in tree["children"]] == [f"execute_tool tool{index}"]


def test_the_context_executor_runs_work_under_the_submitting_span(
    spanhooks_capture: Capture,
) -> None:
    manager = spanhooks_capture.manager

    def tool(name: str) -> None:
        manager.emit(CallbackEvent.TOOL_START, name, {})
        manager.emit(CallbackEvent.TOOL_END, name, "ok")

    manager.emit(CallbackEvent.TURN_START, SimpleNamespace(display_name="pool"))
    with ContextThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(tool, [f"t{i}" for i in range(8)]))
    manager.emit(CallbackEvent.TURN_END, None, None, [])
    [tree] = spanhooks_capture.tree()
    assert sorted(child["name"] for child in tree["children"]) == [
        f"execute_tool t{i}" for i in range(8)
    ]


def test_a_plain_executor_loses_the_parent_unless_the_work_is_propagated(
    spanhooks_capture: Capture,
) -> None:
    manager = spanhooks_capture.manager

    def tool(name: str) -> None:
        manager.emit(CallbackEvent.TOOL_START, name, {})
        manager.emit(CallbackEvent.TOOL_END, name, "ok")

    manager.emit(CallbackEvent.TURN_START, SimpleNamespace(display_name="pool"))
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        pool.submit(tool, "lost").result()
        pool.submit(propagate(tool), "kept").result()
    thread = threading.Thread(target=propagate(tool), args=("thread",))
    thread.start()
    thread.join()
    manager.emit(CallbackEvent.TURN_END, None, None, [])
    roots = {tree["name"]: tree for tree in spanhooks_capture.tree()}
    assert "execute_tool lost" in roots  # the standard executor starts a new trace
    assert [c["name"] for c in roots["invoke_agent pool"]["children"]] == [
        "execute_tool kept",
        "execute_tool thread",
    ]


def _run_script(
    tmp_path: Path, body: str, env: dict[str, str] | None = None
) -> list[dict[str, object]]:
    trace_file = tmp_path / "trace.jsonl"
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    full_env = {**(env or os.environ), "SPANHOOKS_JSONL_PATH": str(trace_file)}
    full_env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    done = subprocess.run(
        [sys.executable, str(script)], env=full_env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in trace_file.read_text().splitlines()]


def _by_name(records: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {record["name"]: record for record in records}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_a_forked_child_continues_the_trace_and_inherits_callbacks(tmp_path: Path) -> None:
    marker = tmp_path / "child-callback"
    records = _run_script(
        tmp_path,
        f"""
        import os, sys
        from types import SimpleNamespace
        import spanhooks
        from spanhooks import CallbackEvent

        spanhooks.setup()
        spanhooks.register(CallbackEvent.TOOL_START, lambda tool_name, tool_args: open({str(marker)!r}, "a").write(f"{{os.getpid()}} {{tool_name}}\\n"))
        spanhooks.emit(CallbackEvent.TURN_START, SimpleNamespace(display_name="parent"))
        pid = os.fork()
        if pid == 0:
            spanhooks.emit(CallbackEvent.TOOL_START, "in_child", {{}})
            spanhooks.emit(CallbackEvent.TOOL_END, "in_child", "ok")
            spanhooks.shutdown()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
        spanhooks.emit(CallbackEvent.TURN_END, None, None, [])
        """,
    )
    spans = _by_name(records)
    parent, child = spans["invoke_agent parent"], spans["execute_tool in_child"]
    assert child["trace_id"] == parent["trace_id"]
    assert child["parent_span_id"] == parent["span_id"]
    assert "in_child" in marker.read_text()


def test_a_subprocess_continues_the_trace_through_traceparent(tmp_path: Path) -> None:
    child_script = tmp_path / "child.py"
    child_script.write_text(
        textwrap.dedent(
            """
            import spanhooks
            from spanhooks import CallbackEvent
            spanhooks.setup()
            spanhooks.emit(CallbackEvent.TOOL_START, "subprocess_tool", {})
            spanhooks.emit(CallbackEvent.TOOL_END, "subprocess_tool", "ok")
            """
        )
    )
    records = _run_script(
        tmp_path,
        f"""
        import subprocess, sys
        from types import SimpleNamespace
        import spanhooks
        from spanhooks import CallbackEvent

        spanhooks.setup()
        spanhooks.emit(CallbackEvent.TURN_START, SimpleNamespace(display_name="launcher"))
        subprocess.run([sys.executable, {str(child_script)!r}], env=spanhooks.child_env(), check=True)
        spanhooks.emit(CallbackEvent.TURN_END, None, None, [])
        """,
    )
    spans = _by_name(records)
    parent, child = spans["invoke_agent launcher"], spans["execute_tool subprocess_tool"]
    assert child["trace_id"] == parent["trace_id"]
    assert child["parent_span_id"] == parent["span_id"]


def test_child_env_carries_no_traceparent_when_no_span_is_active() -> None:
    env = spanhooks.child_env({"PATH": "/bin", "TRACEPARENT": "stale"})
    assert env == {"PATH": "/bin"}


@pytest.mark.parametrize("start_method", ["spawn", "fork"])
def test_multiprocessing_children_continue_the_trace_and_export_their_spans(
    tmp_path: Path, start_method: str
) -> None:
    records = _run_script(
        tmp_path,
        f"""
        import multiprocessing
        from types import SimpleNamespace
        import spanhooks
        from spanhooks import CallbackEvent

        def work(index):
            spanhooks.emit(CallbackEvent.TOOL_START, f"worker{{index}}", {{}})
            spanhooks.emit(CallbackEvent.TOOL_END, f"worker{{index}}", "ok")
            return index

        if __name__ == "__main__":
            spanhooks.setup()
            spanhooks.emit(CallbackEvent.TURN_START, SimpleNamespace(display_name="pool"))
            with multiprocessing.get_context({start_method!r}).Pool(2) as pool:
                assert pool.map(spanhooks.ProcessTarget(work), range(4)) == [0, 1, 2, 3]
            spanhooks.emit(CallbackEvent.TURN_END, None, None, [])
        """,
    )
    spans = _by_name(records)
    parent = spans["invoke_agent pool"]
    workers = [spans[f"execute_tool worker{i}"] for i in range(4)]
    assert all(w["trace_id"] == parent["trace_id"] for w in workers)
    assert all(w["parent_span_id"] == parent["span_id"] for w in workers)


def test_a_start_never_ended_is_exported_as_abandoned_at_exit(tmp_path: Path) -> None:
    records = _run_script(
        tmp_path,
        """
        from types import SimpleNamespace
        import spanhooks
        from spanhooks import CallbackEvent
        spanhooks.setup()
        spanhooks.emit(CallbackEvent.TURN_START, SimpleNamespace(display_name="crashy"))
        spanhooks.emit(CallbackEvent.TOOL_START, "never_ends", {})
        """,
    )
    statuses = {record["name"]: record["status"] for record in records}
    assert statuses == {
        "invoke_agent crashy": {"code": "ERROR", "description": "abandoned: process exit"},
        "execute_tool never_ends": {"code": "ERROR", "description": "abandoned: process exit"},
    }
