"""setup(): the default JSONL pipeline, the environment, an existing provider, OTLP export.

Each scenario runs in a fresh interpreter, because OpenTelemetry's global provider can be set
once per process, as in a real application.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from otlp_http import OtlpRequests, log_records, posted_logs, posted_spans
from spanhooks import CallbackEvent
from spanhooks.lifecycle import otlp
from spanhooks.testing import Capture

TURN = """
from types import SimpleNamespace
import spanhooks
from spanhooks import CallbackEvent
"""


def run(tmp_path: Path, body: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(TURN + textwrap.dedent(body))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_setup_writes_every_finished_span_to_the_default_jsonl_file_at_exit(tmp_path: Path) -> None:
    run(
        tmp_path,
        """
        spanhooks.setup()
        spanhooks.emit(CallbackEvent.TURN_START, SimpleNamespace(display_name="bot"))
        spanhooks.emit(CallbackEvent.TOOL_START, "t", {})
        spanhooks.emit(CallbackEvent.TOOL_END, "t", "ok")
        spanhooks.emit(CallbackEvent.TURN_END, None, None, [])
        """,
    )
    spans = records(tmp_path / "spanhooks-traces.jsonl")
    assert sorted(s["name"] for s in spans) == ["execute_tool t", "invoke_agent bot"]


def test_the_jsonl_path_comes_from_the_argument_then_the_environment(tmp_path: Path) -> None:
    run(
        tmp_path,
        "spanhooks.setup(); spanhooks.emit('on_message', user_id='u', message='m', timestamp=0)",
        SPANHOOKS_JSONL_PATH=str(tmp_path / "from-env.jsonl"),
    )
    run(
        tmp_path,
        "spanhooks.setup(jsonl_path='from-arg.jsonl'); spanhooks.emit('on_message', user_id='u', message='m', timestamp=0)",
        SPANHOOKS_JSONL_PATH=str(tmp_path / "ignored.jsonl"),
    )
    assert len(records(tmp_path / "from-env.jsonl")) == 1
    assert len(records(tmp_path / "from-arg.jsonl")) == 1
    assert not (tmp_path / "ignored.jsonl").exists()


def test_standard_otel_variables_keep_their_meaning(tmp_path: Path) -> None:
    run(
        tmp_path,
        "spanhooks.setup(); spanhooks.emit(CallbackEvent.RESPONSE, 'x')",
        OTEL_SERVICE_NAME="checkout-agent",
        OTEL_TRACES_SAMPLER="always_on",
    )
    [span] = records(tmp_path / "spanhooks-traces.jsonl")
    assert span["resource"]["service.name"] == "checkout-agent"  # type: ignore[index]


def test_sdk_disabled_builds_no_pipeline_but_callbacks_still_run(tmp_path: Path) -> None:
    done = run(
        tmp_path,
        """
        spanhooks.register(CallbackEvent.RESPONSE, print)
        telemetry = spanhooks.setup()
        assert telemetry.tracer_provider is None
        spanhooks.emit(CallbackEvent.RESPONSE, "callback ran")
        """,
        OTEL_SDK_DISABLED="true",
    )
    assert done.stdout.strip() == "callback ran"
    assert not (tmp_path / "spanhooks-traces.jsonl").exists()


def test_setup_attaches_to_the_provider_the_application_already_set(tmp_path: Path) -> None:
    run(
        tmp_path,
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        mine = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(mine))
        trace.set_tracer_provider(provider)
        telemetry = spanhooks.setup()
        assert trace.get_tracer_provider() is provider and telemetry.owns_provider is False
        spanhooks.emit(CallbackEvent.RESPONSE, "x")
        assert [s.name for s in mine.get_finished_spans()] == ["response"]
        """,
    )
    assert len(records(tmp_path / "spanhooks-traces.jsonl")) == 1


