"""Privacy and exposure: what is never recorded, redaction before any processor sees a value,
a canary secret absent from every output, where /metrics listens, and bounded label sets."""

from __future__ import annotations

import http.client
import http.server
import json
import logging
import os
import re
import shutil
import ssl
import subprocess
import sys
import textwrap
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from opentelemetry.context import Context
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from spanhooks import AttributePolicy, CallbackEvent, JSONLCallback
from spanhooks.export.accounting import SpanMetricsProcessor
from spanhooks.metrics import families as _metrics
from spanhooks.metrics.cardinality import MAX_SERIES, OTHER, LabelLimiter, SeriesLimiter
from spanhooks.metrics.families import EVENTS, BucketHistogram, counter, install_collector
from spanhooks.metrics.server import start_metrics_server
from spanhooks.testing import Capture, capture
from spanhooks.tracing.redacted import redacted
from spanhooks.util.log import MAX_LOG_MESSAGE_LENGTH, MAX_LOG_TRACEBACK_LENGTH, safe_url
from spanhooks.util.redaction import REDACTED
from spanhooks.vocab.logillm import ModuleEndEvent

SECRET = "CANARY-sk-7f3a9c1e"
"""Distinct enough that no figure, id or timestamp can contain it by chance."""


def everything(span: ReadableSpan) -> str:
    """A span's name, attributes, events and status as one string to search."""
    return json.dumps(
        {
            "name": span.name,
            "attributes": dict(span.attributes or {}),
            "events": [(e.name, dict(e.attributes or {})) for e in span.events],
            "status": span.status.description,
        },
        default=str,
    )


def tool_call(cap: Capture, arguments: Any, result: Any = "ok", **extra: Any) -> ReadableSpan:
    cap.clear()
    cap.manager.emit(CallbackEvent.TOOL_START, "search", arguments, **extra)
    cap.manager.emit(CallbackEvent.TOOL_END, "search", result)
    [span] = cap.spans()
    return span


# -- defaults ---------------------------------------------------------------------------------


def test_content_is_not_recorded_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    with capture() as cap:
        span = tool_call(cap, {"query": SECRET}, {"hits": SECRET})
        cap.manager.emit(CallbackEvent.RESPONSE, SECRET)
    assert cap.manager.capture_content is False
    assert "gen_ai.tool.call.arguments" not in (span.attributes or {})
    assert SECRET not in everything(span)


@pytest.mark.parametrize(
    "key",
    [
        "api_key",
        "apiKey",
        "authorization",
        "password",
        "token",
        "access_token",
        "client_secret",
        "x-api-key",
        "cookie",
        "credentials",
    ],
)
def test_values_under_sensitive_keys_are_redacted_even_with_capture_on(key: str) -> None:
    with capture(capture_content=True) as cap:
        span = tool_call(
            cap, {key: SECRET, "nested": [{key: SECRET}]}, **{key.replace("-", "_"): SECRET}
        )
    assert SECRET not in everything(span)
    assert REDACTED in everything(span)


# -- the redaction hook -----------------------------------------------------------------------


def test_patterns_replace_matches_in_strings_json_sequences_span_names_and_errors() -> None:
    policy = AttributePolicy(capture_content=True, redact_patterns=[r"CANARY-sk-\w+"])
    with capture() as cap:
        cap.manager.set_attribute_policy(policy)
        span = tool_call(cap, {"deep": [[{"text": f"key is {SECRET}!"}]]}, ValueError(SECRET))
        cap.manager.emit(CallbackEvent.TOOL_START, f"tool-{SECRET}", (SECRET, "b"))
        cap.manager.emit(CallbackEvent.TOOL_END, f"tool-{SECRET}", "done")
        named = cap.spans()[-1]
    assert SECRET not in everything(span) + everything(named)
    assert json.loads(str((span.attributes or {})["gen_ai.tool.call.arguments"])) == {
        "deep": [[{"text": f"key is {REDACTED}!"}]]
    }
    assert named.name == f"execute_tool tool-{REDACTED}"
    assert (named.attributes or {})["gen_ai.tool.call.arguments"] == (REDACTED, "b")
    [error] = [e for e in span.events if e.name == "exception"]
    assert (error.attributes or {})["exception.message"] == REDACTED
    assert span.status.description == f"ValueError: {REDACTED}"


