"""The /metrics server against slow, idle and vanishing clients: real server, real sockets.

Every server listens on 127.0.0.1 port 0 and is closed after its test; every socket a test
opens is closed by it. Waits are polls against a deadline.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from spanhooks.metrics.families import METRICS_SERVER_CONNECTIONS_DROPPED, install_collector
from spanhooks.metrics.server import DROP_REASONS, MetricsServer, start_metrics_server

Serve = Callable[..., MetricsServer]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """``serve(**options)``: a started server with one counter, closed after the test."""
    servers: list[MetricsServer] = []

    def start(**options: Any) -> MetricsServer:
        registry = CollectorRegistry()
        Counter("probe", "Something to scrape.", registry=registry).inc()
        server = start_metrics_server(registry, port=0, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def room_for_1000_sockets() -> Iterator[None]:
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if wanted < 1200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} leaves no room for 1,000 sockets")
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def scrape(url: str, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def server_threads(server: MetricsServer) -> list[threading.Thread]:
    """The server's loop thread and its request threads, all named for its port."""
    prefix = f"spanhooks-metrics-{server.port}"
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix)]


def request_threads(server: MetricsServer) -> list[threading.Thread]:
    return [thread for thread in server_threads(server) if thread.name.endswith("-request")]


def connect(server: MetricsServer) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=10)


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the server sends before it closes; a reset counts as the end."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN, as a crashed or killed client does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_scrape_is_answered_while_1000_idle_connections_are_open(
    serve: Serve, room_for_1000_sockets: None
) -> None:
    server = serve()
    peak_threads = 0
    with contextlib.ExitStack() as idle:
        for index in range(1000):
            idle.enter_context(connect(server))
            if index % 100 == 99:
                peak_threads = max(peak_threads, len(server_threads(server)))
        started = time.monotonic()
        status, body = scrape(server.url + "/metrics")
        latency = time.monotonic() - started
        peak_threads = max(peak_threads, len(server_threads(server)))
    assert status == 200 and b"probe_total 1.0" in body
    assert latency < 3.0
    assert 1 <= peak_threads <= server.max_connections == 64
    # The connections over the cap were closed by the server rather than each holding a thread.
    assert server.dropped["over_cap"] >= 1000 - server.max_connections


def test_an_idle_connection_is_closed_after_the_timeout(serve: Serve) -> None:
    server = serve(timeout=0.5)
    with connect(server) as sock:
        started = time.monotonic()
        assert read_to_end(sock) == b""
        waited = time.monotonic() - started
    assert 0.45 <= waited < 2.0
    wait_until(lambda: server.dropped["timeout"] == 1)


def test_a_client_trickling_its_request_is_dropped_after_the_timeout(serve: Serve) -> None:
    server = serve(timeout=0.5)
    request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 1000
    with connect(server) as sock:
        started = time.monotonic()
        for byte in request:  # a byte every 20 ms: never silent for as long as the timeout
            closed, _, _ = select.select([sock], [], [], 0.02)
            if closed:
                break
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
        dropped_after = time.monotonic() - started
        assert read_to_end(sock) == b""
    assert 0.45 <= dropped_after < 2.0
    wait_until(lambda: server.dropped["timeout"] == 1)


def test_a_client_vanishing_mid_request_is_counted_not_printed(
    serve: Serve, capfd: pytest.CaptureFixture[str]
) -> None:
    server = serve()
    with connect(server) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.")
    sock = connect(server)
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.")
    reset(sock)
    wait_until(lambda: server.dropped["disconnect"] == 2)
    assert scrape(server.url + "/metrics")[0] == 200
    assert capfd.readouterr().err == ""


def test_a_client_vanishing_before_its_reply_is_counted_not_printed(
    serve: Serve, capfd: pytest.CaptureFixture[str]
) -> None:
    release = threading.Event()

    def slow_health() -> dict[str, Any]:
        release.wait(10)
        return {"status": "healthy", "padding": "x" * 1_000_000}

    server = serve(health=slow_health)
    try:
        sock = connect(server)
        sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        wait_until(lambda: len(request_threads(server)) == 1)
        reset(sock)
    finally:
        release.set()
    wait_until(lambda: server.dropped["disconnect"] == 1)
    assert scrape(server.url + "/metrics")[0] == 200
    assert capfd.readouterr().err == ""


