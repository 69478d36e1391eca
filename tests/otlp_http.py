"""A real OTLP/HTTP receiver for every signal, and decoders for what it received; shared by
the tests that check traces and logs together (import the fixture into the test module)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

__all__ = ["OtlpRequests", "log_records", "otlp_http", "posted_logs", "posted_spans"]

OtlpRequests = list[tuple[str, bytes]]


@pytest.fixture
def otlp_http() -> Iterator[tuple[str, OtlpRequests]]:
    """A real OTLP/HTTP receiver for every signal: its base URL and (path, body) per request."""
    received: OtlpRequests = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def log_records(requests: list[ExportLogsServiceRequest]) -> list[tuple[str, LogRecord]]:
    """(instrumentation scope name, record) for every log record in ``requests``."""
    return [
        (scope_logs.scope.name, record)
        for request in requests
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    ]


def posted_logs(received: OtlpRequests) -> list[ExportLogsServiceRequest]:
    requests = []
    for path, body in received:
        if path == "/v1/logs":
            request = ExportLogsServiceRequest()
            request.ParseFromString(body)
            requests.append(request)
    return requests


def posted_spans(received: OtlpRequests) -> list[ExportTraceServiceRequest]:
    requests = []
    for path, body in received:
        if path == "/v1/traces":
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            requests.append(request)
    return requests
