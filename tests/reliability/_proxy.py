"""Collector faults on 127.0.0.1: an OTLP/HTTP sink, and a TCP proxy in front of it.

:class:`Sink` is a real OTLP/HTTP receiver (``http.server``) that decodes each
``ExportTraceServiceRequest`` and records the span ids it received, so a test can compare
span by span what was produced with what arrived. :class:`FaultProxy` forwards bytes to it and
can be switched at runtime between ``pass`` (forward), ``refuse`` (the port is closed:
connections are refused) and ``hang`` (connections are accepted, requests read, never answered).
Switching closes every open connection, as a collector restart would.

Threads and sockets only; every thread is a daemon and :meth:`close` stops them.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

MODES = ("pass", "refuse", "hang")


class _Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # many exporters at once: the default backlog of 5 drops SYNs
    daemon_threads = True


class Sink:
    """An OTLP/HTTP trace receiver that keeps every span id it was sent (as an int)."""

    def __init__(self) -> None:
        self.span_ids: list[int] = []
        self.requests = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a collector does

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest()
                if self.path.endswith("/v1/traces"):  # metrics are accepted, not kept
                    request.ParseFromString(body)
                ids = [
                    int.from_bytes(span.span_id, "big")
                    for resource in request.resource_spans
                    for scope in resource.scope_spans
                    for span in scope.spans
                ]
                with sink._lock:
                    sink.span_ids.extend(ids)
                    sink.requests += 1
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def received(self) -> set[int]:
        with self._lock:
            return set(self.span_ids)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FaultProxy:
    """A TCP proxy on 127.0.0.1 whose behaviour (:data:`MODES`) can change at any time."""

    def __init__(self, upstream_port: int, mode: str = "pass") -> None:
        self.upstream_port = upstream_port
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = 0
        self.mode = "pass"
        self._listen()
        self.set_mode(mode)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: str) -> None:
        """Switch behaviour; open connections are closed, as when a collector restarts."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        with self._lock:
            self.mode = mode
            connections, self._connections = self._connections, set()
        for connection in connections:
            _close(connection)
        if mode == "refuse":
            self._unlisten()
        elif self._listener is None:
            self._listen()

    def close(self) -> None:
        self.set_mode("refuse")

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))  # the same port again after "refuse"
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _unlisten(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: "refuse"
            with self._lock:
                mode = self.mode
                self._connections.add(client)
            if mode == "hang":
                threading.Thread(target=_drain, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._connections.add(upstream)
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, target), daemon=True).start()


def _drain(connection: socket.socket) -> None:
    """Read and discard until the peer or the proxy closes: a collector that never answers."""
    with suppress(OSError):
        while connection.recv(65536):
            pass


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    _close(source)
    _close(target)


def _close(connection: socket.socket) -> None:
    with suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
    with suppress(OSError):
        connection.close()


@contextmanager
def collector(mode: str = "pass") -> Iterator[tuple[Sink, FaultProxy]]:
    """A sink and a proxy in front of it, both closed afterwards."""
    sink = Sink()
    proxy = FaultProxy(sink.port, mode)
    try:
        yield sink, proxy
    finally:
        proxy.close()
        sink.close()
