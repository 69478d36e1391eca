"""The command line: ``spanhooks demo`` and ``spanhooks view``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def spanhooks_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    return subprocess.run(
        [sys.executable, "-m", "spanhooks", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_demo_writes_a_trace_of_every_seed_style_and_prints_it(tmp_path: Path) -> None:
    done = spanhooks_cli("demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trace_file = tmp_path / "spanhooks-traces.jsonl"
    assert str(trace_file.resolve()) in done.stdout
    spans = [json.loads(line) for line in trace_file.read_text().splitlines()]
    names = {span["name"] for span in spans}
    assert {
        "invoke_agent travel-agent",
        "chat claude-demo",
        "execute_tool flight_search",
        "execute_tool hotel_search",
        "execute_tool calculator",
        "module Summarize",
        "meeting",
    } <= names
    failed = [span for span in spans if span["status"]["code"] == "ERROR"]
    assert [span["name"] for span in failed] == ["execute_tool calculator"]
    event_names = {event["name"] for span in spans for event in span["events"]}
    assert {
        "on_message",
        "on_intent_detected",
        "on_agent_delegated",
        "response",
        "turn_changed",
    } <= event_names
    assert (
        "└─ execute_tool calculator" in done.stdout or "├─ execute_tool calculator" in done.stdout
    )
    assert "1 run(s): tool calls calculator x1, flight_search x1, hotel_search x1" in done.stdout


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "spanhooks"
    assert script.exists() or shutil.which("spanhooks")


def test_view_prints_a_file_as_trees(tmp_path: Path) -> None:
    assert spanhooks_cli("demo", "-o", "run.jsonl", cwd=tmp_path).returncode == 0
    done = spanhooks_cli("view", "run.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "invoke_agent travel-agent" in done.stdout
    assert "ERROR" in done.stdout


def test_view_reports_a_missing_or_unreadable_file_clearly(tmp_path: Path) -> None:
    missing = spanhooks_cli("view", "nope.jsonl", cwd=tmp_path)
    assert missing.returncode == 1 and "no such file" in missing.stderr
    (tmp_path / "garbage.jsonl").write_bytes(b"\x00\xff\xfe garbage")
    garbage = spanhooks_cli("view", "garbage.jsonl", cwd=tmp_path)
    assert garbage.returncode == 1 and "garbage.jsonl" in garbage.stderr
    assert "Traceback" not in garbage.stderr
