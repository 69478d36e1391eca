"""Process life: every finished span leaves the process, however and wherever it ends.

Real interpreters, real files, real signals and a real OTLP/HTTP receiver on 127.0.0.1:
exit paths flush to JSONL *and* OTLP; ``multiprocessing`` children export under fork,
forkserver and spawn (the raw SDK loses them); ``kill -9`` never leaves an invalid line and a
torn tail is repaired by the next writer; a fork while another thread emits neither deadlocks nor
exports the parent's spans twice; a long-running process's file is current within the flush
interval. ``tests/test_process_exit.py`` covers the JSONL side of the exit paths on its own.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

posix_only = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")


def strict_json(line: str | bytes) -> Any:
    """Parse one JSON document, rejecting the NaN/Infinity literals Python would accept."""

    def reject(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(line, parse_constant=reject)


def jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSONL file, strictly parsed (a missing file has none)."""
    if not path.exists():
        return []
    return [strict_json(line) for line in path.read_bytes().splitlines()]


@dataclass(frozen=True)
class WireSpan:
    """A span as it arrived at the OTLP receiver, ids in hex."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None


class _Server(http.server.ThreadingHTTPServer):
    # Twenty forked children may post at once: with the default backlog of 5 the kernel drops
    # connection attempts, and the client's retry a second later can outlast its exit deadline.
    request_queue_size = 128
    daemon_threads = True


class OtlpSink:
    """A tiny OTLP/HTTP trace receiver on 127.0.0.1 keeping every span it was sent."""

    def __init__(self) -> None:
        self.spans: list[WireSpan] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path.endswith("/v1/traces"):  # metrics are accepted, not kept
                    sink._keep(ExportTraceServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def _keep(self, request: ExportTraceServiceRequest) -> None:
        received = [
            WireSpan(
                span.name,
                span.trace_id.hex(),
                span.span_id.hex(),
                span.parent_span_id.hex() or None,
            )
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._lock:
            self.spans.extend(received)

    def names(self) -> list[str]:
        with self._lock:
            return [span.name for span in self.spans]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def sink() -> Iterator[OtlpSink]:
    receiver = OtlpSink()
    yield receiver
    receiver.close()


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without OTEL_*/SPANHOOKS_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    return {**env, **extra}


def write_script(tmp_path: Path, body: str, name: str = "app.py") -> Path:
    script = tmp_path / name
    script.write_text(textwrap.dedent(body))
    return script


def run_script(
    tmp_path: Path, body: str, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    script = write_script(tmp_path, body)
    done = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done


# -- exit paths: JSONL and OTLP both get every finished span ----------------------------------

EXIT_APP = """
import os, signal, sys, time
import spanhooks
from spanhooks import CallbackEvent
{before}
spanhooks.setup(otlp_endpoint=sys.argv[1])
for index in range(25):
    spanhooks.emit(CallbackEvent.TOOL_START, f"t{{index}}", {{}})
    spanhooks.emit(CallbackEvent.TOOL_END, f"t{{index}}", "ok")
print("ready", flush=True)
{ending}
"""

CHAINED_HANDLER = """
def graceful(signum, frame):
    os._exit(7)  # skips atexit: only spanhooks' SIGTERM hook can have flushed
