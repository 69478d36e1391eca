"""The HTTP endpoint: ``/metrics`` for Prometheus and ``/health`` for orchestrator probes.

Binds 127.0.0.1 by default (prometheus_client's own server binds every interface). ``/health``
answers 200 while the health monitor's overall status is healthy, degraded or unknown, 503
when it is unhealthy, with the JSON status as the body. Optional TLS through an
``ssl.SSLContext``. The server runs on a daemon thread; :meth:`MetricsServer.close` stops it.

Bounded against slow or hostile clients: one loop thread holds every connection (and does its
TLS handshake) until its request head has arrived, so an idle connection costs a file
descriptor, never a thread; a client gets ``timeout`` seconds to send its request and again to
take the reply; at most ``max_connections`` are open at once (the oldest still-waiting one is
closed to admit a new one), so at most that many handler threads exist. Disconnects, resets
and timeouts are counted in :attr:`MetricsServer.dropped` and logged at DEBUG, never printed;
the counts are also a metric family of their own,
``spanhooks_metrics_server_connections_dropped_total{reason}``, summed over the process's open
servers.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import logging
import os
import selectors
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from spanhooks.metrics.families import METRICS_SERVER_CONNECTIONS_DROPPED, counter, register_source
from spanhooks.util import checks
from spanhooks.util.forksafe import fork_safe_lock
from spanhooks.util.log import rate_limited

__all__ = ["MetricsServer", "start_metrics_server"]

logger = logging.getLogger("spanhooks")

DEFAULT_PORT = 9464
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_CONNECTIONS = 64

# Why a connection was closed before a complete reply; the keys of MetricsServer.dropped.
DROP_REASONS = ("timeout", "disconnect", "over_cap", "bad_request", "handler_error")

_MAX_HEAD = 65536  # request line and headers; BaseHTTPRequestHandler's own line limit
_CHUNK = 16384


@dataclass(eq=False)
class _Waiting:
    """A connection whose request head has not fully arrived (owned by the loop thread)."""

    sock: socket.socket
    address: Any
    deadline: float
    handshaken: bool
    events: int = selectors.EVENT_READ
    head: bytearray = field(default_factory=bytearray)


class _BoundedHTTPServer(http.server.HTTPServer):
    """An HTTPServer with a selector loop in place of thread-per-connection.

    Threading contract: :meth:`serve_forever` runs on one thread, which alone accepts, reads
    request heads, does TLS handshakes (non-blocking) and expires connections; each complete
    request is answered on its own daemon thread, named ``<loop thread's name>-request``. The
    drop counts are kept under a lock and may be read from any thread.

    A metric source (see :mod:`spanhooks.metrics.families`) from construction until
    :meth:`server_close`: the drop counts are scraped as
    ``spanhooks_metrics_server_connections_dropped_total{reason}``. A closed server, or one a
    forked child inherited (it serves nothing there), yields no family, so its counts leave
    the sum over servers rather than stay behind frozen or be counted in two processes.
    """

    request_queue_size = 1024  # the listen backlog (kernel-held, no descriptor of ours)

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[http.server.BaseHTTPRequestHandler],
        *,
        timeout: float,
        max_connections: int,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        super().__init__(address, handler)
        self.socket.setblocking(False)
        self.client_timeout = timeout
        self.max_connections = max_connections
        self.ssl_context = ssl_context
        self.thread_name = f"spanhooks-metrics-{self.server_address[1]}"
        self._lock = fork_safe_lock(self)
        self._dropped = dict.fromkeys(DROP_REASONS, 0)
        self._answering = 0
        self._waiting: dict[_Waiting, None] = {}  # accept order, hence deadline order
        self._heads: dict[socket.socket, bytes] = {}
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._serving_pid: int | None = os.getpid()  # None once closed
        register_source(self)  # held weakly: the loop thread keeps a running server alive

    # -- counts (any thread) -------------------------------------------------------------------

    def note(self, reason: str) -> None:
        with self._lock:
            self._dropped[reason] += 1

    def dropped(self) -> dict[str, int]:
        with self._lock:
            return dict(self._dropped)

    def metric_families(self) -> Iterator[Metric]:
        """The drop counts by reason, every reason present; nothing once closed or forked."""
        if self._serving_pid != os.getpid():
            return
        counts = self.dropped()
        yield counter(
            METRICS_SERVER_CONNECTIONS_DROPPED,
            [((reason,), counts[reason]) for reason in DROP_REASONS],
        )

    def request_head(self, request: socket.socket) -> bytes:
        """The request head the loop read for ``request`` (called once, by its handler)."""
        return self._heads.pop(request, b"")

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Count a handler's failure; a client's OSError is logged at DEBUG, not printed.

        Anything else is a bug in a collector or the health callback: a rate-limited warning.
        """
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            self.note("timeout" if isinstance(error, TimeoutError) else "disconnect")
            logger.debug("metrics server: client %s dropped: %r", client_address, error)
        else:
            self.note("handler_error")
            rate_limited.log(
                logging.WARNING,
                "metrics-server",
                "metrics server: answering %s failed",
                client_address,
                exc_info=error,
            )

    # -- the loop (its own thread) ---------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Accept and read request heads until :meth:`shutdown`; ``poll_interval`` is unused."""
        selector = selectors.DefaultSelector()
        try:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self._stop.is_set():
                ready = selector.select(self._until_first_deadline())
                # Heads that arrived are handed on before new connections may evict them.
                ready.sort(key=lambda pair: pair[0].fileobj is self.socket)
                for key, _ in ready:
                    if key.fileobj is self.socket:
                        self._accept(selector)
                    elif key.fileobj is self._wake_reader:
                        self._drain_wake()
                    elif key.data in self._waiting:  # not closed earlier in this batch
                        self._advance(selector, key.data)
                self._expire(selector)
        finally:
            for waiting in list(self._waiting):
                self._close(selector, waiting, None)
            selector.close()
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` and wait for it to return (call from another thread)."""
        self._stop.set()
        with contextlib.suppress(OSError):  # closed, or full: the loop is awake either way
            self._wake_writer.send(b"\0")
        self._stopped.wait()

    def server_close(self) -> None:
        self._serving_pid = None
        super().server_close()
        for waiting in list(self._waiting):  # left only if the loop never ran (forked child)
            waiting.sock.close()
        self._waiting.clear()
        self._wake_reader.close()
        self._wake_writer.close()

    def _until_first_deadline(self) -> float | None:
        for first in self._waiting:
            return max(0.0, first.deadline - time.monotonic())
        return None

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_reader.recv(64):
                pass

    def _accept(self, selector: selectors.BaseSelector) -> None:
        for _ in range(self.request_queue_size):  # a flood cannot keep the loop from heads
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as error:  # out of descriptors: back off rather than spin
                rate_limited.log(
                    logging.WARNING, "metrics-accept", "metrics server: accept failed: %r", error
                )
                self._stop.wait(0.1)
                return
            with self._lock:
                answering = self._answering
            if answering + len(self._waiting) >= self.max_connections:
                self.note("over_cap")
                if not self._waiting:
                    sock.close()
                    continue
                self._close(selector, next(iter(self._waiting)), None)
            try:
                sock.setblocking(False)
                if self.ssl_context is not None:
                    sock = self.ssl_context.wrap_socket(
                        sock, server_side=True, do_handshake_on_connect=False
                    )
            except OSError as error:
                sock.close()
                self.note("disconnect")
                logger.debug("metrics server: client %s dropped: %r", address, error)
                continue
            waiting = _Waiting(
                sock,
                address,
                time.monotonic() + self.client_timeout,
                handshaken=self.ssl_context is None,
            )
            self._waiting[waiting] = None
            selector.register(sock, selectors.EVENT_READ, waiting)

    def _advance(self, selector: selectors.BaseSelector, waiting: _Waiting) -> None:
        """Take the handshake and the head as far as the bytes that arrived allow."""
        sock = waiting.sock
        try:
            if not waiting.handshaken:
                assert isinstance(sock, ssl.SSLSocket)
                sock.do_handshake()
                waiting.handshaken = True
            while True:
                chunk = sock.recv(_CHUNK)
                if not chunk:
                    self._close(selector, waiting, "disconnect")
                    return
                searched = max(0, len(waiting.head) - 3)
                waiting.head += chunk
                if waiting.head.find(b"\r\n\r\n", searched) >= 0 or (
                    waiting.head.find(b"\n\n", searched) >= 0
                ):
                    self._hand_on(selector, waiting)
                    return
                if len(waiting.head) > _MAX_HEAD:
                    self._close(selector, waiting, "bad_request")
                    return
        except (BlockingIOError, ssl.SSLWantReadError):
            self._want(selector, waiting, selectors.EVENT_READ)
        except ssl.SSLWantWriteError:
            self._want(selector, waiting, selectors.EVENT_WRITE)
        except OSError as error:  # reset, TLS failure
            logger.debug("metrics server: client %s dropped: %r", waiting.address, error)
            self._close(selector, waiting, "disconnect")

    def _want(self, selector: selectors.BaseSelector, waiting: _Waiting, events: int) -> None:
        if waiting.events != events:
            selector.modify(waiting.sock, events, waiting)
            waiting.events = events

    def _expire(self, selector: selectors.BaseSelector) -> None:
        now = time.monotonic()
        while self._waiting:
            first = next(iter(self._waiting))
            if first.deadline > now:
                return
            logger.debug("metrics server: client %s timed out", first.address)
            self._close(selector, first, "timeout")

    def _close(
        self, selector: selectors.BaseSelector, waiting: _Waiting, reason: str | None
    ) -> None:
        del self._waiting[waiting]
        selector.unregister(waiting.sock)
        waiting.sock.close()
        if reason is not None:
            self.note(reason)

    def _hand_on(self, selector: selectors.BaseSelector, waiting: _Waiting) -> None:
        """Give a connection whose head has arrived its own handler thread."""
        del self._waiting[waiting]
        selector.unregister(waiting.sock)
        with self._lock:
            self._answering += 1
        try:
            waiting.sock.settimeout(self.client_timeout)  # bounds taking the reply too
            threading.Thread(
                target=self._answer,
                args=(waiting.sock, waiting.address, bytes(waiting.head)),
                name=f"{self.thread_name}-request",
                daemon=True,
            ).start()
        except (OSError, RuntimeError) as error:  # RuntimeError: can't start new thread
            with self._lock:
                self._answering -= 1
            waiting.sock.close()
            self.note("handler_error")
            logger.debug("metrics server: no thread for %s: %r", waiting.address, error)

    def _answer(self, sock: socket.socket, address: Any, head: bytes) -> None:
        try:
            self._heads[sock] = head
            self.finish_request(sock, address)
        except Exception:
            self.handle_error(sock, address)
        finally:
            self._heads.pop(sock, None)
            try:
                self.shutdown_request(sock)
            finally:
                with self._lock:
                    self._answering -= 1


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    """Answers one request whose head the loop already read; HTTP/1.0, so one per connection."""

    def setup(self) -> None:
        super().setup()
        assert isinstance(self.server, _BoundedHTTPServer)
        self.rfile.close()  # the socket's own reader: nothing is left to read from it
        self.rfile = io.BytesIO(self.server.request_head(self.request))

    def _reply(self, code: int, content_type: str, body: bytes) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except TimeoutError:
            assert isinstance(self.server, _BoundedHTTPServer)
            self.server.note("timeout")  # counted here: handle_one_request swallows it
            raise

    def log_message(self, format: str, *args: Any) -> None:
        return None  # scrapes every few seconds would flood the application's log


class MetricsServer:
    """A running ``/metrics`` + ``/health`` server; ``url`` tells where.

    :attr:`dropped` counts connections closed before a complete reply, by reason (one of
    ``DROP_REASONS``), and so does ``spanhooks_metrics_server_connections_dropped_total``
    on any registry spanhooks collects into, until ``close()`` (after which this server's
    counts leave that family); ``close()`` may be called from any thread, more than once.
    """

    def __init__(self, server: _BoundedHTTPServer, thread: threading.Thread, scheme: str) -> None:
        self._server = server
        self._thread = thread
        host, port = server.server_address[:2]
        self.host, self.port = str(host), int(port)
        self.url = f"{scheme}://{self.host}:{self.port}"
        self.timeout = server.client_timeout
        self.max_connections = server.max_connections

    @property
    def dropped(self) -> dict[str, int]:
        """A snapshot: reason -> connections closed for it, before a complete reply, so far."""
        return self._server.dropped()

    def close(self) -> None:
        """Stop serving and release the port. Idempotent."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


def start_metrics_server(
    registry: CollectorRegistry,
    *,
    port: int = DEFAULT_PORT,
    addr: str = "127.0.0.1",
    health: Callable[[], dict[str, Any]] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> MetricsServer:
    """Serve ``registry`` on ``/metrics`` and ``health()`` on ``/health`` (port 0: any free).

    ``timeout``: seconds a client has to send its request (TLS handshake included), and again
    to take the reply, before it is dropped. ``max_connections``: connections open at once,
    hence the most handler threads; beyond it the oldest connection still sending its request
    is closed, or the new one if every slot is answering.
    """
    checks.seconds("timeout", timeout, limit=3600)
    checks.count("max_connections", max_connections, minimum=1, limit=65_536)

    class Handler(_RequestHandler):
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

    server = _BoundedHTTPServer(
        (addr, port),
        Handler,
        timeout=float(timeout),
        max_connections=max_connections,
        ssl_context=ssl_context,
    )
    thread = threading.Thread(target=server.serve_forever, name=server.thread_name, daemon=True)
    thread.start()
    return MetricsServer(server, thread, "https" if ssl_context is not None else "http")