def test_compiled_patterns_keep_their_flags() -> None:
    policy = AttributePolicy(
        capture_content=True,
        redact_patterns=[
            re.compile("canary-sk-\\w+", re.IGNORECASE),
            re.compile("^pin \\d+$", re.M),
        ],
    )
    assert policy.scrub(f"{SECRET}\npin 1234\nok") == f"{REDACTED}\n{REDACTED}\nok"


def test_a_match_is_redacted_before_truncation_so_no_fragment_survives() -> None:
    policy = AttributePolicy(capture_content=True, max_length=30, redact_patterns=[SECRET])
    with capture() as cap:
        cap.manager.set_attribute_policy(policy)
        span = tool_call(cap, "x" * 20 + SECRET)
    assert (span.attributes or {})["gen_ai.tool.call.arguments"] == "x" * 20 + REDACTED
    assert SECRET[:8] not in everything(span)


def test_a_redactor_replaces_or_drops_values_by_key() -> None:
    def redactor(key: str, value: Any) -> Any:
        if key == "gen_ai.tool.call.arguments":
            return None
        if isinstance(value, str):
            return value.replace("search", "s*****")
        return value

    with capture(capture_content=True) as cap:
        cap.manager.set_attribute_policy(AttributePolicy(capture_content=True, redactor=redactor))
        span = tool_call(cap, {"q": SECRET}, "a search result")
    attributes = span.attributes or {}
    assert "gen_ai.tool.call.arguments" not in attributes
    assert attributes["gen_ai.tool.name"] == "s*****"
    assert attributes["gen_ai.tool.call.result"] == "a s***** result"


def test_a_redactor_that_raises_fails_closed_counted_and_logged_without_the_value(
    spanhooks_logs: pytest.LogCaptureFixture,
) -> None:
    def broken(key: str, value: Any) -> Any:
        if key == "gen_ai.tool.call.arguments":
            raise RuntimeError(f"cannot redact {value}")  # quotes the value it was given
        return value

    policy = AttributePolicy(capture_content=True, redactor=broken)
    with capture() as cap:
        cap.manager.set_attribute_policy(policy)
        span = tool_call(cap, {"q": SECRET})
        tool_call(cap, {"q": SECRET})
    assert "gen_ai.tool.call.arguments" not in (span.attributes or {})
    assert (span.attributes or {})["gen_ai.tool.name"] == "search"
    assert policy.redaction_failures == 2
    assert SECRET not in spanhooks_logs.text
    assert "redactor raised RuntimeError for attribute 'gen_ai.tool.call.arguments'" in (
        spanhooks_logs.text
    )


class Snooper(SpanProcessor):
    """A user's span processor: remembers what it was shown when a span started and ended."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.seen.append(json.dumps(dict(span.attributes or {}), default=str) + span.name)

    def on_end(self, span: ReadableSpan) -> None:
        self.seen.append(everything(span))


def test_redaction_happens_before_any_span_processor_sees_the_span() -> None:
    snooper = Snooper()
    policy = AttributePolicy(capture_content=True, redact_patterns=[SECRET])
    with capture() as cap:
        cap.provider.add_span_processor(snooper)
        cap.manager.set_attribute_policy(policy)
        tool_call(cap, {"q": SECRET}, SECRET)
        cap.manager.emit(CallbackEvent.RESPONSE, SECRET)
    assert len(snooper.seen) == 4
    assert not [seen for seen in snooper.seen if SECRET in seen]


def test_without_a_hook_the_policy_does_no_redaction_work() -> None:
    policy = AttributePolicy(capture_content=True)
    assert policy.redactor is None and policy._pattern is None
    assert policy.scrub(SECRET) is SECRET


# -- the canary: one secret through every API, capture off, into every output ----------------

CANARY_APP = """
import asyncio, logging, sys, urllib.request
from types import SimpleNamespace

logging.basicConfig(
    filename=sys.argv[2], level=logging.DEBUG, format="%(name)s %(levelname)s %(message)s"
)
for name in ("spanhooks", "opentelemetry", "urllib3", "requests"):
    logging.getLogger(name).setLevel(logging.DEBUG)

import spanhooks
from spanhooks import CallbackEvent
from spanhooks.ops import (
    EventRouter, HandlerContext, MessageContext, SessionState, SessionStatus,
    invoke_handler_sync, register_conversation_handler,
)
from spanhooks.vocab.logillm import (
    ModuleEndEvent, ModuleStartEvent, ProviderRequestEvent, ProviderResponseEvent,
)

