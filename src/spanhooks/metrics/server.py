"""The HTTP endpoint: ``/metrics`` for Prometheus and ``/health`` for orchestrator probes.

Binds 127.0.0.1 by default (prometheus_client's own server binds every interface). ``/health``
answers 200 while the health monitor's overall status is healthy, degraded or unknown, 503
when it is unhealthy, with the JSON status as the body. Optional TLS through an
``ssl.SSLContext``. The server runs on a daemon thread; :meth:`MetricsServer.close` stops it.
"""

from __future__ import annotations

import http.server
import json
import ssl
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

__all__ = ["MetricsServer", "start_metrics_server"]

DEFAULT_PORT = 9464


class MetricsServer:
    """A running ``/metrics`` + ``/health`` server; ``url`` tells where."""

    def __init__(
        self, server: http.server.ThreadingHTTPServer, thread: threading.Thread, scheme: str
    ) -> None:
        self._server = server
        self._thread = thread
        host, port = server.server_address[:2]
        self.host, self.port = str(host), int(port)
        self.url = f"{scheme}://{self.host}:{self.port}"

    def close(self) -> None:
        """Stop serving and release the port. Idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def start_metrics_server(
    registry: CollectorRegistry,
    *,
    port: int = DEFAULT_PORT,
    addr: str = "127.0.0.1",
    health: Callable[[], dict[str, Any]] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> MetricsServer:
    """Serve ``registry`` on ``/metrics`` and ``health()`` on ``/health`` (port 0: any free)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/metrics", "/"):
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._reply(200, content_type, encoder(registry))
            elif path in ("/health", "/healthz") and health is not None:
                status = health()
                code = 503 if status.get("status") == "unhealthy" else 200
                self._reply(code, "application/json", json.dumps(status).encode())
            else:
                self._reply(404, "text/plain", b"not found\n")

        def _reply(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None  # scrapes every few seconds would flood the application's log

    server = http.server.ThreadingHTTPServer((addr, port), Handler)
    server.daemon_threads = True
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="spanhooks-metrics", daemon=True)
    thread.start()
    return MetricsServer(server, thread, "https" if ssl_context is not None else "http")