signal.signal(signal.SIGTERM, graceful)
"""


@pytest.mark.parametrize(
    ("ending", "send", "before", "expected_code"),
    [
        ("", None, "", 0),
        ("sys.exit(3)", None, "", 3),
        ("time.sleep(60)", signal.SIGTERM, "", -signal.SIGTERM),
        ("time.sleep(60)", signal.SIGTERM, CHAINED_HANDLER, 7),
        ("time.sleep(60)", signal.SIGINT, "", -signal.SIGINT),
    ],
    ids=["normal-exit", "sys-exit", "sigterm-default", "sigterm-chained", "sigint"],
)
def test_every_exit_path_flushes_every_finished_span_to_jsonl_and_otlp(
    tmp_path: Path,
    sink: OtlpSink,
    ending: str,
    send: signal.Signals | None,
    before: str,
    expected_code: int,
) -> None:
    script = write_script(tmp_path, EXIT_APP.format(before=before, ending=ending))
    env = clean_env(OTEL_BSP_SCHEDULE_DELAY="60000")  # no timer export: only the exit path
    with subprocess.Popen(
        [sys.executable, str(script), sink.endpoint],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as app:
        assert app.stdout is not None and app.stdout.readline().strip() == "ready"
        if send is not None:
            app.send_signal(send)
        code = app.wait(timeout=60)
    expected = sorted(f"execute_tool t{i}" for i in range(25))
    assert code == expected_code
    assert sorted(r["name"] for r in jsonl(tmp_path / "spanhooks-traces.jsonl")) == expected
    assert sorted(sink.names()) == expected


# -- multiprocessing children: the raw SDK loses them, ProcessTarget exports them ------------

CHILD_APP = """
import multiprocessing, os, sys
from types import SimpleNamespace

MODE, METHOD, ENDPOINT, PATH = sys.argv[1:5]

if MODE == "raw":  # module level, so that spawn and forkserver children configure it too
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=ENDPOINT + "/v1/traces")))
    trace.set_tracer_provider(provider)

def raw_work(count):
    tracer = trace.get_tracer("raw")
    for index in range(count):
        with tracer.start_as_current_span(f"execute_tool child{index}"):
            pass

def spanhooks_work(count):
    import spanhooks
    for index in range(count):
        spanhooks.emit(spanhooks.CallbackEvent.TOOL_START, f"child{index}", {})
        spanhooks.emit(spanhooks.CallbackEvent.TOOL_END, f"child{index}", "ok")

if __name__ == "__main__":
    context = multiprocessing.get_context(METHOD)
    if MODE == "raw":
        with trace.get_tracer("raw").start_as_current_span("invoke_agent parent"):
            child = context.Process(target=raw_work, args=(10,))
            child.start()
            child.join()
    else:
        import spanhooks
        spanhooks.setup(jsonl_path=PATH, otlp_endpoint=ENDPOINT)
        spanhooks.emit(spanhooks.CallbackEvent.TURN_START, SimpleNamespace(display_name="parent"))
        child = context.Process(target=spanhooks.ProcessTarget(spanhooks_work), args=(10,))
        child.start()
        child.join()
        spanhooks.emit(spanhooks.CallbackEvent.TURN_END, None, None, [])
    assert child.exitcode == 0, child.exitcode
"""

START_METHODS = ["fork", "forkserver", "spawn"]


def child_spans(spans: list[WireSpan]) -> list[WireSpan]:
    return [span for span in spans if span.name.startswith("execute_tool child")]


@pytest.mark.parametrize(("method", "exported"), [("fork", 0), ("forkserver", 0), ("spawn", 10)])
def test_the_raw_sdk_loses_the_spans_of_children_that_end_through_os_exit(
    tmp_path: Path, sink: OtlpSink, method: str, exported: int
) -> None:
    """The baseline spanhooks fixes. Fork and forkserver children leave through ``os._exit``,
    skipping the SDK's atexit flush: 0 of 10 arrive. A spawn child leaves through
    ``sys.exit``, so a provider configured at import time flushes there (10 of 10); configured
    under ``if __name__ == "__main__"``, the spawn child would have no provider at all."""
    script = write_script(tmp_path, CHILD_APP)
    subprocess.run(
        [sys.executable, str(script), "raw", method, sink.endpoint, str(tmp_path / "x.jsonl")],
        cwd=tmp_path,
        env=clean_env(OTEL_BSP_SCHEDULE_DELAY="60000"),
        check=True,
        timeout=120,
    )
    assert "invoke_agent parent" in sink.names()
    assert len(child_spans(sink.spans)) == exported


@pytest.mark.parametrize("method", START_METHODS)
def test_a_process_target_child_exports_all_its_spans_under_the_parent(
    tmp_path: Path, sink: OtlpSink, method: str
) -> None:
    script = write_script(tmp_path, CHILD_APP)
    path = tmp_path / "traces.jsonl"
    subprocess.run(
        [sys.executable, str(script), "spanhooks", method, sink.endpoint, str(path)],
        cwd=tmp_path,
        env=clean_env(OTEL_BSP_SCHEDULE_DELAY="60000"),
        check=True,
        timeout=120,
    )
    records = jsonl(path)
    [parent] = [r for r in records if r["name"] == "invoke_agent parent"]
    in_file = [r for r in records if r["name"].startswith("execute_tool child")]
    on_wire = child_spans(sink.spans)
    assert sorted(r["name"] for r in in_file) == sorted(f"execute_tool child{i}" for i in range(10))
    assert sorted(s.span_id for s in on_wire) == sorted(r["span_id"] for r in in_file)
    assert {(s.trace_id, s.parent_span_id) for s in on_wire} == {
        (parent["trace_id"], parent["span_id"])
    }


POOL_APP = """
import multiprocessing, sys
from types import SimpleNamespace
import spanhooks
from spanhooks import CallbackEvent

