"""Every finished span reaches the JSONL file however the process ends (normal, sys.exit, signals)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

APP = """
import os, signal, sys, time
import spanhooks
from spanhooks import CallbackEvent
{before}
spanhooks.setup()
for index in range(25):
    spanhooks.emit(CallbackEvent.TOOL_START, f"t{index}", {})
    spanhooks.emit(CallbackEvent.TOOL_END, f"t{index}", "ok")
print("ready", flush=True)
"""


def run_app(
    tmp_path: Path, ending: str, send: signal.Signals | None = None, before: str = ""
) -> tuple[int, list[str]]:
    script = tmp_path / "app.py"
    script.write_text(APP.replace("{before}", textwrap.dedent(before)) + textwrap.dedent(ending))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    env["OTEL_BSP_SCHEDULE_DELAY"] = "60000"  # nothing is exported on the timer: only the exit path
    with subprocess.Popen(
        [sys.executable, str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    ) as app:
        assert app.stdout is not None and app.stdout.readline().strip() == "ready"
        if send is not None:
            app.send_signal(send)
        code = app.wait(timeout=30)
    path = tmp_path / "spanhooks-traces.jsonl"
    names = (
        [json.loads(line)["name"] for line in path.read_text().splitlines()]
        if path.exists()
        else []
    )
    return code, names


@pytest.mark.parametrize(
    ("ending", "expected_code"),
    [("", 0), ("sys.exit(3)", 3)],
    ids=["normal-exit", "sys-exit"],
)
def test_exit_flushes_every_finished_span(tmp_path: Path, ending: str, expected_code: int) -> None:
    code, names = run_app(tmp_path, ending)
    assert code == expected_code
    assert sorted(names) == sorted(f"execute_tool t{i}" for i in range(25))


def test_sigterm_flushes_every_finished_span_then_dies_of_sigterm(tmp_path: Path) -> None:
    code, names = run_app(tmp_path, "time.sleep(30)", send=signal.SIGTERM)
    assert code == -signal.SIGTERM
    assert len(names) == 25


def test_sigterm_flushes_then_chains_to_the_applications_own_handler(tmp_path: Path) -> None:
    before = """
    def graceful(signum, frame):
        os._exit(7)  # skips atexit: only spanhooks' SIGTERM hook can have flushed
    signal.signal(signal.SIGTERM, graceful)
    """
    code, names = run_app(tmp_path, "time.sleep(30)", send=signal.SIGTERM, before=before)
    assert code == 7  # the application's handler ran, after the flush
    assert len(names) == 25


def test_sigint_flushes_through_keyboard_interrupt(tmp_path: Path) -> None:
    code, names = run_app(tmp_path, "time.sleep(30)", send=signal.SIGINT)
    assert code != 0  # KeyboardInterrupt ends the program, as Python does by default
    assert len(names) == 25
