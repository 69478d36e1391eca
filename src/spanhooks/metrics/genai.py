"""The OpenTelemetry GenAI client metrics, recorded from ended GenAI spans.

:class:`GenAIMetricsProcessor` turns every ended span of a model or agent call into
``gen_ai.client.operation.duration`` (seconds) and ``gen_ai.client.token.usage`` (input and
output tokens, by ``gen_ai.token.type``), plus ``gen_ai.client.operation.time_to_first_chunk``
for streams, with the conventions' bucket boundaries and attributes. They are recorded twice
from the same observation: through the OpenTelemetry metrics API (so a MeterProvider exports
them over OTLP) and into histograms that ``/metrics`` serves under the Prometheus names
(``gen_ai_client_operation_duration_seconds``, ``gen_ai_client_token_usage``...). Both sides
carry an attribute the conventions make conditional (``error.type`` on failure,
``server.port`` when known) only when the span has it: absent, not empty (on ``/metrics``
except in multiprocess mode, see :meth:`GenAIMetricsProcessor.metric_families`).

By default only spanhooks' own spans count (decorators and event sets): instrumentations that
follow the conventions, such as openai-v2, record these metrics themselves, and counting their
spans again would double them. ``include_foreign=True`` counts every GenAI span.

Threading contract: ``on_end`` may run on any thread; each histogram takes its own short lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode
from prometheus_client.core import Metric
from prometheus_client.samples import Sample

from spanhooks._version import __version__
from spanhooks.events.scope import event_set_of
from spanhooks.metrics.families import (
    GEN_AI_OPERATION_DURATION,
    GEN_AI_TIME_TO_FIRST_CHUNK,
    GEN_AI_TOKEN_USAGE,
    BucketHistogram,
    register_source,
)
from spanhooks.metrics.multiprocess import multiprocess_dir
from spanhooks.util.redaction import current_pattern, scrub

__all__ = [
    "CLIENT_OPERATIONS",
    "OPERATION_DURATION_BUCKETS",
    "TOKEN_USAGE_BUCKETS",
    "GenAIMetricsProcessor",
]

OPERATION_DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
"""Seconds: the explicit boundaries the GenAI conventions advise for durations."""

TOKEN_USAGE_BUCKETS = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
"""Tokens: the explicit boundaries the GenAI conventions advise for token usage."""

CLIENT_OPERATIONS = frozenset(
    {
        "chat",
        "text_completion",
        "generate_content",
        "embeddings",
        "create_agent",
        "invoke_agent",
    }
)
"""``gen_ai.operation.name`` values that are client operations (tool calls are not)."""

_ATTRIBUTES = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "server.address",
    "server.port",
    "error.type",
)
_TOKEN_COUNTS = (("input", "gen_ai.usage.input_tokens"), ("output", "gen_ai.usage.output_tokens"))


class GenAIMetricsProcessor(SpanProcessor):
    """Records the GenAI client metrics from each ended GenAI client span; see the module doc.

    ``meter_provider`` defaults to the global one (a no-op until one is set).
    """

    def __init__(
        self,
        meter_provider: metrics.MeterProvider | None = None,
        *,
        include_foreign: bool = False,
    ) -> None:
        self.include_foreign = include_foreign
        self.durations = BucketHistogram(OPERATION_DURATION_BUCKETS)
        self.tokens = BucketHistogram(TOKEN_USAGE_BUCKETS)
        self.first_chunks = BucketHistogram(OPERATION_DURATION_BUCKETS)
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = provider.get_meter("spanhooks", __version__)
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(OPERATION_DURATION_BUCKETS),
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=[float(b) for b in TOKEN_USAGE_BUCKETS],
        )
        self._first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk of a streaming response.",
            explicit_bucket_boundaries_advisory=list(OPERATION_DURATION_BUCKETS),
        )
        register_source(self)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes
        if not attributes or span.start_time is None or span.end_time is None:
            return
        if attributes.get("gen_ai.operation.name") not in CLIENT_OPERATIONS:
            return
        if not self.include_foreign and event_set_of(span) is None:
            return
        recorded = _recorded_attributes(attributes, span.status.status_code)
        labels = tuple(str(recorded.get(key, "")) for key in _ATTRIBUTES)
        trace_id = format(span.context.trace_id, "032x") if span.context is not None else None
        seconds = (span.end_time - span.start_time) / 1e9
        self.durations.observe(labels, seconds, trace_id)
        self._duration.record(seconds, recorded)
        for token_type, key in _TOKEN_COUNTS:
            count = attributes.get(key)
            if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
                self.tokens.observe((*labels, token_type), count, trace_id)
                self._tokens.record(count, {**recorded, "gen_ai.token.type": token_type})
        first_chunk = attributes.get("gen_ai.response.time_to_first_chunk")
        if isinstance(first_chunk, float):
            self.first_chunks.observe(labels, first_chunk, trace_id)
            self._first_chunk.record(first_chunk, recorded)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def metric_families(self) -> Iterable[Metric]:
        """The three histograms; a series leaves out the labels its spans had no attribute for
        (``error_type`` of a call that succeeded, ``server_port`` unknown), as the OTLP side
        does, instead of exporting them as ``""``.

        In multiprocess mode the labels stay, empty: the mirror copies each family into one
        prometheus_client histogram, whose label names are fixed, and series of one family
        with different label names would fail there. Prometheus stores an empty label as
        absent, so queries (``error_type!=""``) read both the same.
        """
        fixed = multiprocess_dir() is not None
        for histogram, definition in (
            (self.durations, GEN_AI_OPERATION_DURATION),
            (self.tokens, GEN_AI_TOKEN_USAGE),
            (self.first_chunks, GEN_AI_TIME_TO_FIRST_CHUNK),
        ):
            family = histogram.family(definition)
            if not fixed:
                family.samples = [_without_absent(sample) for sample in family.samples]
            yield family


def _without_absent(sample: Sample) -> Sample:
    """``sample`` without its empty labels: those whose attribute the spans did not have."""
    if "" not in sample.labels.values():
        return sample
    return sample._replace(labels={k: v for k, v in sample.labels.items() if v != ""})


def _recorded_attributes(attributes: Mapping[str, Any], status: StatusCode) -> dict[str, Any]:
    """The conventions' metric attributes present on the span (``gen_ai.system`` is the older
    name of ``gen_ai.provider.name``; a failed span without ``error.type`` gets ``_OTHER``)."""
    recorded = {key: attributes[key] for key in _ATTRIBUTES if key in attributes}
    if "gen_ai.provider.name" not in recorded and "gen_ai.system" in attributes:
        recorded["gen_ai.provider.name"] = attributes["gen_ai.system"]
    if status is StatusCode.ERROR and "error.type" not in recorded:
        recorded["error.type"] = "_OTHER"
    pattern = current_pattern()  # spanhooks' own spans are scrubbed already; foreign ones not
    if pattern is not None:
        recorded = {k: scrub(v, pattern) if type(v) is str else v for k, v in recorded.items()}
    return recorded