def work(index):
    spanhooks.emit(CallbackEvent.TOOL_START, f"worker{index}", {})
    spanhooks.emit(CallbackEvent.TOOL_END, f"worker{index}", "ok")
    return index * index

if __name__ == "__main__":
    method, endpoint, path = sys.argv[1:4]
    spanhooks.setup(jsonl_path=path, otlp_endpoint=endpoint)
    spanhooks.emit(CallbackEvent.TURN_START, SimpleNamespace(display_name="pool"))
    with multiprocessing.get_context(method).Pool(2) as pool:
        assert pool.map(spanhooks.ProcessTarget(work), range(8)) == [i * i for i in range(8)]
    spanhooks.emit(CallbackEvent.TURN_END, None, None, [])
"""


@pytest.mark.parametrize("method", START_METHODS)
def test_a_pool_keeps_every_workers_span_under_the_submitting_span_on_the_wire(
    tmp_path: Path, sink: OtlpSink, method: str
) -> None:
    script = write_script(tmp_path, POOL_APP)
    path = tmp_path / "traces.jsonl"
    subprocess.run(
        [sys.executable, str(script), method, sink.endpoint, str(path)],
        cwd=tmp_path,
        env=clean_env(OTEL_BSP_SCHEDULE_DELAY="60000"),
        check=True,
        timeout=120,
    )
    [parent] = [s for s in sink.spans if s.name == "invoke_agent pool"]
    workers = [s for s in sink.spans if s.name.startswith("execute_tool worker")]
    assert sorted(s.name for s in workers) == sorted(f"execute_tool worker{i}" for i in range(8))
    assert {(s.trace_id, s.parent_span_id) for s in workers} == {(parent.trace_id, parent.span_id)}
    assert sorted(r["span_id"] for r in jsonl(path)) == sorted(s.span_id for s in sink.spans)


# -- kill -9 mid-write -------------------------------------------------------------------------

KILL_DRIVER = """
import json, os, random, signal, sys, time
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from spanhooks import JsonlSpanExporter

path, runs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
memory = InMemorySpanExporter()
provider = TracerProvider(shutdown_on_exit=False)
provider.add_span_processor(SimpleSpanProcessor(memory))
for index in range(8):  # large spans: each export is one write(2) of about 800 kB
    with provider.get_tracer("kill").start_as_current_span(
        f"s{index}", attributes={"pad": "x" * 100_000, "nan": float("nan")}
    ):
        pass
