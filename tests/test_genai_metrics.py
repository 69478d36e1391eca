"""GenAI metrics: model calls give ``gen_ai.client.operation.duration`` and
``gen_ai.client.token.usage`` (streams the two chunk timings too), agents
``gen_ai.invoke_agent.duration`` and tools ``gen_ai.execute_tool.duration``, with the
conventions' buckets and attributes, through the OpenTelemetry metrics API (read back from a
real SDK MeterProvider, and over OTLP/HTTP from a child process) and on ``/metrics`` under the
Prometheus names (a real HTTP scrape); ``OTEL_SEMCONV_STABILITY_OPT_IN`` chooses the names; a
model call's prompt name is a span attribute."""

from __future__ import annotations

import asyncio
import gc
import http.server
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
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
from spanhooks.metrics.cardinality import MAX_LABEL_VALUES
from spanhooks.metrics.families import install_collector
from spanhooks.metrics.genai import (
    AGENT_DURATION_BUCKETS,
    OPERATION_DURATION_BUCKETS,
    TOKEN_USAGE_BUCKETS,
    GenAIMetricsProcessor,
)
from spanhooks.metrics.multiprocess import MULTIPROC_ENV, MultiprocessMirror
from spanhooks.metrics.server import start_metrics_server
from spanhooks.testing import Capture, capture
from spanhooks.util.semconv import OPT_IN_ENV, GenAINames, genai_names
from spanhooks.vocab.llmproc import CallbackEvent

PER_CHUNK = "spanhooks.stream.time_per_output_chunk"


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

    def attributes(self, name: str) -> list[dict[str, Any]]:
        return [dict(point.attributes or {}) for point in self.points(name)]

    def foreign(self, name: str, **attributes: Any) -> None:
        """A span of another instrumentation (counted with ``include_foreign``)."""
        tracer = self.cap.provider.get_tracer("other-lib")
        with tracer.start_as_current_span(name, attributes=attributes):
            pass


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


# -- agents and tools: gen_ai.invoke_agent.duration, gen_ai.execute_tool.duration -------------


def test_an_agent_invocation_records_invoke_agent_duration(pipeline: Pipeline) -> None:
    @spanhooks.agent(name="planner", manager=pipeline.cap.manager)
    def plan(goal: str) -> str:
        return "done"

    plan("trip")
    [point] = pipeline.points("gen_ai.invoke_agent.duration")
    span = pipeline.cap.span("invoke_agent planner")
    assert point.count == 1
    assert point.sum == pytest.approx((span.end_time - span.start_time) / 1e9)  # type: ignore[operator]
    assert tuple(point.explicit_bounds) == AGENT_DURATION_BUCKETS
    assert dict(point.attributes or {}) == {"gen_ai.agent.name": "planner"}


def test_a_failed_agent_invocation_carries_its_error_type(pipeline: Pipeline) -> None:
    @spanhooks.agent(name="planner", manager=pipeline.cap.manager)
    def plan() -> None:
        raise LookupError("no route")

    with pytest.raises(LookupError):
        plan()
    assert pipeline.attributes("gen_ai.invoke_agent.duration") == [
        {"gen_ai.agent.name": "planner", "error.type": "LookupError"}
    ]


def test_an_agent_span_with_a_model_records_it(pipeline: Pipeline) -> None:
    process = {"display_name": "travel-agent", "model_name": "claude-demo"}  # one model
    call = pipeline.cap.manager.emit(CallbackEvent.TURN_START, process)
    pipeline.cap.manager.emit(CallbackEvent.TURN_END, process, None, [], call_id=call)
    assert pipeline.attributes("gen_ai.invoke_agent.duration") == [
        {"gen_ai.agent.name": "travel-agent", "gen_ai.request.model": "claude-demo"}
    ]


def test_a_tool_execution_records_execute_tool_duration(pipeline: Pipeline) -> None:
    @spanhooks.tool(manager=pipeline.cap.manager)
    def search(query: str) -> str:
        return "hit"

    @spanhooks.tool(manager=pipeline.cap.manager)
    def fetch(url: str) -> str:
        raise ConnectionError("refused")

    search("x")
    with pytest.raises(ConnectionError):
        fetch("http://example.invalid")
    points = {(p.attributes or {})["gen_ai.tool.name"]: p for p in pipeline.points(_TOOL)}
    assert {name: dict(p.attributes or {}) for name, p in points.items()} == {
        "search": {"gen_ai.tool.name": "search"},
        "fetch": {"gen_ai.tool.name": "fetch", "error.type": "ConnectionError"},
    }
    assert tuple(points["search"].explicit_bounds) == OPERATION_DURATION_BUCKETS
    assert pipeline.points("gen_ai.client.operation.duration") == []  # tools are no client calls


