"""Four defects a newcomer hit (issue 13), each pinned by the behaviour users rely on.

- ``spanhooks view FILE | head`` ends quietly with the status a shell gives a tool that SIGPIPE
  ended, not a BrokenPipeError traceback (the real command, a real pipe, a real ``head``).
- ``spanhooks replay FILE`` without ``--endpoint`` sends where the ``OTEL_EXPORTER_OTLP_*``
  variables say, as the SDK would (received by an OTLP receiver in the test).
- An async stream left with ``break`` whose closing is then cancelled is a call closed early,
  not a failed one, and the cancellation still reaches the caller (real asyncio).
- GenAI metric series carry a conditional label (``error_type``, ``server_port``) only when it
  has a value, on ``/metrics`` (a real scrape) as over OTLP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

import spanhooks
from spanhooks import CallbackEvent, CallbackManager, JsonlSpanExporter
from spanhooks.cli.main import READER_GONE
from spanhooks.metrics.families import install_collector
from spanhooks.metrics.genai import GenAIMetricsProcessor
from spanhooks.metrics.multiprocess import MULTIPROC_ENV, MultiprocessMirror
from spanhooks.metrics.server import start_metrics_server
from spanhooks.testing import Capture, capture

CLOSED_EARLY = "spanhooks.stream.closed_early"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without OTEL_*/SPANHOOKS_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    return {**env, **extra}


def spanhooks_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "spanhooks", *args]


def record_tool_calls(path: Path, calls: int, name: str = "search") -> Path:
    """A JSONL trace file written by a real run: ``calls`` tool calls through the SDK."""
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter(path)))
    manager = CallbackManager(tracer_provider=provider)
    for _ in range(calls):
        manager.emit(CallbackEvent.TOOL_START, name, {})
        manager.emit(CallbackEvent.TOOL_END, name, "ok")
    provider.shutdown()
    return path


# -- 1. a reader that closes early -----------------------------------------------------------


def test_view_piped_into_head_ends_quietly_with_the_sigpipe_status(tmp_path: Path) -> None:
    # ~2 MB of trees: far more than a pipe holds (64 KiB unless F_SETPIPE_SZ raises it) plus
    # what head reads, so the writer is still writing when head exits, whatever the timing
    trace = record_tool_calls(tmp_path / "big.jsonl", 500, name="t" * 4000)
    with (
        (tmp_path / "stderr").open("wb") as errors,
        subprocess.Popen(
            spanhooks_command("view", str(trace)),
            stdout=subprocess.PIPE,
            stderr=errors,
            env=clean_env(),
        ) as view,
    ):
        assert view.stdout is not None
        head = subprocess.run(
            ["head", "-1"], stdin=view.stdout, capture_output=True, text=True, timeout=60
        )
        view.stdout.close()  # head held the only other read end: now the reader is gone
        status = view.wait(timeout=60)
    assert head.stdout.startswith("trace ")
    assert status == READER_GONE == 141
    assert (tmp_path / "stderr").read_text() == ""  # no traceback, no "Exception ignored"


def test_a_program_run_under_spanhooks_piped_into_a_reader_that_stops_ends_quietly(
    tmp_path: Path,
) -> None:
    script = tmp_path / "chatty.py"
    script.write_text("for i in range(1_000_000):\n    print('line', i)\n")
    with subprocess.Popen(
        spanhooks_command("run", str(script)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=clean_env(SPANHOOKS_JSONL="false"),
    ) as program:
        assert program.stdout is not None and program.stderr is not None
        assert program.stdout.readline() == b"line 0\n"
        program.stdout.close()  # the reader stops after one line
        errors = program.stderr.read().decode()
        status = program.wait(timeout=60)
    assert status == READER_GONE
    assert "Traceback" not in errors and "BrokenPipeError" not in errors


# -- 2. replay where the OTEL_EXPORTER_OTLP_* variables say ----------------------------------

Request = trace_service_pb2.ExportTraceServiceRequest


def span_count(requests: list[Any]) -> int:
    return sum(
        len(scope.spans)
        for request in requests
        for resource in request.resource_spans
        for scope in resource.scope_spans
    )


def replay_command(trace: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        spanhooks_command("replay", str(trace)),
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_replay_without_endpoint_sends_where_otel_exporter_otlp_endpoint_says(
    tmp_path: Path, http_sink: tuple[str, list[Any]], http_sink_paths: list[str]
) -> None:
    endpoint, received = http_sink
    done = replay_command(
        record_tool_calls(tmp_path / "run.jsonl", 3), OTEL_EXPORTER_OTLP_ENDPOINT=endpoint
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"3 span(s) sent to {endpoint}"
    assert http_sink_paths == ["/v1/traces"]  # a base URL, as for the SDK
    assert span_count(received) == 3


def test_replay_sends_to_the_traces_endpoint_as_given_before_the_general_one(
    tmp_path: Path, http_sink: tuple[str, list[Any]], http_sink_paths: list[str]
) -> None:
    endpoint, received = http_sink
    done = replay_command(
        record_tool_calls(tmp_path / "run.jsonl", 2),
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{endpoint}/custom/traces",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",  # nothing listens: must not be used
    )
    assert done.returncode == 0, done.stderr
    assert http_sink_paths == ["/custom/traces"]  # a full URL, used as is
    assert span_count(received) == 2


def test_replay_uses_the_protocol_otel_exporter_otlp_protocol_names(
    tmp_path: Path, grpc_sink: tuple[str, list[Any]]
) -> None:
    endpoint, received = grpc_sink
    done = replay_command(
        record_tool_calls(tmp_path / "run.jsonl", 2),
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
    )
    assert done.returncode == 0, done.stderr
    assert span_count(received) == 2


def test_replay_with_no_endpoint_anywhere_is_still_a_usage_error(tmp_path: Path) -> None:
    done = replay_command(record_tool_calls(tmp_path / "run.jsonl", 1))
    assert done.returncode == 2  # argparse's status for a missing required argument, as before
    assert "usage: spanhooks replay" in done.stderr
    assert "the following arguments are required: --endpoint" in done.stderr
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in done.stderr


# -- 3. an async stream left early, then cancelled -------------------------------------------


class Metered:
    """A capture pipeline with the GenAI metrics on an in-memory MeterProvider."""

    def __init__(self, cap: Capture) -> None:
        self.cap = cap
        self.reader = InMemoryMetricReader()
        self.processor = GenAIMetricsProcessor(MeterProvider(metric_readers=[self.reader]))
        cap.provider.add_span_processor(self.processor)

    def duration_attributes(self) -> list[dict[str, Any]]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            dict(point.attributes or {})
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == "gen_ai.client.operation.duration"
            for point in metric.data.data_points  # type: ignore[union-attr]
        ]


def assert_closed_early(metered: Metered, name: str) -> None:
    span = metered.cap.span(name)
    attributes = dict(span.attributes or {})
    assert span.status.status_code is StatusCode.UNSET
    assert attributes[CLOSED_EARLY] is True
    assert "error.type" not in attributes
    assert ["error.type" in point for point in metered.duration_attributes()] == [False]


async def test_break_then_cancelled_while_closing_is_a_stream_closed_early() -> None:
    closing = asyncio.Event()
    with capture() as cap:
        metered = Metered(cap)

        @spanhooks.llm(model="closing-model", manager=cap.manager)
        async def chat() -> AsyncIterator[str]:
            try:
                yield "first"
                yield "second"
            finally:  # what a client does: close its HTTP response, which takes an await
                closing.set()
                await asyncio.Event().wait()

        async def caller() -> None:
            async with contextlib.aclosing(chat()) as stream:
                async for _ in stream:
                    break

        task = asyncio.create_task(caller())
        await closing.wait()  # the stream is being closed, inside aclose()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task  # the cancellation still reaches the caller
        assert_closed_early(metered, "chat closing-model")


def test_break_then_a_cancelled_loop_finaliser_is_a_stream_closed_early() -> None:
    with capture() as cap:
        metered = Metered(cap)

        @spanhooks.llm(model="finalised-model", manager=cap.manager)
        async def chat() -> AsyncIterator[str]:
            yield "first"
            yield "second"

        async def main() -> None:
            stream = chat()
            async for _ in stream:
                break
            # the last reference: the loop's asyncgen hook schedules aclose() in a task, which
            # asyncio.run's shutdown cancels (before it runs) when main returns
            del stream

        asyncio.run(main())
        assert_closed_early(metered, "chat finalised-model")


# -- 4. conditional labels absent, not empty -------------------------------------------------


def scrape() -> list[tuple[str, dict[str, str]]]:
    """Every sample on a real ``/metrics`` scrape: (sample name, labels)."""
    registry = CollectorRegistry()
    install_collector(registry)
    server = start_metrics_server(registry, port=0)
    try:
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.close()
    return [
        (sample.name, sample.labels)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def genai_labels(model: str) -> list[dict[str, str]]:
    """The labels of every GenAI sample of ``model``'s series on a scrape."""
    return [
        labels
        for name, labels in scrape()
        if name.startswith("gen_ai_client_") and labels.get("gen_ai_request_model") == model
    ]


