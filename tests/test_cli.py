"""The command line: ``spanhooks demo`` and ``spanhooks view``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
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
    assert sorted(span["name"] for span in failed) == [
        "chat claude-demo",
        "execute_tool calculator",
    ]
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
    assert (
        "operations: 1 error(s) handled, 2 session transition(s), 1 routed event(s)" in done.stdout
    )


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


def test_the_demo_serves_metrics_and_health_while_it_runs(tmp_path: Path) -> None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    with subprocess.Popen(
        [sys.executable, "-m", "spanhooks", "demo", "--duration", "30", "--metrics-port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    ) as demo:
        assert demo.stdout is not None
        first = demo.stdout.readline()
        assert first.startswith("serving http://127.0.0.1:"), first
        url = first.split()[1].removesuffix("/metrics")
        expected = {
            "spanhooks_events",
            "spanhooks_errors",
            "spanhooks_sessions",
            "spanhooks_router_events",
            "spanhooks_health_status",
            "spanhooks_health_check_duration_seconds",
            "spanhooks_callback_duration_seconds",
            "spanhooks_polling_runs",
            "spanhooks_span_duration_seconds",
            "spanhooks_spans_exported",
            "spanhooks_sessions_started",
            "spanhooks_session_spans",
            "gen_ai_invoke_agent_duration_seconds",
            "gen_ai_execute_tool_duration_seconds",
            "gen_ai_client_operation_time_per_output_chunk_seconds",
        }
        names: set[str] = set()
        for _ in range(50):  # the first run finishes within a second or two
            with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
                families = list(text_string_to_metric_families(response.read().decode()))
            names = {family.name for family in families}
            if expected <= names:
                break
            time.sleep(0.2)
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            health = json.load(response)
        demo.kill()
    assert expected <= names
    assert health["status"] in ("degraded", "unknown")
