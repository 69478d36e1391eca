"""Exporter faults over OTLP/gRPC: a real gRPC collector that answers, refuses with
UNAVAILABLE, or hangs. The same guarantees as over HTTP (``test_exporter_faults.py``): the
emitter never waits, flush and shutdown keep their bounds, the JSONL file gets every span, and
``handed == exported + failed + dropped`` by reason, checked against what the collector got.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from .conftest import Pipeline, dropped_metric, jsonl_ids, otlp, produce

SLACK = 0.2
"""Scheduling allowance on top of a stated time bound (a shared two-core machine)."""


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """A trace service whose answer is chosen by ``mode``: ``ok``, ``refuse`` or ``hang``."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.span_ids: list[int] = []
        self.released = threading.Event()

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        if self.mode == "hang":
            self.released.wait(30)
        elif self.mode == "refuse":
            context.abort(grpc.StatusCode.UNAVAILABLE, "collector is down")
        self.span_ids += [
            int.from_bytes(span.span_id, "big")
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def collector() -> Iterator[tuple[Collector, str]]:
    servicer = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"http://127.0.0.1:{port}"
    servicer.released.set()
    server.stop(grace=None)


def test_a_healthy_grpc_collector_receives_every_span(
    pipeline: Pipeline, collector: tuple[Collector, str], tmp_path: Path
) -> None:
    servicer, endpoint = collector
    telemetry = pipeline(otlp_endpoint=endpoint, otlp_protocol="grpc")
    ids = produce(telemetry, 300)
    assert telemetry.force_flush(10_000)
    assert sorted(servicer.span_ids) == sorted(ids)
    counts = otlp(telemetry).counts()
    assert (counts["handed"], counts["exported"], counts["dropped"]) == (300, 300, 0)
    assert jsonl_ids(tmp_path / "spans.jsonl") == set(ids)


def test_a_grpc_collector_that_refuses_drops_the_batch_as_export_failed(
    pipeline: Pipeline, collector: tuple[Collector, str], tmp_path: Path
) -> None:
    servicer, endpoint = collector
    servicer.mode = "refuse"
    telemetry = pipeline(otlp_endpoint=endpoint, otlp_protocol="grpc", otlp_timeout=0.5)
    before = dropped_metric(telemetry, "export_failed") or 0  # /metrics sums every live exporter
    ids = produce(telemetry, 50)
    assert telemetry.force_flush(10_000)
    counts = otlp(telemetry).counts()
    assert (counts["exported"], counts["failed"], counts["export_failed"]) == (0, 50, 50)
    assert counts["handed"] == counts["exported"] + counts["dropped"] == 50
    assert dropped_metric(telemetry, "export_failed") == before + 50
    assert servicer.span_ids == []
    assert jsonl_ids(tmp_path / "spans.jsonl") == set(ids)


def test_a_hanging_grpc_collector_neither_blocks_emits_nor_stretches_shutdown(
    pipeline: Pipeline, collector: tuple[Collector, str], tmp_path: Path
) -> None:
    servicer, endpoint = collector
    servicer.mode = "hang"
    telemetry = pipeline(
        otlp_endpoint=endpoint, otlp_protocol="grpc", otlp_timeout=30, shutdown_timeout=0.5
    )
    produce(telemetry, 10)
    assert not telemetry.force_flush(200)  # the export thread is now inside the held request
    ids = produce(telemetry, 2_000)  # all returned while it hangs: none waited for it
    counts = otlp(telemetry).counts()
    assert (counts["handed"], counts["exported"], counts["failed"]) == (2_010, 0, 0)
    started = time.monotonic()
    telemetry.shutdown()
    assert time.monotonic() - started < 0.5 + SLACK
    counts = otlp(telemetry).counts()
    assert counts["handed"] == 2_010 == counts["exported"] + counts["dropped"]
    assert counts["exported"] == 0 and counts["shutdown"] >= 2_000
    assert jsonl_ids(tmp_path / "spans.jsonl") >= set(ids)