def test_request_threads_never_exceed_the_cap(serve: Serve) -> None:
    release = threading.Event()

    def slow_health() -> dict[str, Any]:
        release.wait(10)
        return {"status": "healthy"}

    server = serve(health=slow_health, max_connections=4)
    seen: list[int] = []

    def four_answering_six_refused() -> bool:
        seen.append(len(request_threads(server)))
        return server.dropped["over_cap"] == 6 and seen[-1] == 4

    with contextlib.ExitStack() as clients:
        socks = [clients.enter_context(connect(server)) for _ in range(10)]
        try:
            for sock in socks:
                sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")
            wait_until(four_answering_six_refused)
        finally:
            release.set()
        replies = [read_to_end(sock) for sock in socks]
    assert max(seen) == 4
    assert sum(reply.startswith(b"HTTP/1.0 200 ") for reply in replies) == 4
    assert replies.count(b"") == 6


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def test_a_client_stalling_its_tls_handshake_holds_up_no_other_scrape(
    serve: Serve, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    server = serve(ssl_context=server_context)
    with connect(server), connect(server) as half:
        half.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, then nothing
        started = time.monotonic()
        status, body = scrape(server.url + "/metrics", ssl.create_default_context(cafile=cert))
        latency = time.monotonic() - started
    assert status == 200 and b"probe_total 1.0" in body
    assert latency < 3.0


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": 0},
        {"timeout": -1.0},
        {"timeout": math.nan},
        {"timeout": math.inf},
        {"timeout": "5"},
        {"timeout": True},
        {"max_connections": 0},
        {"max_connections": -1},
        {"max_connections": 2.5},
        {"max_connections": True},
        {"max_connections": "64"},
    ],
)
def test_a_bad_timeout_or_cap_is_a_value_error(options: dict[str, Any]) -> None:
    (name,) = options
    with pytest.raises(ValueError, match=f"^{name} must be"):
        start_metrics_server(CollectorRegistry(), port=0, **options)


def test_close_is_idempotent_and_releases_the_port(serve: Serve) -> None:
    server = serve()
    server.close()
    server.close()
    assert server_threads(server) == []
    with pytest.raises(ConnectionRefusedError):
        connect(server).close()


DROPPED = METRICS_SERVER_CONNECTIONS_DROPPED.name


def dropped_on_metrics(url: str) -> dict[str, float]:
    """``spanhooks_metrics_server_connections_dropped_total`` by reason, from a real scrape."""
    status, body = scrape(url + "/metrics")
    assert status == 200
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(body.decode())
        if family.name == DROPPED
        for sample in family.samples
        if sample.name == DROPPED + "_total"
    }


@pytest.fixture
def serve_spanhooks() -> Iterator[Serve]:
    """``serve_spanhooks(**options)``: a started server of a registry spanhooks collects into."""
    servers: list[MetricsServer] = []

    def start(**options: Any) -> MetricsServer:
        registry = options.pop("registry", None) or CollectorRegistry()
        install_collector(registry)
        server = start_metrics_server(registry, port=0, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_a_client_idle_past_the_timeout_is_counted_on_metrics_as_timeout(
    serve_spanhooks: Serve,
) -> None:
    server = serve_spanhooks(timeout=0.5)
    before = dropped_on_metrics(server.url)
    assert set(before) == set(DROP_REASONS)  # every reason is a series from the start
    with connect(server) as sock:
        assert read_to_end(sock) == b""  # the server closed it at the timeout
    wait_until(lambda: server.dropped["timeout"] == 1)
    after = dropped_on_metrics(server.url)
    assert after["timeout"] >= 1
    assert after["timeout"] - before["timeout"] == 1  # other live servers only add their own


def test_two_servers_add_up_and_a_closed_one_leaves_the_sum(serve_spanhooks: Serve) -> None:
    registry = CollectorRegistry()
    first = serve_spanhooks(registry=registry, timeout=0.3)
    second = serve_spanhooks(registry=registry, timeout=0.3)
    baseline = dropped_on_metrics(second.url)["timeout"]
    for server, idle in ((first, 2), (second, 1)):
        for _ in range(idle):
            with connect(server) as sock:
                assert read_to_end(sock) == b""
    wait_until(lambda: (first.dropped["timeout"], second.dropped["timeout"]) == (2, 1))
    assert dropped_on_metrics(second.url)["timeout"] - baseline == 3
    first.close()
    assert dropped_on_metrics(second.url)["timeout"] - baseline == 1


SETUP_WITH_SERVER_BOUNDS = """
import sys
import spanhooks

telemetry = spanhooks.setup(metrics_port=0, metrics_timeout=1.0, metrics_max_connections=2)
server = telemetry.metrics_server
print(server.port, server.timeout, server.max_connections, flush=True)
sys.stdin.read()  # serve until the test closes our stdin
"""


def test_setup_passes_the_timeout_and_the_connection_cap_to_the_server(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(SETUP_WITH_SERVER_BOUNDS))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    with subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**env, "SPANHOOKS_JSONL": "false"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None and child.stdin is not None
        port, timeout, cap = child.stdout.readline().split()
        assert (float(timeout), int(cap)) == (1.0, 2)
        url = f"http://127.0.0.1:{port}"
        with contextlib.ExitStack() as clients:
            started = time.monotonic()
            socks = [
                clients.enter_context(socket.create_connection(("127.0.0.1", int(port)), 10))
                for _ in range(3)  # one more than the cap: the oldest is closed to admit it
            ]
            assert read_to_end(socks[0]) == b""
            evicted_after = time.monotonic() - started
            assert [read_to_end(sock) for sock in socks[1:]] == [b"", b""]
            timed_out_after = time.monotonic() - started
        assert evicted_after < 0.9 <= timed_out_after < 4.0  # 1 s, not the default 5 s
        counted = dropped_on_metrics(url)
        child.stdin.close()
        assert child.wait(timeout=30) == 0
    assert counted == {**dict.fromkeys(DROP_REASONS, 0.0), "over_cap": 1.0, "timeout": 2.0}
