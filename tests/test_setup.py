"""setup(): the default JSONL pipeline, the environment, an existing provider, OTLP export.

Each scenario runs in a fresh interpreter, because OpenTelemetry's global provider can be set
once per process, as in a real application.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanhooks import CallbackEvent
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