_TOOL = "gen_ai.execute_tool.duration"


def test_a_tools_type_and_agent_are_recorded_when_its_span_has_them() -> None:
    with capture() as cap:
        pipeline = Pipeline(cap, include_foreign=True)
        pipeline.foreign(
            "execute_tool lookup",
            **{
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "lookup",
                "gen_ai.tool.type": "function",
                "gen_ai.agent.name": "planner",
                "gen_ai.tool.call.id": "call_1",  # no metric attribute
            },
        )
        assert pipeline.attributes(_TOOL) == [
            {
                "gen_ai.tool.name": "lookup",
                "gen_ai.tool.type": "function",
                "gen_ai.agent.name": "planner",
            }
        ]


def test_tool_names_past_the_cardinality_cap_are_recorded_as_other() -> None:
    with capture() as cap:
        pipeline = Pipeline(cap, include_foreign=True)
        for index in range(MAX_LABEL_VALUES + 5):
            pipeline.foreign(
                "execute_tool",
                **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": f"tool-{index}"},
            )
        points = pipeline.points(_TOOL)
        # this processor's own families: a scrape adds up every live processor's
        [family] = [
            f
            for f in pipeline.processor.metric_families()
            if f.name == "gen_ai_execute_tool_duration_seconds"
        ]
    del pipeline, cap
    gc.collect()  # so that later scrapes in this process do not see its thousand series
    names = {(p.attributes or {})["gen_ai.tool.name"]: p.count for p in points}
    assert len(names) == MAX_LABEL_VALUES + 1 and names["other"] == 5
    assert {"tool-0", f"tool-{MAX_LABEL_VALUES - 1}"} <= names.keys()
    assert f"tool-{MAX_LABEL_VALUES}" not in names
    counts = {
        sample.labels["gen_ai_tool_name"]: sample.value
        for sample in family.samples
        if sample.name.endswith("_count")
    }
    assert len(counts) == MAX_LABEL_VALUES + 1 and counts["other"] == 5  # /metrics as well


def test_agent_and_tool_durations_are_served_under_their_prometheus_names(
    pipeline: Pipeline,
) -> None:
    @spanhooks.agent(name="scrape-agent", manager=pipeline.cap.manager)
    def plan() -> None:
        search("y")

    @spanhooks.tool(name="scrape-tool", manager=pipeline.cap.manager)
    def search(query: str) -> str:
        return "hit"

    plan()
    metrics = pipeline.scrape()
    agent = [
        labels
        for labels, _ in metrics["gen_ai_invoke_agent_duration_seconds"]
        if labels.get("gen_ai_agent_name") == "scrape-agent"
    ]
    assert {float(labels["le"]) for labels in agent if "le" in labels} == {
        *AGENT_DURATION_BUCKETS,
        float("inf"),
    }
    assert {k for labels in agent for k in labels} == {"gen_ai_agent_name", "le"}
    tool = [
        labels
        for labels, _ in metrics["gen_ai_execute_tool_duration_seconds"]
        if labels.get("gen_ai_tool_name") == "scrape-tool"
    ]
    assert {k for labels in tool for k in labels} == {"gen_ai_tool_name", "le"}


# -- streams: gen_ai.client.operation.time_per_output_chunk ------------------------------------


def test_a_stream_records_time_per_output_chunk_as_its_mean(pipeline: Pipeline) -> None:
    @spanhooks.llm(model="gpt-4o", provider="openai", manager=pipeline.cap.manager)
    def stream() -> Iterator[str]:
        yield "a"
        for word in ("b", "c", "d"):
            time.sleep(0.01)
            yield word

    assert list(stream()) == ["a", "b", "c", "d"]
    span = dict(pipeline.cap.span("chat gpt-4o").attributes or {})
    assert span["spanhooks.stream.chunks"] == 4
    assert 0.01 <= span[PER_CHUNK] < 0.5  # three gaps of about 10 ms
    [point] = pipeline.points("gen_ai.client.operation.time_per_output_chunk")
    assert (point.count, point.sum) == (1, pytest.approx(span[PER_CHUNK]))
    assert tuple(point.explicit_bounds) == OPERATION_DURATION_BUCKETS
    assert dict(point.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
    }