S = sys.argv[1]
telemetry = spanhooks.setup(metrics_port=0, service_name="canary", jsonl_path=sys.argv[3])
seen = []
spanhooks.register(
    CallbackEvent.TOOL_START, lambda tool_name, tool_args, **kw: seen.append(tool_args)
)

spanhooks.register(CallbackEvent.RESPONSE, lambda text: 1 / 0)  # logged with its traceback
spanhooks.emit(CallbackEvent.TOOL_END, "never-started", S)  # logged as unmatched
spanhooks.emit(CallbackEvent.TURN_START, SimpleNamespace(display_name="bot"))
spanhooks.emit(CallbackEvent.TOOL_START, "search", {"q": S}, api_key=S, token=S, password=S)
spanhooks.emit(CallbackEvent.TOOL_END, "search", {"hits": [S]})
spanhooks.emit(CallbackEvent.API_REQUEST, {
    "model": "gpt-test", "messages": [{"role": "user", "content": S}],
    "api_key": S, "headers": {"Authorization": "Bearer " + S},
})
spanhooks.emit(CallbackEvent.API_RESPONSE, {"content": S, "usage": {"input_tokens": 3}})
spanhooks.emit(CallbackEvent.RESPONSE, S)
spanhooks.emit(CallbackEvent.STDERR_WRITE, S)

async def agent():
    await spanhooks.emit_async(CallbackEvent.TOOL_START, "fetch", {"url": S})
    await spanhooks.emit_async(CallbackEvent.TOOL_END, "fetch", S)

asyncio.run(agent())
spanhooks.emit(CallbackEvent.TURN_END, None, {"content": S}, [S])
spanhooks.trigger("on_message", user_id="u1", message=S, timestamp=1.0)
spanhooks.emit(ModuleStartEvent(module="qa", inputs={"question": S}))
spanhooks.emit(ModuleEndEvent(module="qa", outputs={"answer": S}, prediction=S))
spanhooks.emit(ProviderRequestEvent(provider="p", messages=[S], parameters={"api_key": S}))
spanhooks.emit(ProviderResponseEvent(provider="p", response=S))

router = EventRouter()
router.register_realtime_handler("session.created", lambda data: None)
router.route("session.created", {"text": S, "api_key": S})
session = SessionState(conversation_id="c1", user_id="u1")
session.update_status(SessionStatus.ACTIVE)
register_conversation_handler(lambda message, context: None)
invoke_handler_sync(
    HandlerContext.CONVERSATION, S,
    MessageContext(sender_id="u1", receiver_id="bot", organization_id="o1",
                   handler_context=HandlerContext.CONVERSATION, metadata={"token": S}),
)

assert seen == [{"q": S}, {"url": S}], seen  # callbacks still get the real values
spanhooks.force_flush()
with urllib.request.urlopen(telemetry.metrics_server.url + "/metrics", timeout=10) as reply:
    open(sys.argv[4], "wb").write(reply.read())
