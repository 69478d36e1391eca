"""/metrics: a real HTTP scrape of the running endpoint, parsed with prometheus_client's parser."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from spanhooks import CallbackEvent, CallbackManager
from spanhooks._metrics import install_collector
from spanhooks._server import start_metrics_server


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        family.name: [(sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(text)
    }


def test_events_and_callback_errors_are_counted_exactly() -> None:
    registry = CollectorRegistry()
    install_collector(registry)
    manager = CallbackManager()
    manager.enable_metrics()

    def broken(text: str) -> None:
        raise ValueError("bug")

    manager.register(CallbackEvent.RESPONSE, broken, name="broken_response")
    for _ in range(7):
        manager.emit(CallbackEvent.RESPONSE, "x")
    server = start_metrics_server(registry, port=0)
    try:
        metrics = scrape(server.url)
    finally:
        server.close()
    events = {
        (labels["event_set"], labels["event"]): value
        for labels, value in metrics["spanhooks_events"]
    }
    assert events[("llmproc", "response")] == 7
    assert ({"callback": "broken_response"}, 7.0) in metrics["spanhooks_callback_errors"]
    counts = [
        value
        for labels, value in metrics["spanhooks_callback_duration_seconds"]
        if labels.get("le") == "+Inf" and labels["event"] == "response"
    ]
    assert counts == [7.0]


def test_setup_serves_metrics_on_localhost_with_spans_and_exporter_figures(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    port_file = tmp_path / "port"
    script.write_text(
        textwrap.dedent(
            f"""
            import time
            from types import SimpleNamespace
            import spanhooks
            from spanhooks import CallbackEvent
            telemetry = spanhooks.setup(metrics_port=0)
            for _ in range(3):
                spanhooks.emit(CallbackEvent.TOOL_START, "search", {{}})
                spanhooks.emit(CallbackEvent.TOOL_END, "search", "ok")
            spanhooks.force_flush()
            open({str(port_file)!r}, "w").write(str(telemetry.metrics_server.port))
            time.sleep(30)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text()):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        metrics = scrape(f"http://127.0.0.1:{port_file.read_text()}")
    finally:
        process.kill()
        process.wait()
    events = {labels["event"]: value for labels, value in metrics["spanhooks_events"]}
    assert events["tool_start"] == events["tool_end"] == 3
    exported = {labels["exporter"]: value for labels, value in metrics["spanhooks_spans_exported"]}
    assert exported == {"jsonl": 3.0}
    durations = {
        (labels["event_set"], labels["operation"], labels.get("le")): value
        for labels, value in metrics["spanhooks_span_duration_seconds"]
        if "le" in labels
    }
    assert durations[("llmproc", "execute_tool", "+Inf")] == 3
    dropped = {labels["exporter"]: value for labels, value in metrics["spanhooks_spans_dropped"]}
    assert dropped == {"jsonl": 0.0}