def test_a_provider_the_application_sets_after_the_first_emits_gets_the_spans_that_follow(
    tmp_path: Path,
) -> None:
    run(
        tmp_path,
        """
        import time
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from spanhooks.tracing.recorder import RECHECK_SECONDS

        seen = []
        spanhooks.register(CallbackEvent.RESPONSE, seen.append)
        spanhooks.emit(CallbackEvent.RESPONSE, "untraced")  # no provider yet: callbacks only
        mine = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(mine))
        trace.set_tracer_provider(provider)
        deadline = time.monotonic() + 50 * RECHECK_SECONDS  # the watch looks every RECHECK_SECONDS
        while not mine.get_finished_spans() and time.monotonic() < deadline:
            spanhooks.emit(CallbackEvent.RESPONSE, "traced")
            time.sleep(RECHECK_SECONDS / 10)
        assert seen[0] == "untraced" and set(seen[1:]) == {"traced"}
        assert [s.name for s in mine.get_finished_spans()] == ["response"]
        """,
    )


def test_emitting_with_no_provider_ever_set_runs_callbacks_and_exports_nothing(
    tmp_path: Path,
) -> None:
    run(
        tmp_path,
        """
        seen = []
        spanhooks.register(CallbackEvent.RESPONSE, seen.append)
        for _ in range(3):
            spanhooks.emit(CallbackEvent.RESPONSE, "x")
        assert seen == ["x", "x", "x"]
        assert spanhooks.get_callback_manager().stats()["open_spans"] == 0
        """,
    )
    assert not (tmp_path / "spanhooks-traces.jsonl").exists()


def test_a_running_process_file_is_current_within_the_flush_interval(tmp_path: Path) -> None:
    script = tmp_path / "long.py"
    script.write_text(
        TURN
        + textwrap.dedent(
            """
            import time
            spanhooks.setup()
            spanhooks.emit(CallbackEvent.RESPONSE, "early")
            time.sleep(30)
            """
        )
    )
    env = {**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env)
    try:
        path = tmp_path / "spanhooks-traces.jsonl"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (path.exists() and path.read_text()):
            time.sleep(0.1)
        assert process.poll() is None, "the process should still be running"
        assert len(records(path)) == 1
    finally:
        process.kill()
        process.wait()


def test_the_otlp_endpoint_variable_adds_otlp_export(
    tmp_path: Path, http_sink: tuple[str, list[ExportTraceServiceRequest]]
) -> None:
    endpoint, received = http_sink
    run(
        tmp_path,
        """
        spanhooks.setup()
        spanhooks.emit(CallbackEvent.TOOL_START, "exported", {})
        spanhooks.emit(CallbackEvent.TOOL_END, "exported", "ok")
        """,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_SERVICE_NAME="otlp-check",
    )
    names = [
        span.name
        for request in received
        for resource_spans in request.resource_spans
        for scope in resource_spans.scope_spans
        for span in scope.spans
    ]
    assert names == ["execute_tool exported"]
    assert len(records(tmp_path / "spanhooks-traces.jsonl")) == 1  # the JSONL file still gets it


def _span_names(received: list[ExportTraceServiceRequest]) -> list[str]:
    return [
        span.name
        for request in received
        for resource_spans in request.resource_spans
        for scope in resource_spans.scope_spans
        for span in scope.spans
    ]


EXPORTED_PAIR = """
spanhooks.setup()
spanhooks.emit(CallbackEvent.TOOL_START, "exported", {})
spanhooks.emit(CallbackEvent.TOOL_END, "exported", "ok")
"""


def test_otel_traces_exporter_none_turns_otlp_off_even_with_an_endpoint(
    tmp_path: Path, http_sink: tuple[str, list[ExportTraceServiceRequest]]
) -> None:
    endpoint, received = http_sink
    run(tmp_path, EXPORTED_PAIR, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_TRACES_EXPORTER="none")
    assert received == []
    assert len(records(tmp_path / "spanhooks-traces.jsonl")) == 1  # the local file is spanhooks'


def test_otel_traces_exporter_console_prints_each_span_on_stdout(tmp_path: Path) -> None:
    done = run(tmp_path, EXPORTED_PAIR, OTEL_TRACES_EXPORTER="console")
    assert '"name": "execute_tool exported"' in done.stdout


