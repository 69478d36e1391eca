"""Spans from other instrumentations reach the user's callbacks as genai events.

The model calls are real: the ``openai`` client, instrumented by the real
opentelemetry-instrumentation-openai-v2, talks to a small OpenAI-compatible HTTP server on
127.0.0.1 that this module runs (plain, streaming and failing completions).
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

import spanhooks
from spanhooks import ForeignSpanBridge, GenAIEvent
from spanhooks.testing import Capture, capture

USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}


class _OpenAICompatible(http.server.BaseHTTPRequestHandler):
    """``POST /v1/chat/completions``: a fixed answer, streamed when asked; model "broken" fails."""

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if request["model"] == "broken":
            self._reply(500, {"error": {"message": "model overloaded", "type": "server_error"}})
        elif request.get("stream"):
            self._stream(request["model"])
        else:
            self._reply(200, self._completion(request["model"]))

    def _completion(self, model: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": f"{model}-2024",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello there"},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }

    def _stream(self, model: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1}
        chunks = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]},
            {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
            {"choices": [], "usage": USAGE},
        ]
        for chunk in chunks:
            data = json.dumps({**base, "model": f"{model}-2024", **chunk})
            self.wfile.write(f"data: {data}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def model_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OpenAICompatible)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture
def instrumented() -> Iterator[Capture]:
    """A capture pipeline with the bridge, and openai-v2 instrumenting the openai client."""
    with capture() as cap:
        cap.provider.add_span_processor(ForeignSpanBridge(cap.manager))
        OpenAIInstrumentor().instrument(tracer_provider=cap.provider)
        try:
            yield cap
        finally:
            OpenAIInstrumentor().uninstrument()


def _client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="test-key", max_retries=0)


class Recorder(spanhooks.AbstractCallback):
    """A class callback, as users write them: one method per event."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any, ...]] = []

    def on_llm_start(self, model: Any, inputs: Any, provider: Any, operation: Any) -> None:
        self.seen.append(("start", model, provider, operation, inputs))

    def on_llm_end(self, model: Any, output: Any, error: Any) -> None:
        self.seen.append(("end", model, output, error))


def test_an_openai_chat_call_reaches_callbacks_as_llm_start_and_end(
    instrumented: Capture, model_server: str
) -> None:
    recorder = Recorder()
    instrumented.manager.register(recorder)
    _client(model_server).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], temperature=0.2
    )
    [start, end] = recorder.seen
    assert start == ("start", "gpt-4o-mini", "openai", "chat", {"model": "gpt-4o-mini"})
    assert end[0:2] == ("end", "gpt-4o-mini-2024")
    assert end[2]["id"] == "chatcmpl-1"
    assert end[2]["usage"] == {"input_tokens": 9, "output_tokens": 3}
    assert end[2]["choices"] == [{"finish_reason": "stop"}]
    assert end[3] is None


def test_named_and_generic_callbacks_receive_them_too(
    instrumented: Capture, model_server: str
) -> None:
    usage: list[Any] = []
    events: list[Any] = []
    instrumented.manager.register(
        GenAIEvent.LLM_END, lambda model, output, error: usage.append(output["usage"])
    )
    instrumented.manager.register(lambda event, *args, **kwargs: events.append(event))
    _client(model_server).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert usage == [{"input_tokens": 9, "output_tokens": 3}]
    assert events == [GenAIEvent.LLM_START, GenAIEvent.LLM_END]


def test_a_streamed_call_ends_with_its_usage(instrumented: Capture, model_server: str) -> None:
    recorder = Recorder()
    instrumented.manager.register(recorder)
    stream = _client(model_server).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello"
    [start, end] = recorder.seen
    assert start[0] == "start" and end[0] == "end"
    assert end[2]["usage"] == {"input_tokens": 9, "output_tokens": 3}


def test_a_failed_call_ends_with_its_error(instrumented: Capture, model_server: str) -> None:
    recorder = Recorder()
    instrumented.manager.register(recorder)
    with pytest.raises(openai.InternalServerError):
        _client(model_server).chat.completions.create(
            model="broken", messages=[{"role": "user", "content": "hi"}]
        )
    [_, end] = recorder.seen
    assert end[0] == "end"
    assert end[3] == "openai.InternalServerError: Error code: 500 - model overloaded"