async def test_an_async_stream_records_time_per_output_chunk(pipeline: Pipeline) -> None:
    @spanhooks.llm(model="gpt-4o", manager=pipeline.cap.manager)
    async def stream() -> AsyncIterator[str]:
        for word in ("a", "b", "c"):
            await asyncio.sleep(0.005)
            yield word

    assert [word async for word in stream()] == ["a", "b", "c"]
    span = dict(pipeline.cap.span("chat gpt-4o").attributes or {})
    [point] = pipeline.points("gen_ai.client.operation.time_per_output_chunk")
    assert point.count == 1 and point.sum == pytest.approx(span[PER_CHUNK]) and point.sum > 0


def test_a_failed_stream_records_its_chunk_time_without_error_type(pipeline: Pipeline) -> None:
    @spanhooks.llm(model="gpt-4o", manager=pipeline.cap.manager)
    def stream() -> Iterator[str]:
        yield "a"
        yield "b"
        raise TimeoutError("stalled")

    with pytest.raises(TimeoutError):
        list(stream())
    [duration] = pipeline.attributes("gen_ai.client.operation.duration")
    assert duration["error.type"] == "TimeoutError"
    [chunks] = pipeline.attributes("gen_ai.client.operation.time_per_output_chunk")
    assert "error.type" not in chunks  # the conventions list no error.type for it


def test_a_one_chunk_stream_and_a_plain_call_record_no_time_per_output_chunk(
    pipeline: Pipeline,
) -> None:
    @spanhooks.llm(model="gpt-4o", manager=pipeline.cap.manager)
    def stream() -> Iterator[str]:
        yield "only"

    list(stream())
    _chat(pipeline.cap)("gpt-4o-mini", "hi")
    assert PER_CHUNK not in (pipeline.cap.span("chat gpt-4o").attributes or {})
    assert pipeline.points("gen_ai.client.operation.time_per_output_chunk") == []
    assert len(pipeline.points("gen_ai.client.operation.time_to_first_chunk")) == 1


def test_time_per_output_chunk_is_served_under_its_prometheus_name(pipeline: Pipeline) -> None:
    @spanhooks.llm(model="chunk-model", manager=pipeline.cap.manager)
    def stream() -> Iterator[str]:
        yield from "abc"

    list(stream())
    series = [
        (labels, value)
        for labels, value in pipeline.scrape()[
            "gen_ai_client_operation_time_per_output_chunk_seconds"
        ]
        if labels.get("gen_ai_request_model") == "chunk-model"
    ]
    assert {float(labels["le"]) for labels, _ in series if "le" in labels} == {
        *OPERATION_DURATION_BUCKETS,
        float("inf"),
    }
    assert all("error_type" not in labels for labels, _ in series)


# -- cache tokens -------------------------------------------------------------------------------


def test_cache_tokens_stay_on_the_span_and_out_of_the_token_types(pipeline: Pipeline) -> None:
    @spanhooks.llm(model="claude", provider="anthropic", manager=pipeline.cap.manager)
    def chat() -> dict[str, Any]:
        usage = {
            "input_tokens": 10,
            "output_tokens": 3,
            "cache_read_input_tokens": 40,
            "cache_creation_input_tokens": 8,
        }
        return {"model": "claude", "usage": usage}

    chat()
    span = dict(pipeline.cap.span("chat claude").attributes or {})
    assert (
        span["gen_ai.usage.cache_read.input_tokens"],
        span["gen_ai.usage.cache_creation.input_tokens"],
    ) == (40, 8)
    types = {a["gen_ai.token.type"] for a in pipeline.attributes("gen_ai.client.token.usage")}
    assert types == {"input", "output"}  # gen_ai.token.type defines no cache values


def test_openais_cached_prompt_tokens_are_cache_read_input_tokens(pipeline: Pipeline) -> None:
    @spanhooks.llm(model="gpt-4o-mini", provider="openai", manager=pipeline.cap.manager)
    def chat() -> dict[str, Any]:
        usage = {
            "prompt_tokens": 50,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 32},
        }
        return {"model": "gpt-4o-mini", "usage": usage}

    chat()
    span = dict(pipeline.cap.span("chat gpt-4o-mini").attributes or {})
    assert span["gen_ai.usage.cache_read.input_tokens"] == 32
    assert span["gen_ai.usage.input_tokens"] == 50


# -- OTEL_SEMCONV_STABILITY_OPT_IN ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (None, GenAINames.LATEST),
        ("gen_ai_latest_experimental", GenAINames.LATEST),
        ("http, gen_ai/dup", GenAINames.DUP),
        ("gen_ai_latest_experimental,gen_ai/dup", GenAINames.DUP),  # dup wins, as in contrib
        ("http/dup,database", GenAINames.LATEST),  # other signals' values change nothing here
    ],
)
def test_the_opt_in_variable_selects_the_genai_names(value: str | None, mode: GenAINames) -> None:
    assert genai_names({} if value is None else {OPT_IN_ENV: value}) is mode