def test_otel_traces_exporter_lists_both_otlp_and_console(
    tmp_path: Path, http_sink: tuple[str, list[ExportTraceServiceRequest]]
) -> None:
    endpoint, received = http_sink
    done = run(
        tmp_path,
        EXPORTED_PAIR,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_TRACES_EXPORTER="otlp, console",
    )
    assert _span_names(received) == ["execute_tool exported"]
    assert '"name": "execute_tool exported"' in done.stdout


def test_an_exporter_name_spanhooks_does_not_know_is_named_in_a_warning(tmp_path: Path) -> None:
    done = run(tmp_path, EXPORTED_PAIR, OTEL_TRACES_EXPORTER="zipkin")
    assert "ignoring OTEL_TRACES_EXPORTER values zipkin" in done.stderr
    assert len(records(tmp_path / "spanhooks-traces.jsonl")) == 1


def test_otel_metrics_exporter_console_prints_the_genai_metrics(tmp_path: Path) -> None:
    done = run(
        tmp_path,
        """
        spanhooks.setup()
        spanhooks.emit(CallbackEvent.API_REQUEST, {"model": "m1", "messages": []})
        spanhooks.emit(CallbackEvent.API_RESPONSE, {"model": "m1", "usage": {}})
        """,
        OTEL_METRICS_EXPORTER="console",
    )
    assert "gen_ai.client.operation.duration" in done.stdout


# OTEL_LOGS_EXPORTER: spanhooks' own warnings and errors as OpenTelemetry log records. The
# conftest receivers decode every request as spans, so these tests use otlp_http's, which keeps
# each request's path and body and decodes /v1/logs as logs.


class _GrpcLogsSink(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self) -> None:
        self.received: list[ExportLogsServiceRequest] = []

    def Export(self, request: Any, context: Any) -> Any:
        self.received.append(request)
        return logs_service_pb2.ExportLogsServiceResponse()