def test_the_foreign_span_is_not_recorded_again(instrumented: Capture, model_server: str) -> None:
    instrumented.manager.register(Recorder())
    _client(model_server).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert [span.name for span in instrumented.spans()] == ["chat gpt-4o-mini"]


def test_spanhooks_own_spans_are_not_dispatched_twice() -> None:
    with capture() as cap:
        cap.provider.add_span_processor(ForeignSpanBridge(cap.manager))
        ends: list[Any] = []
        cap.manager.register(GenAIEvent.LLM_END, lambda model, output, error: ends.append(model))

        @spanhooks.llm(model="local", manager=cap.manager)
        def chat() -> dict[str, Any]:
            return {"usage": {"input_tokens": 1, "output_tokens": 1}}

        chat()
    assert ends == ["local"]


def test_hand_made_tool_and_agent_spans_of_another_library_are_bridged() -> None:
    with capture(capture_content=True) as cap:
        cap.provider.add_span_processor(ForeignSpanBridge(cap.manager))
        seen: list[Any] = []
        cap.manager.register(lambda event, *args, **kwargs: seen.append((event, *args)))
        tracer = cap.provider.get_tracer("some.agent.framework")
        agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}
        tool = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "search",
            "gen_ai.tool.call.arguments": '{"q": "otel"}',
        }
        with (
            tracer.start_as_current_span("invoke_agent planner", attributes=agent),
            tracer.start_as_current_span("execute_tool search", attributes=tool) as span,
        ):
            span.set_attribute("gen_ai.tool.call.result", "3 hits")
    assert seen == [
        (GenAIEvent.AGENT_START, "planner", {}),
        (GenAIEvent.TOOL_CALL_START, "search", '{"q": "otel"}'),
        (GenAIEvent.TOOL_CALL_END, "search", "3 hits", None),
        (GenAIEvent.AGENT_END, "planner", None, None),
    ]


def test_tool_content_is_withheld_unless_content_is_captured() -> None:
    with capture() as cap:
        cap.provider.add_span_processor(ForeignSpanBridge(cap.manager))
        arguments: list[Any] = []
        cap.manager.register(
            GenAIEvent.TOOL_CALL_START, lambda tool_name, arguments_: arguments.append(arguments_)
        )
        tool = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "search",
            "gen_ai.tool.call.arguments": '{"q": "secret"}',
        }
        with cap.provider.get_tracer("lib").start_as_current_span("t", attributes=tool):
            pass
    assert arguments == [None]


APP = """
import spanhooks
from opentelemetry import trace
spanhooks.setup(jsonl=False)
spanhooks.register(lambda event, *args, **kwargs: print(event.value, *args))
attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}
with trace.get_tracer("some.agent.framework").start_as_current_span("t", attributes=attributes):
    pass
"""