spans = memory.get_finished_spans()
rng = random.Random(seed)
report = {"runs": 0, "lines": 0, "invalid": [], "torn": 0, "repaired": 0}
torn_before = False
for run in range(runs):
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: open (repairing any torn tail), then write until killed
        os.close(ready_r)
        exporter = JsonlSpanExporter(path)
        exporter.export(spans[:1])
        os.write(ready_w, b"1")
        while True:
            exporter.export(spans)
    os.close(ready_w)
    os.read(ready_r, 1)
    os.close(ready_r)
    time.sleep(rng.uniform(0.0, 0.05))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    with open(path, "rb") as handle:
        data = handle.read()
    end = data.rfind(b"\\n") + 1
    lines = data[:end].splitlines()
    for line in lines:
        try:
            json.loads(line, parse_constant=lambda c: 1 / 0)
        except (ValueError, ZeroDivisionError):
            report["invalid"].append(line[:80].decode(errors="replace"))
    report["lines"] += len(lines)
    report["repaired"] += torn_before and bool(lines) and not report["invalid"]
    torn_before = end != len(data)
    report["torn"] += torn_before
    # Keep the file small: drop the checked lines, leave the torn tail for the next child.
    with open(path, "r+b") as handle:
        handle.write(data[end:])
        handle.truncate(len(data) - end)
    report["runs"] += 1
print(json.dumps(report))
"""


@posix_only
@pytest.mark.slow
def test_kill_9_mid_write_never_leaves_an_invalid_line_and_a_torn_tail_is_repaired(
    tmp_path: Path,
) -> None:
    """200 writers killed at random moments, two files in parallel, 100 kills each.

    After every kill, every newline-terminated line written since the last check must be valid
    JSON; a torn tail is left in place, so the next writer must cut it before appending or its
    first record would be glued to the fragment and fail to parse.
    """
    script = write_script(tmp_path, KILL_DRIVER, "driver.py")
    drivers = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / f"kill{n}.jsonl"), "100", str(n)],
            cwd=tmp_path,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # the repairs' warnings
            text=True,
        )
        for n in range(2)
    ]
    reports = []
    for driver in drivers:
        out, _ = driver.communicate(timeout=120)
        assert driver.returncode == 0
        reports.append(json.loads(out))
    assert sum(r["runs"] for r in reports) == 200
    assert [r["invalid"] for r in reports] == [[], []]
    assert sum(r["lines"] for r in reports) > 200
    torn = sum(r["torn"] for r in reports)
    assert torn >= 1, "no kill landed mid-write: the repair was not exercised"
    # Every torn tail but possibly each file's last was followed by a run that appended.
    assert sum(r["repaired"] for r in reports) >= torn - 2


# -- fork while another thread emits ----------------------------------------------------------

FORK_APP = """
import os, sys, threading, time, warnings
from types import SimpleNamespace
from prometheus_client import CollectorRegistry
import spanhooks
from spanhooks import CallbackEvent

endpoint, path, forks = sys.argv[1], sys.argv[2], int(sys.argv[3])
spanhooks.setup(jsonl_path=path, otlp_endpoint=endpoint, registry=CollectorRegistry())
spanhooks.register(CallbackEvent.TOOL_START, lambda tool_name, tool_args: None)
stop = threading.Event()

def churn():
    spanhooks.emit(CallbackEvent.TURN_START, SimpleNamespace(display_name="churn"))
    while not stop.is_set():
        spanhooks.emit(CallbackEvent.TOOL_START, "churn", {})
        spanhooks.emit(CallbackEvent.TOOL_END, "churn", "ok")
        time.sleep(0)
    spanhooks.emit(CallbackEvent.TURN_END, None, None, [])

emitter = threading.Thread(target=churn)
emitter.start()
children = {}
for index in range(forks):
    time.sleep(0.005)
    with warnings.catch_warnings():  # Python 3.12+ warns when a threaded process forks
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        spanhooks.emit(CallbackEvent.TOOL_START, f"child{index}", {})
        spanhooks.emit(CallbackEvent.TOOL_END, f"child{index}", "ok")
        spanhooks.shutdown()
        os._exit(0)
    children[pid] = index
stop.set()
emitter.join()
deadline = time.monotonic() + 60
hung = []
while children and time.monotonic() < deadline:
    for pid in list(children):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0, status
            del children[pid]
    time.sleep(0.01)
for pid in children:
    os.kill(pid, 9)
