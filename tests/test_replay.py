"""``spanhooks replay``: a captured file reaches an OTLP receiver with ids, parents and data intact."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanhooks import CallbackEvent, CallbackManager, JsonlSpanExporter
from spanhooks.export.replay import replay

Request = trace_service_pb2.ExportTraceServiceRequest


def capture_file(tmp_path: Path, file_format: str) -> tuple[Path, list[Any]]:
    path = tmp_path / f"captured-{file_format}.jsonl"
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter(path, format=file_format)))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    manager = CallbackManager(tracer_provider=provider)
    manager.emit(
        CallbackEvent.TURN_START, type("P", (), {"display_name": "offline", "model_name": "m"})()
    )
    manager.emit(CallbackEvent.TOOL_START, "search", {})
    manager.emit(CallbackEvent.STDERR_WRITE, "note")
    manager.emit(
        CallbackEvent.TOOL_END, "search", type("R", (), {"is_error": True, "error": "boom"})()
    )
    manager.emit(CallbackEvent.TURN_END, None, None, [])
    provider.shutdown()
    return path, list(memory.get_finished_spans())


def received_spans(requests: list[Any]) -> dict[str, Any]:
    return {
        span.name: (span, scope.scope.name, resource.resource)
        for request in requests
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    }


@pytest.mark.parametrize("file_format", ["spanhooks", "otlp"])
@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_replayed_spans_keep_their_ids_parents_and_data(
    tmp_path: Path,
    http_sink: tuple[str, list[Any]],
    grpc_sink: tuple[str, list[Any]],
    file_format: str,
    protocol: str,
) -> None:
    path, originals = capture_file(tmp_path, file_format)
    endpoint, received = http_sink if protocol == "http/protobuf" else grpc_sink
    assert replay(path, endpoint, protocol=protocol) == (2, 0)
    got = received_spans(received)
    for original in originals:
        span, scope_name, _ = got[original.name]
        assert span.span_id.hex() == format(original.context.span_id, "016x")
        assert span.trace_id.hex() == format(original.context.trace_id, "032x")
        parent = format(original.parent.span_id, "016x") if original.parent else ""
        assert span.parent_span_id.hex() == parent
        assert span.start_time_unix_nano == original.start_time
        assert scope_name == original.instrumentation_scope.name
        attributes = {a.key: a.value.string_value or a.value.int_value for a in span.attributes}
        assert attributes["gen_ai.operation.name"] == original.attributes["gen_ai.operation.name"]
    tool, _, _ = got["execute_tool search"]
    assert tool.status.code == 2 and tool.status.message == "boom"
    assert [event.name for event in tool.events] == ["stderr_write"]


def test_the_command_reports_what_it_sent(tmp_path: Path, http_sink: tuple[str, list[Any]]) -> None:
    path, _ = capture_file(tmp_path, "spanhooks")
    endpoint, received = http_sink
    done = subprocess.run(
        [sys.executable, "-m", "spanhooks", "replay", str(path), "--endpoint", endpoint],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"2 span(s) sent to {endpoint}"
    assert len(received_spans(received)) == 2


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "spanhooks",
            "replay",
            str(tmp_path / "nope.jsonl"),
            "--endpoint",
            "http://127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "no such file" in done.stderr
