"""Fault-injection fixtures: a collector behind a switchable proxy, and setup() pipelines.

Pipelines are the real ``spanhooks.setup()`` wiring on a private TracerProvider (the global
one can be set once per process), torn down with ``shutdown()`` after each test.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.registry import CollectorRegistry

import spanhooks
from spanhooks import CallbackManager
from spanhooks.lifecycle.setup import Telemetry

from ._proxy import FaultProxy, Sink, collector


@pytest.fixture
def sink_and_proxy() -> Iterator[tuple[Sink, FaultProxy]]:
    with collector("pass") as pair:
        yield pair


Pipeline = Callable[..., Telemetry]


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    """``pipeline(otlp_endpoint=..., **setup_options)``: a set-up Telemetry, shut down after."""
    made: list[Telemetry] = []

    def make(**options: Any) -> Telemetry:
        options.setdefault("jsonl_path", tmp_path / "spans.jsonl")
        telemetry = spanhooks.setup(
            tracer_provider=TracerProvider(),
            manager=CallbackManager(),
            registry=CollectorRegistry(),
            **options,
        )
        made.append(telemetry)
        return telemetry

    yield make
    for telemetry in made:
        telemetry.shutdown()


def produce(telemetry: Telemetry, count: int) -> list[int]:
    """End ``count`` spans on the pipeline's provider; their span ids."""
    assert telemetry.tracer_provider is not None
    tracer = telemetry.tracer_provider.get_tracer("faults")
    ids = []
    for index in range(count):
        span = tracer.start_span(f"op {index}")
        span.end()
        ids.append(span.get_span_context().span_id)
    return ids


def jsonl_ids(path: Path) -> set[int]:
    return {int(json.loads(line)["span_id"], 16) for line in path.read_text().splitlines()}


def otlp(telemetry: Telemetry) -> Any:
    """The OTLP exporter's accounting."""
    (found,) = [exporter for exporter in telemetry.exporters if exporter.name == "otlp"]
    return found


def dropped_metric(telemetry: Telemetry, reason: str) -> float | None:
    assert telemetry.registry is not None
    return telemetry.registry.get_sample_value(
        "spanhooks_spans_dropped_total", {"exporter": "otlp", "reason": reason}
    )