@pytest.fixture
def grpc_logs_sink() -> Iterator[tuple[str, list[ExportLogsServiceRequest]]]:
    """A real OTLP/gRPC logs receiver on 127.0.0.1: its endpoint and the requests it got."""
    sink = _GrpcLogsSink()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(sink, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", sink.received
    server.stop(grace=None)


@pytest.fixture
def hanging_collector() -> Iterator[str]:
    """An endpoint that takes connections into its backlog and never answers one."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


# A callback that raises: spanhooks logs it (ERROR, with its traceback) while the span is open.
RAISING_CALLBACK = """
def broken(*args, **kwargs):
    raise RuntimeError("boom in a callback")

spanhooks.register(CallbackEvent.TOOL_START, broken)
spanhooks.setup({arguments})
spanhooks.emit(CallbackEvent.TOOL_START, "exported", {{}})
spanhooks.emit(CallbackEvent.TOOL_END, "exported", "ok")
"""
RAISED = "callback __main__.broken raised RuntimeError while handling tool_start"


def test_otel_logs_exporter_otlp_sends_spanhooks_errors_to_v1_logs_tied_to_their_span(
    tmp_path: Path, otlp_http: tuple[str, OtlpRequests]
) -> None:
    endpoint, received = otlp_http
    done = run(
        tmp_path,
        RAISING_CALLBACK.format(arguments=""),
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_SERVICE_NAME="logs-check",
    )
    [(scope, record)] = log_records(posted_logs(received))
    assert scope == "spanhooks"
    assert record.body.string_value == f"spanhooks: {RAISED}"
    assert (record.severity_text, record.severity_number) == ("ERROR", 17)
    attributes = {a.key: a.value.string_value for a in record.attributes}
    assert "boom in a callback" in attributes["exception.stacktrace"]
    [logged] = posted_logs(received)
    resource = {a.key: a.value.string_value for a in logged.resource_logs[0].resource.attributes}
    assert resource["service.name"] == "logs-check"
    [span] = [
        span
        for request in posted_spans(received)
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    assert (record.trace_id, record.span_id) == (span.trace_id, span.span_id)
    assert RAISED in done.stderr  # exporting it silences nothing


LOG_ACCOUNTS = (
    """
from prometheus_client import CollectorRegistry, generate_latest
registry = CollectorRegistry()
"""
    + RAISING_CALLBACK.format(arguments="registry=registry, otlp_timeout=0.5")
    + """
telemetry = spanhooks.lifecycle.setup.active()  # its figures outlive its shutdown
spanhooks.shutdown()
print(generate_latest(registry).decode())
"""
)


def log_accounts(stdout: str) -> dict[tuple[str, str], float]:
    """``spanhooks_log_records_*`` samples of a scrape: (name, reason or "") -> value."""
    return {
        (sample.name, sample.labels.get("reason", "")): sample.value
        for family in text_string_to_metric_families(stdout)
        for sample in family.samples
        if sample.name.startswith("spanhooks_log_records_")
    }


def test_every_exported_log_record_is_counted_on_metrics(
    tmp_path: Path, otlp_http: tuple[str, OtlpRequests]
) -> None:
    done = run(
        tmp_path, LOG_ACCOUNTS, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_http[0], OTEL_LOGS_EXPORTER="otlp"
    )
    assert log_accounts(done.stdout) == {
        ("spanhooks_log_records_exported_total", ""): 1.0,
        ("spanhooks_log_records_dropped_total", "export_failed"): 0.0,
        ("spanhooks_log_records_dropped_total", "unsent"): 0.0,
    }


def test_a_log_record_the_collector_refuses_is_counted_as_export_failed(tmp_path: Path) -> None:
    with socket.socket() as unused:  # a port with nothing listening: the connection is refused
        unused.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{unused.getsockname()[1]}"
    done = run(
        tmp_path, LOG_ACCOUNTS, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_LOGS_EXPORTER="otlp"
    )
    assert log_accounts(done.stdout) == {
        ("spanhooks_log_records_exported_total", ""): 0.0,
        # the callback's error, and the warning that the span was not exported either
        ("spanhooks_log_records_dropped_total", "export_failed"): 2.0,
        ("spanhooks_log_records_dropped_total", "unsent"): 0.0,
    }


def test_otel_logs_exporter_otlp_over_grpc_honours_the_logs_variables(
    tmp_path: Path,
    grpc_logs_sink: tuple[str, list[ExportLogsServiceRequest]],
    otlp_http: tuple[str, OtlpRequests],
) -> None:
    grpc_endpoint, grpc_received = grpc_logs_sink
    run(
        tmp_path,
        RAISING_CALLBACK.format(arguments=""),
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_http[0],  # spans, and logs but for the two below
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=grpc_endpoint,
        OTEL_EXPORTER_OTLP_LOGS_PROTOCOL="grpc",
        OTEL_LOGS_EXPORTER="otlp",
    )
    [(scope, record)] = log_records(grpc_received)
    assert scope == "spanhooks" and record.body.string_value == f"spanhooks: {RAISED}"
    assert "/v1/logs" not in {path for path, _ in otlp_http[1]}


def test_otel_logs_exporter_console_prints_each_record_on_stdout(tmp_path: Path) -> None:
    done = run(tmp_path, RAISING_CALLBACK.format(arguments=""), OTEL_LOGS_EXPORTER="console")
    printed = json.loads(done.stdout[done.stdout.index("{") :])
    assert printed["body"] == f"spanhooks: {RAISED}"
    assert printed["severity_text"] == "ERROR"
    [span] = records(tmp_path / "spanhooks-traces.jsonl")
    assert (printed["trace_id"], printed["span_id"]) == (
        f"0x{span['trace_id']}",
        f"0x{span['span_id']}",
    )
    assert RAISED in done.stderr


@pytest.mark.parametrize(
    ("logs_exporter", "arguments"),
    [
        (None, ""),
        ("none", ""),
        (None, "otlp_endpoint={endpoint!r}"),
        ("none", "otlp_endpoint={endpoint!r}"),
        ("", ""),
    ],
    ids=["unset", "none", "unset-endpoint-in-code", "none-endpoint-in-code", "empty"],
)
def test_otel_logs_exporter_none_or_unset_sends_no_log_record_even_with_an_endpoint(
    tmp_path: Path, otlp_http: tuple[str, OtlpRequests], logs_exporter: str | None, arguments: str
) -> None:
    endpoint, received = otlp_http
    env = {} if arguments else {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
    if logs_exporter is not None:
        env["OTEL_LOGS_EXPORTER"] = logs_exporter
    done = run(
        tmp_path,
        RAISING_CALLBACK.format(arguments=arguments.format(endpoint=endpoint))
        + "assert spanhooks.lifecycle.setup.active().log_export is None\n",
        **env,
    )
    paths = {path for path, _ in received}
    assert "/v1/traces" in paths and "/v1/logs" not in paths  # the spans went, no log record
    assert RAISED in done.stderr


def test_an_otel_logs_exporter_name_spanhooks_does_not_know_is_named_in_a_warning(
    tmp_path: Path, otlp_http: tuple[str, OtlpRequests]
) -> None:
    endpoint, received = otlp_http
    done = run(
        tmp_path,
        RAISING_CALLBACK.format(arguments=""),
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_LOGS_EXPORTER="zipkin",
    )
    assert "ignoring OTEL_LOGS_EXPORTER values zipkin" in done.stderr
    assert "/v1/logs" not in {path for path, _ in received}


def test_otel_logs_exporter_adds_no_second_handler_where_the_application_exports_logs(
    tmp_path: Path, otlp_http: tuple[str, OtlpRequests]
) -> None:
    endpoint, received = otlp_http
    application_exports_logs = textwrap.dedent(
        """
        import logging, warnings
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
        from opentelemetry.sdk._logs.export import (
            InMemoryLogRecordExporter, SimpleLogRecordProcessor,
        )

        mine = InMemoryLogRecordExporter()
        provider = LoggerProvider()
        provider.add_log_record_processor(SimpleLogRecordProcessor(mine))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            logging.getLogger().addHandler(LoggingHandler(logger_provider=provider))
        """
    )
    run(
        tmp_path,
        application_exports_logs
        + RAISING_CALLBACK.format(arguments="")
        + "assert spanhooks.lifecycle.setup.active().log_export is None\n"
        + "[_] = [r for r in mine.get_finished_logs() if 'raised' in str(r.log_record.body)]\n",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_LOGS_EXPORTER="otlp",
    )
    assert "/v1/logs" not in {path for path, _ in received}  # the application's pipeline had it


def test_otel_logs_exporter_names_exporters_as_the_sdk_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    monkeypatch.delenv("OTEL_LOGS_EXPORTER", raising=False)
    assert otlp.exporters("LOGS") == frozenset()
    assert otlp.exporters("LOGS", "http://127.0.0.1:1") == frozenset()  # not from an endpoint
    assert otlp.exporters("TRACES") == frozenset({"otlp"})  # unchanged for spans
    for value, expected in [
        ("none", set()),
        ("otlp", {"otlp"}),
        (" OTLP , console ", {"otlp", "console"}),
        ("console,none", {"console"}),
    ]:
        monkeypatch.setenv("OTEL_LOGS_EXPORTER", value)
        assert otlp.exporters("LOGS", "http://127.0.0.1:1") == expected, value


SHUTDOWN_TIMED = """
import time
def broken(*args, **kwargs):
    raise RuntimeError("boom in a callback")

spanhooks.register(CallbackEvent.RESPONSE, broken)
spanhooks.setup(shutdown_timeout={shutdown_timeout})
spanhooks.emit(CallbackEvent.RESPONSE, "x")
started = time.monotonic()
spanhooks.shutdown()
print(f"shutdown took {{time.monotonic() - started:.3f}}")
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("shutdown_timeout", "bound", "left_behind"),
    [(0.5, 0.5, True), (8.0, otlp.EXPORT_TIMEOUT, False)],  # the SDK's own export timeout: 10 s
    ids=["the-shutdown-timeout", "the-short-export-timeout"],
)
def test_otel_logs_exporter_otlp_keeps_shutdown_bounded_with_a_collector_that_hangs(
    tmp_path: Path, hanging_collector: str, shutdown_timeout: float, bound: float, left_behind: bool
) -> None:
    done = run(
        tmp_path,
        SHUTDOWN_TIMED.format(shutdown_timeout=shutdown_timeout),
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=hanging_collector + "/v1/logs",
        OTEL_LOGS_EXPORTER="otlp",
    )
    took = float(done.stdout.split("shutdown took ")[1])
    assert took < bound + 1.0  # slack for the export thread's start and a loaded machine
    assert ("log records were not all exported" in done.stderr) is left_behind