def test_a_successful_call_has_no_error_type_or_server_port_label(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with capture() as cap:
        metered = Metered(cap)

        @spanhooks.llm(provider="openai", manager=cap.manager)
        def chat(model: str) -> dict[str, Any]:
            return {"usage": {"input_tokens": 3, "output_tokens": 4}}

        chat("labels-ok-model")
        labels = genai_labels("labels-ok-model")
        assert labels, "no GenAI series scraped"
        for sample in labels:
            assert "" not in sample.values(), sample
            assert "error_type" not in sample and "server_port" not in sample
        [point] = metered.duration_attributes()
        assert "error.type" not in point and "server.port" not in point


def test_a_failed_call_to_a_known_server_carries_error_type_and_server_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with capture() as cap:
        processor = GenAIMetricsProcessor(MeterProvider(), include_foreign=True)
        cap.provider.add_span_processor(processor)
        with cap.provider.get_tracer("other-lib").start_as_current_span(
            "chat labels-failed-model",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "labels-failed-model",
                "server.address": "api.openai.com",
                "server.port": 443,
                "error.type": "TimeoutError",
            },
        ) as span:
            span.set_status(Status(StatusCode.ERROR))
        labels = genai_labels("labels-failed-model")
    assert labels, "no GenAI series scraped"
    for sample in labels:
        assert sample["error_type"] == "TimeoutError" and sample["server_port"] == "443"
        assert "gen_ai_response_model" not in sample  # no response model on the span either


def test_multiprocess_mode_still_mirrors_the_genai_metrics_with_fixed_labels(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The reason the labels stay there: the mirror's prometheus_client histograms need one
    label-name list per family, so series with and without ``error_type`` must share it."""
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    caplog.set_level(logging.ERROR, logger="spanhooks")
    with capture() as cap:
        Metered(cap)

        @spanhooks.llm(model="mirrored-model", manager=cap.manager)
        def chat(fail: bool) -> None:
            if fail:
                raise TimeoutError("upstream")

        chat(False)
        with pytest.raises(TimeoutError):
            chat(True)
        mirror = MultiprocessMirror(interval=3600)
        mirror.close()
    assert [r.getMessage() for r in caplog.records] == []
