"""The demo's spans reach a real OTLP receiver (oteltest's sinks) over HTTP and gRPC intact.

oteltest keeps exactly what was on the wire, so names, ids, parents, kinds, attributes, scopes
and resource attributes are compared with the JSONL file the same run wrote.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from oteltest.sink import GrpcSink, HttpSink
from oteltest.sink.handler import AccumulatingHandler

from spanhooks.export.reader import SpanRecord

RunDemo = Callable[..., list[SpanRecord]]  # the run_demo fixture (tests/e2e/conftest.py)

KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
logger = logging.getLogger("oteltest-sink")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert time.monotonic() < deadline, f"nothing listens on {port}"
        time.sleep(0.05)


@pytest.fixture
def http_sink() -> Iterator[tuple[str, AccumulatingHandler]]:
    handler, port = AccumulatingHandler(), free_port()
    sink = HttpSink(handler, logger, port=port)
    sink.start()
    wait_until_listening(port)
    yield f"http://127.0.0.1:{port}", handler
    sink.stop()


@pytest.fixture
def grpc_sink() -> Iterator[tuple[str, AccumulatingHandler]]:
    handler, port = AccumulatingHandler(), free_port()
    sink = GrpcSink(handler, logger, port=port)
    sink.start()
    yield f"http://127.0.0.1:{port}", handler
    sink.stop()


def on_the_wire(handler: AccumulatingHandler) -> dict[str, tuple[Any, str, dict[str, Any]]]:
    spans = {}
    for request in handler.telemetry.get_trace_requests():
        for resource_spans in request.pbreq.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans[span.span_id.hex()] = (span, scope_spans.scope.name, resource)
    return spans


def value_of(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_every_span_arrives_as_the_jsonl_file_recorded_it(
    run_demo: RunDemo,
    tmp_path: Path,
    http_sink: tuple[str, AccumulatingHandler],
    grpc_sink: tuple[str, AccumulatingHandler],
    protocol: str,
) -> None:
    endpoint, handler = http_sink if protocol == "http/protobuf" else grpc_sink
    records = run_demo(
        tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=protocol
    )
    wire = on_the_wire(handler)
    assert set(wire) == {record["span_id"] for record in records}
    for record in records:
        span, scope, resource = wire[record["span_id"]]
        assert span.name == record["name"]
        assert span.trace_id.hex() == record["trace_id"]
        assert span.parent_span_id.hex() == (record.get("parent_span_id") or "")
        assert KINDS[span.kind] == record.get("kind")
        assert scope == (record.get("scope") or {}).get("name")
        assert resource["service.name"] == "spanhooks-demo"
        attributes = {a.key: value_of(a.value) for a in span.attributes}
        expected = {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in (record.get("attributes") or {}).items()
        }
        assert attributes == expected
    kinds = {KINDS[span.kind] for span, _, _ in wire.values()}
    assert {"INTERNAL", "CLIENT"} <= kinds  # chat spans are CLIENT, as the GenAI conventions say


@pytest.mark.slow
def test_a_replayed_file_reaches_the_receiver_unchanged(
    run_demo: RunDemo, tmp_path: Path, http_sink: tuple[str, AccumulatingHandler]
) -> None:
    from spanhooks.export.replay import replay

    records = run_demo(tmp_path)
    endpoint, handler = http_sink
    assert replay(tmp_path / "run.jsonl", endpoint) == (len(records), 0)
    wire = on_the_wire(handler)
    assert {span_id: span.name for span_id, (span, _, _) in wire.items()} == {
        record["span_id"]: record["name"] for record in records
    }