def test_a_raising_span_processor_of_the_user_does_not_stop_export(tmp_path: Path) -> None:
    run(
        tmp_path,
        """
        from opentelemetry.sdk.trace import SpanProcessor

        class Broken(SpanProcessor):
            def on_end(self, span):
                raise RuntimeError("processor bug")

        spanhooks.setup(span_processors=[Broken()])
        spanhooks.add_span_processor(Broken())
        spanhooks.emit(CallbackEvent.RESPONSE, "survives")
        """,
    )
    assert len(records(tmp_path / "spanhooks-traces.jsonl")) == 1


def test_span_callbacks_see_spans_from_other_instrumentations(spanhooks_capture: Capture) -> None:
    seen: list[str] = []
    spanhooks_capture.manager.on_span(
        lambda span: seen.append(span.name), attributes={"gen_ai.operation.name": "chat"}
    )
    other = spanhooks_capture.provider.get_tracer("some.openai.instrumentation")
    with other.start_as_current_span("chat gpt-4o", attributes={"gen_ai.operation.name": "chat"}):
        pass
    with other.start_as_current_span(
        "embeddings", attributes={"gen_ai.operation.name": "embeddings"}
    ):
        pass
    spanhooks_capture.manager.emit(CallbackEvent.API_REQUEST, {"model": "ours"})
    spanhooks_capture.manager.emit(CallbackEvent.API_RESPONSE, {})
    assert seen == ["chat gpt-4o", "chat ours"]