print("hung", sorted(children.values()), flush=True)
"""


@posix_only
def test_a_fork_while_another_thread_emits_gives_a_child_that_exports_its_own_spans_once(
    tmp_path: Path, sink: OtlpSink
) -> None:
    path = tmp_path / "traces.jsonl"
    done = run_script(
        tmp_path, FORK_APP, sink.endpoint, str(path), "20", OTEL_BSP_SCHEDULE_DELAY="200"
    )
    assert done.stdout.strip() == "hung []"  # no child deadlocked
    records = jsonl(path)
    children = sorted(r["name"] for r in records if r["name"].startswith("execute_tool child"))
    assert children == sorted(f"execute_tool child{i}" for i in range(20))
    wire = sorted(s.name for s in sink.spans if s.name.startswith("execute_tool child"))
    assert wire == children, done.stderr
    # A child never exports the spans it inherited open from the parent's emitting thread.
    span_ids = [r["span_id"] for r in records]
    assert len(span_ids) == len(set(span_ids))
    assert not [r for r in records if r["status"]["code"] == "ERROR"]


# -- NaN and infinities through the whole pipeline ---------------------------------------------


def test_nan_and_infinite_values_stay_valid_json_end_to_end(tmp_path: Path, sink: OtlpSink) -> None:
    run_script(
        tmp_path,
        f"""
        import math
        from opentelemetry import trace
        import spanhooks
        from spanhooks import CallbackEvent
        spanhooks.setup(otlp_endpoint={sink.endpoint!r}, capture_content=True)
        spanhooks.emit(CallbackEvent.TOOL_START, "measure", {{"loss": math.nan, "scale": [math.inf, -math.inf]}})
        spanhooks.emit(CallbackEvent.TOOL_END, "measure", {{"score": math.inf}})
        odd = {{"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "list": [1.0, math.nan]}}
        with trace.get_tracer("foreign").start_as_current_span("foreign", attributes=odd):
            pass
        """,
    )
    records = {r["name"]: r for r in jsonl(tmp_path / "spanhooks-traces.jsonl")}  # strict parse
    tool = records["execute_tool measure"]["attributes"]
    assert json.loads(tool["gen_ai.tool.call.arguments"]) == {
        "loss": "nan",
        "scale": ["inf", "-inf"],
    }
    assert json.loads(tool["gen_ai.tool.call.result"]) == {"score": "inf"}
    assert records["foreign"]["attributes"] == {
        "nan": "NaN",
        "inf": "Infinity",
        "ninf": "-Infinity",
        "list": [1.0, "NaN"],
    }
    assert sorted(sink.names()) == ["execute_tool measure", "foreign"]


# -- a long-running process's file is current within the flush interval ----------------------

DEFAULT_SCHEDULE_DELAY_S = (
    5.0  # OTEL_BSP_SCHEDULE_DELAY's default, documented in lifecycle/setup.py
)


@pytest.mark.slow
def test_a_demo_killed_after_12_seconds_of_60_has_written_its_finished_spans(
    tmp_path: Path,
) -> None:
    path = tmp_path / "demo.jsonl"
    demo = subprocess.Popen(
        [sys.executable, "-m", "spanhooks", "demo", "--duration", "60", "-o", str(path)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = time.time_ns()
    try:
        demo.wait(timeout=12)
    except subprocess.TimeoutExpired:
        demo.kill()  # SIGKILL: no handler, no atexit; only what was already written counts
        killed = time.time_ns()
    else:
        pytest.fail(f"the 60 s demo ended early with {demo.returncode}")
    demo.wait()
    records = jsonl(path)
    agents = [r for r in records if r["name"].startswith("invoke_agent")]
    assert len(agents) >= 2, "at least the runs finished before the last flush are on disk"
    assert all(started <= r["end_time_unix_nano"] <= killed for r in records)
    newest = max(r["end_time_unix_nano"] for r in records)
    # At most one schedule delay behind, plus slack for a loaded machine.
    assert (killed - newest) / 1e9 <= 2 * DEFAULT_SCHEDULE_DELAY_S
