"""Shared fixtures: every test gets its own capture pipeline (see spanhooks.testing)."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any, ClassVar

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_http import otlp_http  # noqa: F401  (a fixture for every test module)
from spanhooks.util.log import rate_limited


@pytest.fixture(autouse=True)
def _fresh_log_limits() -> Iterator[None]:
    """Rate-limit windows are process-wide; reset them so each test sees its own logs."""
    rate_limited._windows.clear()
    yield
    rate_limited._windows.clear()


@pytest.fixture
def spanhooks_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="spanhooks")
    return caplog


class _HttpSink(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that decodes every request and keeps it, and the path it came to."""

    received: ClassVar[list[ExportTraceServiceRequest]] = []
    paths: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append(request)
        type(self).paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _GrpcSink(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.received: list[Any] = []

    def Export(self, request: Any, context: Any) -> Any:
        self.received.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def http_sink() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    """A real OTLP/HTTP receiver on 127.0.0.1: its base URL and the requests it got."""
    _HttpSink.received, _HttpSink.paths = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HttpSink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _HttpSink.received
    server.shutdown()
    server.server_close()


@pytest.fixture
def http_sink_paths(http_sink: tuple[str, list[ExportTraceServiceRequest]]) -> list[str]:
    """The URL paths the requests of :func:`http_sink` were posted to, in order."""
    return _HttpSink.paths


@pytest.fixture
def grpc_sink() -> Iterator[tuple[str, list[Any]]]:
    """A real OTLP/gRPC receiver on 127.0.0.1: its endpoint and the requests it got."""
    sink = _GrpcSink()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", sink.received
    server.stop(grace=None)