def test_span_callbacks_can_be_decorators_and_unregistered(spanhooks_capture: Capture) -> None:
    seen: list[str] = []

    @spanhooks_capture.manager.on_span(phase="start", name="wanted")
    def started(span: object) -> None:
        seen.append("start")

    tracer = spanhooks_capture.tracer
    with tracer.start_as_current_span("wanted"), tracer.start_as_current_span("other"):
        pass
    callback_id = spanhooks_capture.manager.on_span(lambda span: seen.append("end"))
    assert spanhooks_capture.manager.unregister(callback_id)
    spanhooks_capture.manager.emit(CallbackEvent.RESPONSE, "r")
    assert seen == ["start"]


def test_setup_twice_returns_the_active_configuration(tmp_path: Path) -> None:
    run(tmp_path, "a = spanhooks.setup(); b = spanhooks.setup(service_name='x'); assert a is b")


def test_an_unsupported_otlp_protocol_is_a_clear_error(tmp_path: Path) -> None:
    run(
        tmp_path,
        """
        try:
            spanhooks.setup(otlp_endpoint="http://127.0.0.1:9", otlp_protocol="carrier-pigeon")
        except ValueError as exc:
            assert "carrier-pigeon" in str(exc)
        else:
            raise AssertionError("no error")
        """,
    )


def test_module_level_functions_use_the_default_manager() -> None:
    import spanhooks

    seen: list[str] = []
    callback_id = spanhooks.register(CallbackEvent.RESPONSE, seen.append)
    try:
        spanhooks.emit(CallbackEvent.RESPONSE, "via module")
        assert seen == ["via module"]
        assert spanhooks.get_callback_manager().get_registered_callbacks()[0]["id"] == callback_id
    finally:
        spanhooks.unregister(callback_id)