print(telemetry.metrics_server.host)
spanhooks.shutdown()
"""


class OtlpSink(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that keeps every request's raw body and headers (traces and
    metrics alike: the canary must be in neither)."""

    bodies: ClassVar[list[bytes]] = []
    trace_bodies: ClassVar[list[bytes]] = []
    headers_seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append(body)
        if self.path.endswith("/v1/traces"):
            type(self).trace_bodies.append(body)
        type(self).headers_seen.append(str(self.headers))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def otlp_sink() -> Iterator[str]:
    OtlpSink.bodies, OtlpSink.trace_bodies, OtlpSink.headers_seen = [], [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OtlpSink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return {**env, **extra}


def test_a_canary_secret_reaches_no_otlp_payload_jsonl_debug_log_or_metrics_scrape(
    tmp_path: Path, otlp_sink: str
) -> None:
    header_secret, password = "HDR-canary-41d2", "PW-canary-8e7b"
    paths = {name: tmp_path / name for name in ("app.py", "debug.log", "traces.jsonl", "scrape")}
    paths["app.py"].write_text(textwrap.dedent(CANARY_APP))
    done = subprocess.run(
        [sys.executable, str(paths["app.py"]), SECRET, *map(str, list(paths.values())[1:])],
        cwd=tmp_path,
        env=clean_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://canary:{password}@{otlp_sink}",
            OTEL_EXPORTER_OTLP_HEADERS=f"x-api-key={header_secret}",
        ),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "127.0.0.1"  # /metrics bound to loopback by default
    otlp = b"".join(OtlpSink.bodies)
    names = []
    for body in OtlpSink.trace_bodies:  # uncompressed protobuf, so a byte search is meaningful
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        names += [
            s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans
        ]
    assert "execute_tool search" in names and len(names) >= 9  # the sink really got spans...
    assert any(header_secret in h for h in OtlpSink.headers_seen)  # ...with the header sent
    assert any("Authorization: Basic" in h for h in OtlpSink.headers_seen)  # and the URL user
    outputs = {
        "otlp": otlp,
        "jsonl": paths["traces.jsonl"].read_bytes(),
        "debug log": paths["debug.log"].read_bytes(),
        "metrics": paths["scrape"].read_bytes(),
        "stdout+stderr": done.stdout + done.stderr,
    }
    assert (
        b"execute_tool search" in outputs["jsonl"]
        and b"spanhooks_events_total" in (outputs["metrics"])
    )
    assert b"DEBUG" in outputs["debug log"] and b"ZeroDivisionError" in outputs["debug log"]
    assert b"ignored: no open start to close" in outputs["debug log"]
    for secret in (SECRET, header_secret, password):
        leaks = {name: data.count(secret.encode()) for name, data in outputs.items()}
        assert leaks == dict.fromkeys(outputs, 0), secret


def test_setup_takes_redact_patterns_from_the_environment(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import spanhooks
            from spanhooks import CallbackEvent
            spanhooks.setup(capture_content=True)
            spanhooks.emit(CallbackEvent.TOOL_START, "t", {"q": "card 4111-1111-1111-1111"})
            spanhooks.emit(CallbackEvent.TOOL_END, "t", "ok")
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=clean_env(SPANHOOKS_REDACT_PATTERN=r"\d{4}(-\d{4}){3}"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    [line] = (tmp_path / "spanhooks-traces.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert json.loads(record["attributes"]["gen_ai.tool.call.arguments"]) == {
        "q": f"card {REDACTED}"
    }


ERRORS_APP = """
import sys
from prometheus_client import CollectorRegistry, generate_latest
import spanhooks
from spanhooks import CallbackEvent
from spanhooks.ops import handle_error

secret, path = sys.argv[1], sys.argv[2]
registry = CollectorRegistry()
spanhooks.setup(
    jsonl_path=path, registry=registry, redact_patterns=[r"CANARY-sk-\\w+"],
    capture_content=True,  # a handled error's stack trace is content: recorded only on opt-in
)

def leaky(tool_name, tool_args):
    raise ValueError(f"refused {secret}")

spanhooks.register(CallbackEvent.TOOL_START, leaky)
spanhooks.emit(CallbackEvent.TOOL_START, "search", {})
spanhooks.emit(CallbackEvent.TOOL_END, "search", "ok")
handle_error(RuntimeError(f"token {secret} expired"), "tool")
spanhooks.shutdown()
"""


def run_with_secret(tmp_path: Path, app: str, path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``app`` in a fresh interpreter with the canary and a JSONL path as its arguments."""
    (tmp_path / "app.py").write_text(app)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "app.py"), SECRET, str(path)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_setup_patterns_scrub_callback_failures_and_handled_errors(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    run_with_secret(tmp_path, ERRORS_APP, path)
    text = path.read_text()
    assert SECRET not in text
    records = [json.loads(line) for line in text.splitlines()]
    events = {e["name"]: e["attributes"] for r in records for e in r["events"]}
    assert events["spanhooks.callback.error"]["exception.message"] == f"refused {REDACTED}"
    assert events["exception"]["exception.message"] == f"token {REDACTED} expired"
    assert SECRET not in events["exception"]["exception.stacktrace"]


OPS_APP = """
import sys
import spanhooks
from spanhooks import CallbackEvent
from spanhooks.ops import SessionState, SessionStatus, handle_error

secret, path = sys.argv[1], sys.argv[2]
spanhooks.setup(jsonl_path=path, redact_patterns=[r"CANARY-sk-\\w+"])
handle_error(RuntimeError("expired"), "tool", operation=f"refresh {secret}")
session = SessionState(f"conversation-{secret}")
session.update_status(SessionStatus.ACTIVE, reason=f"user said {secret}")
spanhooks.emit(f"unknown-{secret}")
spanhooks.shutdown()
"""


def test_setup_patterns_scrub_what_the_subsystems_record_and_log(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    done = run_with_secret(tmp_path, OPS_APP, path)
    text = path.read_text()
    assert REDACTED in text  # the operation, the session id and the reason were there
    assert SECRET not in text
    assert SECRET not in done.stderr + done.stdout


def test_redactor_failures_are_counted_on_metrics(tmp_path: Path) -> None:
    def broken(key: str, value: Any) -> Any:
        raise RuntimeError("no")

    registry = CollectorRegistry()
    install_collector(registry)

    def scraped() -> float:
        value = registry.get_sample_value("spanhooks_redaction_failures_total")
        assert value is not None
        return value

    before = scraped()
    policy = AttributePolicy(capture_content=True, redactor=broken)
    with capture() as cap:
        cap.manager.set_attribute_policy(policy)
        tool_call(cap, {"q": "x"})
    assert policy.redaction_failures == 3  # the tool's name and arguments, then its result
    assert scraped() - before == 3


def test_an_invalid_redact_pattern_in_the_environment_stops_setup(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import spanhooks; spanhooks.setup()"],
        cwd=tmp_path,
        env=clean_env(SPANHOOKS_REDACT_PATTERN="(unclosed"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "ValueError: SPANHOOKS_REDACT_PATTERN: redact pattern '(unclosed' does not compile" in (
        done.stderr
    )


# -- what has no policy of its own: spanhooks' log lines and /metrics label values -------------


@pytest.fixture
def secret_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    """The canary as the process-wide pattern, as ``SPANHOOKS_REDACT_PATTERN`` sets it."""
    monkeypatch.setenv("SPANHOOKS_REDACT_PATTERN", r"CANARY-sk-\w+")


def raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:
        return caught


def test_spanhooks_log_lines_and_their_tracebacks_are_scrubbed(
    secret_pattern: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="spanhooks")
    error = raised(ValueError(f"refused {SECRET}"))
    logging.getLogger("spanhooks").warning("call %s failed", SECRET, exc_info=error)
    [record] = caplog.records
    assert record.getMessage() == f"call {REDACTED} failed"
    assert record.exc_info is None  # no handler can format the original traceback again
    assert record.exc_text is not None and f"ValueError: refused {REDACTED}" in record.exc_text
    assert SECRET not in caplog.text and REDACTED in caplog.text


def test_spanhooks_log_lines_and_tracebacks_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="spanhooks")
    deep = raised(RuntimeError("x" * 100_000))
    logging.getLogger("spanhooks").warning("%s", "y" * 1_000_000, exc_info=deep)
    [record] = caplog.records
    assert len(record.getMessage()) == MAX_LOG_MESSAGE_LENGTH
    assert record.exc_text is not None and len(record.exc_text) <= MAX_LOG_TRACEBACK_LENGTH
    assert record.exc_text.startswith("…")  # the tail is kept: it names the error


def test_a_log_argument_that_cannot_be_printed_still_gives_its_line(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    caplog.set_level(logging.WARNING, logger="spanhooks")
    logging.getLogger("spanhooks").warning("value %r", Unprintable())
    assert [r.getMessage() for r in caplog.records] == ["value %r (arguments not representable)"]
    assert "Logging error" not in capsys.readouterr().err


def test_metric_label_values_are_scrubbed_at_scrape_time(secret_pattern: None) -> None:
    spans = SpanMetricsProcessor()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(spans)
    operation = {"gen_ai.operation.name": f"op {SECRET}"}
    with provider.get_tracer("other-instrumentation").start_as_current_span(
        "x", attributes=operation
    ):
        pass
    registry = CollectorRegistry()
    install_collector(registry)
    text = generate_latest(registry).decode()
    provider.shutdown()
    assert SECRET not in text
    assert f'operation="op {REDACTED}"' in text


def test_the_logillm_jsonl_logger_applies_the_environment_pattern_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPANHOOKS_REDACT_PATTERN", r"CANARY-sk-\w+")
    path = tmp_path / "execution.jsonl"
    logger = JSONLCallback(path, capture_content=True)
    with capture() as cap:
        cap.manager.register(logger)
        cap.manager.emit(ModuleEndEvent(module="qa", outputs={"answer": f"it is {SECRET}"}))
    logger.close()
    [line] = path.read_text().splitlines()
    assert SECRET not in line and f"it is {REDACTED}" in line


def test_replay_prints_its_endpoint_without_credentials(tmp_path: Path, otlp_sink: str) -> None:
    trace = tmp_path / "t.jsonl"
    with capture() as cap:
        tool_call(cap, {})
        from spanhooks import JsonlSpanExporter

        exporter = JsonlSpanExporter(trace)
        exporter.export(cap.spans())
        exporter.shutdown()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "spanhooks",
            "replay",
            str(trace),
            "--endpoint",
            f"http://user:PW-canary-8e7b@{otlp_sink}?token=abc",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert done.returncode == 0, done.stderr
    assert "PW-canary" not in done.stdout + done.stderr and "abc" not in done.stdout
    assert f"1 span(s) sent to http://[REDACTED]@{otlp_sink}?token=[REDACTED]" in done.stdout
    assert safe_url("not a url at all") == "not a url at all"


# -- where /metrics listens --------------------------------------------------------------------


def fetch(url: str, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_metrics_and_health_bind_loopback_unless_told_otherwise() -> None:
    server = start_metrics_server(CollectorRegistry(), port=0, health=lambda: {"status": "healthy"})
    try:
        assert server.host == "127.0.0.1"
        assert fetch(server.url + "/health") == (200, b'{"status": "healthy"}')
    finally:
        server.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_metrics_over_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    registry = CollectorRegistry()
    Counter("tls_probe", "Served over TLS.", registry=registry).inc()
    server = start_metrics_server(registry, port=0, ssl_context=server_context)
    try:
        assert server.url.startswith("https://127.0.0.1:")
        client = ssl.create_default_context(cafile=str(cert))
        status, body = fetch(server.url + "/metrics", client)
        assert status == 200 and b"tls_probe_total 1.0" in body
        with pytest.raises(urllib.error.URLError):  # an untrusted certificate is refused
            fetch(server.url + "/metrics", ssl.create_default_context())
        with pytest.raises((ConnectionError, urllib.error.URLError, http.client.HTTPException)):
            fetch(server.url.replace("https://", "http://") + "/metrics")
    finally:
        server.close()


# -- label cardinality ------------------------------------------------------------------------


def test_a_label_keeps_its_first_n_values_then_reports_other() -> None:
    limiter = LabelLimiter(3)
    assert [limiter.limit(v) for v in "abcdea"] == ["a", "b", "c", OTHER, OTHER, "a"]
    assert len(limiter) == 3 and limiter.full


def test_the_cap_is_exact_when_threads_race() -> None:
    limiter = SeriesLimiter(("model",), max_values=100)
    results: list[set[tuple[str, ...]]] = [set() for _ in range(8)]

    def work(index: int) -> None:
        for i in range(2_000):
            results[index].add(limiter.limit((f"model-{(i * 7 + index) % 5_000}",)))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    distinct = set().union(*results)
    assert len(distinct - {(OTHER,)}) == 100 and (OTHER,) in distinct


def test_series_limiter_rejects_the_wrong_number_of_values() -> None:
    with pytest.raises(ValueError, match="expected 2 label values"):
        SeriesLimiter(("a", "b")).limit(("x",))
    with pytest.raises(TypeError):
        SeriesLimiter("model")
    with pytest.raises(ValueError):
        LabelLimiter(0)


NAMES = [f"tool-{i}" for i in range(10_000)]


def test_10_000_names_in_a_counter_family_give_at_most_the_series_limit() -> None:
    family = counter(
        EVENTS._replace(name="privacy_test_events"), [(("set", n), 1.0) for n in NAMES]
    )
    assert len(family.samples) == MAX_SERIES + 1
    other = [s for s in family.samples if s.labels["event"] == OTHER]
    assert [s.value for s in other] == [10_000 - MAX_SERIES]
    assert sum(s.value for s in family.samples) == 10_000  # nothing lost, only pooled


def test_10_000_operations_in_a_histogram_give_at_most_the_series_limit() -> None:
    histogram = BucketHistogram()
    for name in NAMES:
        histogram.observe(("set", name, "ok"), 0.01)
    series = set(histogram._series)
    assert len(series) == MAX_SERIES + 1
    assert (OTHER, OTHER, OTHER) in series


def test_10_000_tool_and_model_names_through_emit_keep_every_family_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Scrape-time caps are sticky for the life of the process; start from none admitted, as a
    # fresh process does, so the test does not depend on what earlier tests exposed.
    monkeypatch.setattr(_metrics, "_limiters", {})
    provider = TracerProvider(shutdown_on_exit=False)
    spans = SpanMetricsProcessor()
    provider.add_span_processor(spans)
    with capture(capture_content=False) as cap:
        cap.manager.enable_metrics()
        cap.provider.add_span_processor(spans)
        tracer = provider.get_tracer("other-instrumentation")
        for index, name in enumerate(NAMES):
            cap.manager.emit(CallbackEvent.TOOL_START, name, {})
            cap.manager.emit(CallbackEvent.TOOL_END, name, "ok")
            cap.manager.emit(CallbackEvent.API_REQUEST, {"model": f"model-{index}"})
            cap.manager.emit(CallbackEvent.API_RESPONSE, {"model": f"model-{index}"})
            operation = {"gen_ai.operation.name": f"op-{index}"}
            with tracer.start_as_current_span("x", attributes=operation):
                pass
        registry = CollectorRegistry()
        install_collector(registry)
        text = generate_latest(registry).decode()
    provider.shutdown()
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if k != "le"}
            series.setdefault(family.name, set()).add(json.dumps(labels, sort_keys=True))
    assert max(len(s) for s in series.values()) <= MAX_SERIES + 1
    assert len(series["spanhooks_span_duration_seconds"]) == MAX_SERIES + 1
    assert not re.search(r'"(tool|model)-\d+"', text)  # names are never labels themselves...
    assert 'operation="other"' in text  # ...and free-form operations are pooled


# -- multiprocess mode --------------------------------------------------------------------------

WORKER = """
import os, sys
import spanhooks
from spanhooks import CallbackEvent
spanhooks.setup(jsonl=False)
spanhooks.emit(CallbackEvent.TOOL_START, "t", {})
spanhooks.emit(CallbackEvent.TOOL_END, "t", "ok")
spanhooks.force_flush()
print(os.getpid())
"""


def test_mark_process_dead_removes_a_dead_workers_live_gauge_files(tmp_path: Path) -> None:
    directory = tmp_path / "multiproc"
    directory.mkdir()
    env = clean_env(PROMETHEUS_MULTIPROC_DIR=str(directory))
    done = subprocess.run(
        [sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    pid = done.stdout.strip()
    live = sorted(p.name for p in directory.glob(f"gauge_live*_{pid}.db"))
    assert live  # the dead worker left live gauges (open spans, queued spans) behind
    totals = sorted(p.name for p in directory.glob(f"*_{pid}.db") if "live" not in p.name)
    cleanup = subprocess.run(
        [sys.executable, "-c", f"import spanhooks; spanhooks.mark_process_dead({pid})"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cleanup.returncode == 0, cleanup.stderr
    assert not list(directory.glob(f"gauge_live*_{pid}.db"))
    after = sorted(p.name for p in directory.glob(f"*_{pid}.db"))
    assert after == totals == [f"counter_{pid}.db", f"histogram_{pid}.db"]  # totals stay


def test_spans_of_other_instrumentations_leave_a_spanhooks_pipeline_scrubbed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spans.jsonl"
    run_with_secret(tmp_path, FOREIGN_APP, path)
    text = path.read_text()
    assert SECRET not in text
    [record] = [json.loads(line) for line in text.splitlines()]
    assert record["name"] == f"chat gpt-{REDACTED}"
    assert record["attributes"]["gen_ai.request.model"] == f"gpt-{REDACTED}"
    assert record["events"][0]["attributes"] == {f"note {REDACTED}": f"said {REDACTED}"}
    assert record["status"]["description"] == f"refused {REDACTED}"


FOREIGN_APP = """
import sys
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
import spanhooks

secret, path = sys.argv[1], sys.argv[2]
spanhooks.setup(jsonl_path=path, redact_patterns=[r"CANARY-sk-\\w+"], foreign_spans=False)
tracer = trace.get_tracer("another-instrumentation")
with tracer.start_as_current_span(f"chat gpt-{secret}") as span:
    span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": f"gpt-{secret}"})
    span.add_event("note", {f"note {secret}": f"said {secret}"})
    span.set_status(Status(StatusCode.ERROR, f"refused {secret}"))
spanhooks.shutdown()
"""


def test_a_span_without_a_match_is_passed_on_as_it_is() -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("plain", attributes={"k": "v"}):
        pass
    [span] = exporter.get_finished_spans()
    assert redacted(span, re.compile("CANARY-sk-\\w+")) is span