@pytest.mark.parametrize(("setting", "expected"), [(None, 2), ("false", 0)])
def test_setup_bridges_foreign_spans_unless_turned_off(
    tmp_path: Path, setting: str | None, expected: int
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    if setting is not None:
        env["SPANHOOKS_FOREIGN_SPANS"] = setting
    done = subprocess.run(
        [sys.executable, "-c", APP],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == ["tool_call_start search None", "tool_call_end search None None"][:expected]


def test_a_bridge_needs_a_callback_manager() -> None:
    with pytest.raises(TypeError, match="must be a CallbackManager"):
        ForeignSpanBridge(object())  # type: ignore[arg-type]


# -- stacked instrumentations: @spanhooks.llm around the openai client under openai-v2 ----------


@pytest.fixture
def stacked(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any, Any, Any]]:
    """setup()'s pipeline on a private provider (stacked mode from the test's param), the
    GenAI metrics processor in it, openai-v2 on the same tracer and meter providers: the
    manager, the span exporter, the metric reader and the processor."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from spanhooks.lifecycle.pipeline import Pipeline
    from spanhooks.metrics.cost import Prices
    from spanhooks.metrics.genai import GenAIMetricsProcessor
    from spanhooks.tracing.stacked import StackedSpans

    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    manager = spanhooks.CallbackManager(tracer_provider=provider)
    genai_metrics = GenAIMetricsProcessor(meters)
    prices = Prices({"gpt-4o-mini-2024": {"input": 1.0, "output": 2.0}}, use_genai_prices=False)
    pipeline = Pipeline(prices, stacked=StackedSpans(request.param))
    pipeline.processors = (
        genai_metrics,
        ForeignSpanBridge(manager),
        SimpleSpanProcessor(exporter),
    )
    provider.add_span_processor(pipeline)
    OpenAIInstrumentor().instrument(tracer_provider=provider, meter_provider=meters)
    try:
        yield manager, exporter, reader, genai_metrics
    finally:
        OpenAIInstrumentor().uninstrument()


def _ask(manager: Any, model_server: str) -> None:
    @spanhooks.llm(manager=manager, model="gpt-4o-mini", provider="openai")
    def ask(question: str) -> Any:
        return _client(model_server).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}], temperature=0.2
        )

    ask("hi")


def _otel_duration_count(reader: Any) -> int:
    data = reader.get_metrics_data()
    return sum(
        point.count
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "gen_ai.client.operation.duration"
        for point in metric.data.data_points
    )


def _prometheus_duration_count(genai_metrics: Any) -> float:
    return sum(
        sample.value
        for family in genai_metrics.metric_families()
        for sample in family.samples
        if sample.name == "gen_ai_client_operation_duration_seconds_count"
    )


@pytest.mark.parametrize("stacked", ["merge"], indirect=True)
def test_a_stacked_call_is_one_span_with_both_instrumentations_attributes(
    stacked: tuple[Any, Any, Any, Any], model_server: str
) -> None:
    manager, exporter, _, _ = stacked
    _ask(manager, model_server)
    [chat] = exporter.get_finished_spans()  # one span for the one call
    attributes = chat.attributes or {}
    assert chat.name == "chat gpt-4o-mini"
    assert chat.instrumentation_scope.name.startswith("spanhooks")
    assert attributes["spanhooks.stacked"] == "merged"
    assert str(attributes["spanhooks.stacked.scope"]).startswith("opentelemetry.")  # openai-v2
    assert attributes["gen_ai.request.temperature"] == 0.2  # only openai-v2 saw it
    assert attributes["gen_ai.response.id"] == "chatcmpl-1"
    assert attributes["gen_ai.usage.input_tokens"] == 9
    assert attributes["gen_ai.usage.cost"] == pytest.approx((9 * 1.0 + 3 * 2.0) / 1e6)


@pytest.mark.parametrize("stacked", ["merge", "keep"], indirect=True)
def test_a_stacked_call_counts_once_in_every_metric(
    stacked: tuple[Any, Any, Any, Any], model_server: str
) -> None:
    manager, _, reader, genai_metrics = stacked
    _ask(manager, model_server)
    assert _otel_duration_count(reader) == 1  # openai-v2's; spanhooks' outer span adds none
    assert _prometheus_duration_count(genai_metrics) == 1  # /metrics: spanhooks' own, once


@pytest.mark.parametrize("stacked", ["keep"], indirect=True)
def test_keep_mode_exports_both_spans_marked_and_prices_the_inner_one(
    stacked: tuple[Any, Any, Any, Any], model_server: str
) -> None:
    manager, exporter, _, _ = stacked
    _ask(manager, model_server)
    inner, outer = exporter.get_finished_spans()
    assert (inner.attributes or {})["spanhooks.stacked"] == "inner"
    assert (outer.attributes or {})["spanhooks.stacked"] == "outer"
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert "gen_ai.usage.cost" in (inner.attributes or {})
    assert "gen_ai.usage.cost" not in (outer.attributes or {})


@pytest.mark.parametrize("stacked", ["merge", "keep"], indirect=True)
def test_callbacks_see_a_stacked_call_once(
    stacked: tuple[Any, Any, Any, Any], model_server: str
) -> None:
    manager = stacked[0]
    recorder = Recorder()
    manager.register(recorder)
    _ask(manager, model_server)
    assert [seen[0] for seen in recorder.seen] == ["start", "end"]


def test_an_unknown_stacked_mode_is_refused() -> None:
    from spanhooks.tracing.stacked import StackedSpans

    with pytest.raises(ValueError, match="merge, keep"):
        StackedSpans("dedupe")
