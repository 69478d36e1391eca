"""GenAI client metrics: model calls give ``gen_ai.client.operation.duration`` and
``gen_ai.client.token.usage`` with the conventions' buckets and attributes, through the
OpenTelemetry metrics API (read back from a real SDK MeterProvider, and over OTLP/HTTP from a
child process) and on ``/metrics`` under the Prometheus names (a real HTTP scrape)."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

import spanhooks
from spanhooks.metrics.families import install_collector
from spanhooks.metrics.genai import (
    OPERATION_DURATION_BUCKETS,
    TOKEN_USAGE_BUCKETS,
    GenAIMetricsProcessor,
)
from spanhooks.metrics.server import start_metrics_server
from spanhooks.testing import Capture, capture


class Pipeline:
    """A capture pipeline with the GenAI metrics processor on an in-memory MeterProvider."""

    def __init__(self, cap: Capture, include_foreign: bool = False) -> None:
        self.cap = cap
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.processor = GenAIMetricsProcessor(self.meters, include_foreign=include_foreign)
        cap.provider.add_span_processor(self.processor)

    def points(self, name: str) -> list[HistogramDataPoint]:
        data = self.reader.get_metrics_data()
        if data is None:  # nothing recorded at all
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points  # type: ignore[union-attr]
        ]

    def scrape(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        registry = CollectorRegistry()
        install_collector(registry)
        server = start_metrics_server(registry, port=0)
        try:
            with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
                text = response.read().decode()
        finally:
            server.close()
        return {
            family.name: [(s.labels, s.value) for s in family.samples]
            for family in text_string_to_metric_families(text)
        }


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    with capture() as cap:
        yield Pipeline(cap)


def _chat(cap: Capture, model: str = "gpt-4o") -> Any:
    @spanhooks.llm(provider="openai", manager=cap.manager)
    def chat(model: str, prompt: str) -> dict[str, Any]:
        return {"model": f"{model}-2024", "usage": {"input_tokens": 11, "output_tokens": 7}}

    return chat


def test_a_model_call_records_duration_with_the_conventions_attributes_and_buckets(
    pipeline: Pipeline,
) -> None:
    _chat(pipeline.cap)("gpt-4o", "hi")
    [point] = pipeline.points("gen_ai.client.operation.duration")
    assert point.count == 1
    assert tuple(point.explicit_bounds) == OPERATION_DURATION_BUCKETS
    assert dict(point.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024",
    }


def test_token_usage_is_recorded_by_token_type(pipeline: Pipeline) -> None:
    _chat(pipeline.cap)("gpt-4o", "hi")
    _chat(pipeline.cap)("gpt-4o", "again")
    points = pipeline.points("gen_ai.client.token.usage")
    by_type = {(p.attributes or {})["gen_ai.token.type"]: p for p in points}
    assert {kind: (p.count, p.sum) for kind, p in by_type.items()} == {
        "input": (2, 22),
        "output": (2, 14),
    }
    assert tuple(by_type["input"].explicit_bounds) == tuple(float(b) for b in TOKEN_USAGE_BUCKETS)


def test_a_failed_call_carries_its_error_type(pipeline: Pipeline) -> None:
    @spanhooks.llm(model="gpt-4o", manager=pipeline.cap.manager)
    def chat() -> None:
        raise TimeoutError("upstream")

    with pytest.raises(TimeoutError):
        chat()
    [point] = pipeline.points("gen_ai.client.operation.duration")
    assert (point.attributes or {})["error.type"] == "TimeoutError"


def test_tool_calls_and_other_instrumentations_spans_are_not_counted_by_default(
    pipeline: Pipeline,
) -> None:
    @spanhooks.tool(manager=pipeline.cap.manager)
    def search(query: str) -> str:
        return "hit"

    search("x")
    with pipeline.cap.provider.get_tracer("other-lib").start_as_current_span(
        "chat foreign", attributes={"gen_ai.operation.name": "chat"}
    ):
        pass
    assert pipeline.points("gen_ai.client.operation.duration") == []


def test_include_foreign_counts_genai_spans_of_other_instrumentations() -> None:
    with capture() as cap:
        pipeline = Pipeline(cap, include_foreign=True)
        with cap.provider.get_tracer("other-lib").start_as_current_span(
            "chat foreign",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "m",
                "gen_ai.usage.input_tokens": 5,
            },
        ):
            pass
        [point] = pipeline.points("gen_ai.client.operation.duration")
    assert (point.attributes or {})["gen_ai.provider.name"] == "openai"  # from the older name


def test_a_stream_records_time_to_first_chunk(pipeline: Pipeline) -> None:
    @spanhooks.llm(model="gpt-4o", manager=pipeline.cap.manager)
    def stream() -> Iterator[str]:
        yield "a"
        yield "b"

    list(stream())
    [point] = pipeline.points("gen_ai.client.operation.time_to_first_chunk")
    assert point.count == 1 and point.sum > 0


def test_metrics_are_served_under_their_prometheus_names(pipeline: Pipeline) -> None:
    _chat(pipeline.cap)("scrape-model", "hi")  # a model no other test uses
    metrics = pipeline.scrape()
    duration = [
        labels
        for labels, _ in metrics["gen_ai_client_operation_duration_seconds"]
        if labels.get("gen_ai_request_model") == "scrape-model"
    ]
    bounds = {float(labels["le"]) for labels in duration if "le" in labels}
    assert bounds == {*OPERATION_DURATION_BUCKETS, float("inf")}
    assert duration[0]["gen_ai_operation_name"] == "chat"
    assert duration[0]["gen_ai_provider_name"] == "openai"
    tokens = {
        labels["gen_ai_token_type"]: value
        for labels, value in metrics["gen_ai_client_token_usage"]
        if labels.get("gen_ai_request_model") == "scrape-model"
        and "le" not in labels
        and value >= 7  # the _sum samples (the _count samples are 1)
    }
    assert tokens == {"input": 11.0, "output": 7.0}


class _MetricsSink(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[ExportMetricsServiceRequest]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/metrics":
            request = ExportMetricsServiceRequest()
            request.ParseFromString(body)
            type(self).received.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_setup_with_an_otlp_endpoint_exports_the_genai_metrics(tmp_path: Path) -> None:
    _MetricsSink.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MetricsSink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    program = textwrap.dedent(
        """
        import spanhooks

        spanhooks.setup(jsonl=False)

        @spanhooks.llm(model="gpt-4o", provider="openai")
        def chat(prompt):
            return {"usage": {"input_tokens": 3, "output_tokens": 4}}

        chat("hi")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        done = subprocess.run(
            [sys.executable, "-c", program],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    metrics = {
        metric.name: metric
        for request in _MetricsSink.received
        for resource in request.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    duration = metrics["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    [point] = duration.histogram.data_points
    assert list(point.explicit_bounds) == list(OPERATION_DURATION_BUCKETS)
    tokens = metrics["gen_ai.client.token.usage"].histogram.data_points
    assert sorted(p.sum for p in tokens) == [3.0, 4.0]