def test_an_unknown_genai_opt_in_value_is_logged_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="spanhooks"):
        assert genai_names({OPT_IN_ENV: "gen_ai_latest"}) is GenAINames.LATEST
    assert "gen_ai_latest" in caplog.text


def test_by_default_the_metrics_carry_only_the_provider_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(OPT_IN_ENV, "gen_ai_latest_experimental")
    with capture() as cap:
        pipeline = Pipeline(cap)
        _chat(cap)("gpt-4o", "hi")
        [attributes] = pipeline.attributes("gen_ai.client.operation.duration")
    assert attributes["gen_ai.provider.name"] == "openai"
    assert "gen_ai.system" not in attributes


def test_dup_mode_adds_the_older_system_name_on_both_sides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(OPT_IN_ENV, "gen_ai/dup")
    with capture() as cap:
        pipeline = Pipeline(cap)
        monkeypatch.delenv(OPT_IN_ENV)  # read once, when the processor was made
        _chat(cap)("dup-model", "hi")
        durations = pipeline.attributes("gen_ai.client.operation.duration")
        tokens = pipeline.attributes("gen_ai.client.token.usage")
        scraped = pipeline.scrape()
    assert [(a["gen_ai.system"], a["gen_ai.provider.name"]) for a in durations] == [
        ("openai", "openai")
    ]
    assert {a["gen_ai.system"] for a in tokens} == {"openai"}
    series = [
        labels
        for labels, _ in scraped["gen_ai_client_token_usage"]
        if labels.get("gen_ai_request_model") == "dup-model"
    ]
    assert series and all(labels["gen_ai_system"] == "openai" for labels in series)
    assert {labels["gen_ai_token_type"] for labels in series} == {"input", "output"}


def test_processors_of_both_modes_mirror_in_multiprocess_mode_with_one_label_list(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """gen_ai_system is declared in every mode, so a family keeps one label-name list even
    with a dup processor and a default one in the same process (the mirror needs one)."""
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    caplog.set_level(logging.ERROR, logger="spanhooks")
    with capture() as cap:
        monkeypatch.setenv(OPT_IN_ENV, "gen_ai/dup")
        Pipeline(cap)
        monkeypatch.delenv(OPT_IN_ENV)
        Pipeline(cap)
        _chat(cap)("mirrored-both", "hi")
        mirror = MultiprocessMirror(interval=3600)
        mirror.close()
    assert [record.getMessage() for record in caplog.records] == []


# -- prompt name and version ---------------------------------------------------------------------


def test_a_prompt_name_and_version_are_recorded_on_the_model_calls_span(
    pipeline: Pipeline,
) -> None:
    @spanhooks.llm(
        model="gpt-4o", prompt_name="summarise", prompt_version=3, manager=pipeline.cap.manager
    )
    def chat(text: str) -> str:
        return "short"

    @spanhooks.llm(model="gpt-4o", prompt_name="summarise", manager=pipeline.cap.manager)
    async def stream() -> AsyncIterator[str]:
        yield "a"

    chat("long")
    asyncio.run(_drain(stream()))
    first, second = pipeline.cap.spans("chat gpt-4o")
    assert {k: v for k, v in (first.attributes or {}).items() if "prompt" in k} == {
        "gen_ai.prompt.name": "summarise",
        "spanhooks.prompt.version": "3",
    }
    assert (second.attributes or {})["gen_ai.prompt.name"] == "summarise"
    # the conventions list the prompt name for no metric
    assert all("gen_ai.prompt.name" not in a for a in pipeline.attributes(_DURATION))


_DURATION = "gen_ai.client.operation.duration"


async def _drain(stream: AsyncIterator[str]) -> None:
    async for _ in stream:
        pass


def test_a_prompt_name_does_not_leak_onto_the_callers_span_when_nothing_is_traced() -> None:
    manager = spanhooks.CallbackManager(enabled=False)

    @spanhooks.llm(model="gpt-4o", prompt_name="summarise", manager=manager)
    def chat() -> str:
        return "ok"

    with capture() as cap:
        with cap.tracer.start_as_current_span("caller"):
            chat()
        assert "gen_ai.prompt.name" not in (cap.span("caller").attributes or {})


@pytest.mark.parametrize(
    "kwargs",
    [{"prompt_name": ""}, {"prompt_name": 7}, {"prompt_version": "1"}, {"prompt_version": True}],
)
def test_bad_prompt_arguments_are_refused_when_decorating(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        spanhooks.llm(model="gpt-4o", **kwargs)
