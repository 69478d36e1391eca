"""prometheus_client multiprocess mode: workers' metrics add up on the one /metrics endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

SCRIPT = """
import multiprocessing, os, sys, urllib.request
import spanhooks
from spanhooks import CallbackEvent

def work(index):
    for _ in range(10):
        spanhooks.emit(CallbackEvent.TOOL_START, "search", {})
        spanhooks.emit(CallbackEvent.TOOL_END, "search", "ok")
    return os.getpid()

if __name__ == "__main__":
    telemetry = spanhooks.setup(metrics_port=0)
    for _ in range(5):
        spanhooks.emit(CallbackEvent.RESPONSE, "from the serving process")
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        pids = pool.map(spanhooks.ProcessTarget(work), range(6))
    spanhooks.force_flush()
    with urllib.request.urlopen(telemetry.metrics_server.url + "/metrics", timeout=10) as response:
        sys.stdout.write(response.read().decode())
    for pid in set(pids):
        spanhooks.mark_process_dead(pid)
"""


def test_events_from_every_worker_add_up_on_the_served_endpoint(tmp_path: Path) -> None:
    directory = tmp_path / "multiproc"
    directory.mkdir()
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    families = {family.name: family for family in text_string_to_metric_families(done.stdout)}
    events = {
        sample.labels["event"]: sample.value
        for sample in families["spanhooks_events"].samples
        if sample.name == "spanhooks_events_total"
    }
    assert events["tool_start"] == events["tool_end"] == 60  # 6 tasks x 10, over 3 worker processes
    assert events["response"] == 5
    spans = [
        sample.value
        for sample in families["spanhooks_span_duration_seconds"].samples
        if sample.name.endswith("_count") and sample.labels.get("operation") == "execute_tool"
    ]
    assert sum(spans) == 60
    assert any(path.name.startswith("counter_") for path in directory.iterdir())
