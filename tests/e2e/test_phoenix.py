"""Arize Phoenix, a real OTLP receiver with a query API, gets the demo's spans over HTTP and gRPC.

Phoenix lives in its own virtual environment (``.phoenix-venv``, built by ``.ci/run``); the
test starts it on 127.0.0.1 and reads spans back through ``GET /v1/projects/default/spans``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spanhooks.export.reader import SpanRecord

RunDemo = Callable[..., list[SpanRecord]]  # the run_demo fixture (tests/e2e/conftest.py)

ROOT = Path(__file__).resolve().parents[2]
PHOENIX = os.environ.get("SPANHOOKS_PHOENIX") or (
    str(ROOT / ".phoenix-venv" / "bin" / "phoenix")
    if (ROOT / ".phoenix-venv" / "bin" / "phoenix").exists()
    else shutil.which("phoenix")
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        PHOENIX is None,
        reason="LOUD SKIP: arize-phoenix is not installed (.ci/run builds .phoenix-venv)",
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A Phoenix server on 127.0.0.1; yields its HTTP base URL and its gRPC port."""
    assert PHOENIX is not None
    workdir = tmp_path_factory.mktemp("phoenix")
    http_port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(http_port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    with subprocess.Popen(
        [PHOENIX, "serve"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as server:
        url = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, "phoenix exited"
            assert time.monotonic() < deadline, "phoenix did not come up in 120 s"
            time.sleep(0.5)
        yield url, grpc_port
        server.terminate()
        server.wait(timeout=30)


def stored(url: str, wanted: set[str], timeout: float = 30.0) -> dict[str, dict[str, Any]]:
    """Spans Phoenix stored, by span id, once every wanted id is there (or the time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(
            f"{url}/v1/projects/default/spans?limit=1000", timeout=10
        ) as response:
            spans = {span["context"]["span_id"]: span for span in json.load(response)["data"]}
        if wanted <= spans.keys() or time.monotonic() > deadline:
            return spans
        time.sleep(0.5)


def assert_round_trip(records: list[SpanRecord], spans: dict[str, dict[str, Any]]) -> None:
    assert {r["span_id"] for r in records} <= spans.keys()
    for record in records:
        span = spans[record["span_id"]]
        assert span["name"] == record["name"]
        assert span["context"]["trace_id"] == record["trace_id"]
        assert span["parent_id"] == record.get("parent_span_id")
        for key in ("gen_ai.operation.name", "gen_ai.tool.name", "meeting.host_id"):
            if key in (record.get("attributes") or {}):
                assert span["attributes"][key] == record["attributes"][key]


def test_spans_sent_over_otlp_http_read_back_intact(
    run_demo: RunDemo, phoenix: tuple[str, int], tmp_path: Path
) -> None:
    url, _ = phoenix
    records = run_demo(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=url)
    assert_round_trip(records, stored(url, {r["span_id"] for r in records}))


def test_spans_sent_over_otlp_grpc_read_back_intact(
    run_demo: RunDemo, phoenix: tuple[str, int], tmp_path: Path
) -> None:
    url, grpc_port = phoenix
    records = run_demo(
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{grpc_port}",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
    )
    assert_round_trip(records, stored(url, {r["span_id"] for r in records}))


def test_a_replayed_file_reads_back_intact(
    run_demo: RunDemo, phoenix: tuple[str, int], tmp_path: Path
) -> None:
    from spanhooks.export.replay import replay

    url, _ = phoenix
    records = run_demo(tmp_path)  # recorded offline: no endpoint configured
    assert replay(tmp_path / "run.jsonl", url) == (len(records), 0)
    assert_round_trip(records, stored(url, {r["span_id"] for r in records}))


def test_model_messages_and_every_session_id_read_back(
    run_demo: RunDemo, phoenix: tuple[str, int], tmp_path: Path
) -> None:
    url, _ = phoenix
    records = run_demo(
        tmp_path,
        OTEL_EXPORTER_OTLP_ENDPOINT=url,
        OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="SPAN_ONLY",
    )
    spans = stored(url, {r["span_id"] for r in records})
    assert_round_trip(records, spans)
    model_calls = [r for r in records if r["attributes"].get("gen_ai.operation.name") == "chat"]
    assert model_calls
    for record in model_calls:
        attributes = spans[record["span_id"]]["attributes"]
        keys = ["gen_ai.input.messages"]
        if record["status"]["code"] != "ERROR":  # a failed call has no output
            keys.append("gen_ai.output.messages")
        for key in keys:
            sent = json.loads(record["attributes"][key])
            assert sent and all("role" in message and "parts" in message for message in sent)
            assert json.loads(attributes[key]) == sent
    assert all("session.id" in r["attributes"] for r in records)  # the demo runs in sessions
    for record in records:
        attributes = spans[record["span_id"]]["attributes"]
        assert attributes["session.id"] == record["attributes"]["session.id"]
