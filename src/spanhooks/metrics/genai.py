"""The OpenTelemetry GenAI metrics, recorded from ended GenAI spans.

:class:`GenAIMetricsProcessor` turns every ended span of a model or agent call into
``gen_ai.client.operation.duration`` (seconds) and ``gen_ai.client.token.usage`` (input and
output tokens, by ``gen_ai.token.type``), plus, for streams,
``gen_ai.client.operation.time_to_first_chunk`` and
``gen_ai.client.operation.time_per_output_chunk``; every agent invocation (an ``invoke_agent``
span) into ``gen_ai.invoke_agent.duration``, and every tool execution (``execute_tool``) into
``gen_ai.execute_tool.duration``; each with the conventions' bucket boundaries and attributes.
They are recorded twice from the same observation: through the OpenTelemetry metrics API (so a
MeterProvider exports them over OTLP) and into histograms that ``/metrics`` serves under the
Prometheus names (``gen_ai_client_operation_duration_seconds``, ``gen_ai_client_token_usage``,
``gen_ai_invoke_agent_duration_seconds``...). Both sides carry an attribute the conventions make
conditional (``error.type`` on failure, ``server.port`` when known, ``gen_ai.agent.name`` of a
tool's agent) only when the span has it: absent, not empty (on ``/metrics`` except in
multiprocess mode, see :meth:`GenAIMetricsProcessor.metric_families`).

Which conventions: the client metrics and their attributes as opentelemetry-semantic-conventions
0.66b2 and opentelemetry-util-genai 1.1b0 define them; the agent and tool durations, which those
packages do not define yet, as the GenAI conventions repository (semantic-conventions-genai,
``model/gen-ai/metrics.yaml``) defines them: ``gen_ai.invoke_agent.duration`` with
``error.type``, ``gen_ai.agent.name`` and ``gen_ai.request.model`` (set on agent spans whose
agent has one model) and buckets from 0.1 s to 409.6 s; ``gen_ai.execute_tool.duration`` with
``error.type``, ``gen_ai.tool.name``, ``gen_ai.tool.type`` and ``gen_ai.agent.name`` and the
client duration's buckets. Agent and tool names come from the application: their values pass
through a :class:`~spanhooks.metrics.cardinality.SeriesLimiter` (1,000 per label, 1,000
combinations, then ``other``) before either side records them.

An ``invoke_agent`` span counts in the client metrics as well (``invoke_agent`` is a client
operation when the agent is remote, and spanhooks has always counted it there); the conventions
allow both boundaries for one request path.

``gen_ai.client.operation.time_per_output_chunk`` is recorded once per stream of two or more
chunks, with the stream's mean time per chunk after the first (the span's
``spanhooks.stream.time_per_output_chunk``, set by the decorators), not once per chunk as the
conventions describe: timing every chunk would cost the stream a clock read per chunk, and
recording every gap would cost the span's end one measurement per chunk. Its sum over its count
is therefore the mean of the streams' means. Cache tokens (``gen_ai.usage.cache_read.input_tokens``,
``gen_ai.usage.cache_creation.input_tokens``) stay on the spans: ``gen_ai.token.type`` defines
only ``input`` and ``output``, so the token histogram does not count them apart.

``OTEL_SEMCONV_STABILITY_OPT_IN`` is read once, by the constructor (:mod:`spanhooks.util.semconv`):
with ``gen_ai/dup`` the client metrics carry ``gen_ai.system`` beside ``gen_ai.provider.name``.

By default only spanhooks' own spans count (decorators and event sets): instrumentations that
follow the conventions, such as openai-v2, record these metrics themselves, and counting their
spans again would double them. ``include_foreign=True`` counts every GenAI span.

Threading contract: ``on_end`` may run on any thread; each histogram takes its own short lock,
and the label limiters are lock-free once a value is known.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode
from prometheus_client.core import Metric
from prometheus_client.samples import Sample

from spanhooks._version import __version__
from spanhooks.events.scope import event_set_of
from spanhooks.metrics.cardinality import SeriesLimiter
from spanhooks.metrics.families import (
    GEN_AI_EXECUTE_TOOL_DURATION,
    GEN_AI_INVOKE_AGENT_DURATION,
    GEN_AI_OPERATION_DURATION,
    GEN_AI_TIME_PER_OUTPUT_CHUNK,
    GEN_AI_TIME_TO_FIRST_CHUNK,
    GEN_AI_TOKEN_USAGE,
    BucketHistogram,
    register_source,
)
from spanhooks.metrics.multiprocess import multiprocess_dir
from spanhooks.util.redaction import current_pattern, scrub
from spanhooks.util.semconv import RENAMED, GenAINames, genai_names

__all__ = [
    "AGENT_DURATION_BUCKETS",
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

AGENT_DURATION_BUCKETS = (
    0.1,
    0.2,
    0.4,
    0.8,
    1.6,
    3.2,
    6.4,
    12.8,
    25.6,
    51.2,
    102.4,
    204.8,
    409.6,
)
"""Seconds: the explicit boundaries the GenAI conventions advise for agent invocations."""

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
"""The client metrics' attributes (``time_per_output_chunk`` has no ``error.type``)."""
_CHUNK_ATTRIBUTES = tuple(key for key in _ATTRIBUTES if key != "error.type")
_OLDER = tuple(old for _, old in RENAMED)
_CLIENT_LABELS = (*_ATTRIBUTES, *_OLDER)
"""The client histograms' labels on ``/metrics``, in every mode: the older names stay empty
(absent) unless ``gen_ai/dup`` fills them, so each family has one label-name list."""
_CHUNK_LABELS = (*_CHUNK_ATTRIBUTES, *_OLDER)
_AGENT_ATTRIBUTES = ("gen_ai.agent.name", "gen_ai.request.model", "error.type")
_TOOL_ATTRIBUTES = ("gen_ai.tool.name", "gen_ai.tool.type", "gen_ai.agent.name", "error.type")
_STACKED_OUTER = frozenset({"merged", "outer"})
_TOKEN_COUNTS = (("input", "gen_ai.usage.input_tokens"), ("output", "gen_ai.usage.output_tokens"))
_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
_PER_CHUNK = "spanhooks.stream.time_per_output_chunk"  # vocab.genai.TIME_PER_OUTPUT_CHUNK
_STACKED = "spanhooks.stacked"  # tracing.stacked.STACKED_ATTRIBUTE


class GenAIMetricsProcessor(SpanProcessor):
    """Records the GenAI metrics from each ended GenAI client, agent and tool span; see the
    module doc.

    ``meter_provider`` defaults to the global one (a no-op until one is set). The attribute
    names follow ``OTEL_SEMCONV_STABILITY_OPT_IN`` as it is when the processor is made.
    """

    def __init__(
        self,
        meter_provider: metrics.MeterProvider | None = None,
        *,
        include_foreign: bool = False,
    ) -> None:
        self.include_foreign = include_foreign
        self.names = genai_names()
        older = _OLDER if self.names is GenAINames.DUP else ()
        self._client_keys = (*_ATTRIBUTES, *older)
        """The client metrics' attributes in this mode (the older names too with dup)."""
        self.durations = BucketHistogram(OPERATION_DURATION_BUCKETS)
        self.tokens = BucketHistogram(TOKEN_USAGE_BUCKETS)
        self.first_chunks = BucketHistogram(OPERATION_DURATION_BUCKETS)
        self.chunk_times = BucketHistogram(OPERATION_DURATION_BUCKETS)
        self.agent_durations = BucketHistogram(AGENT_DURATION_BUCKETS)
        self.tool_durations = BucketHistogram(OPERATION_DURATION_BUCKETS)
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = provider.get_meter("spanhooks", __version__)
        seconds = list(OPERATION_DURATION_BUCKETS)
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=seconds,
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
            explicit_bucket_boundaries_advisory=seconds,
        )
        self._per_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_per_output_chunk",
            unit="s",
            description="Time per output chunk after the first one of a streaming response.",
            explicit_bucket_boundaries_advisory=seconds,
        )
        agent = meter.create_histogram(
            "gen_ai.invoke_agent.duration",
            unit="s",
            description="The end-to-end duration of a single agent invocation.",
            explicit_bucket_boundaries_advisory=list(AGENT_DURATION_BUCKETS),
        )
        tool = meter.create_histogram(
            "gen_ai.execute_tool.duration",
            unit="s",
            description="The duration of a single tool execution.",
            explicit_bucket_boundaries_advisory=seconds,
        )
        self._own_durations = {
            "invoke_agent": _Duration(_AGENT_ATTRIBUTES, self.agent_durations, agent),
            "execute_tool": _Duration(_TOOL_ATTRIBUTES, self.tool_durations, tool),
        }
        """The operations with a duration metric of their own, by ``gen_ai.operation.name``."""
        register_source(self)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes
        if not attributes or span.start_time is None or span.end_time is None:
            return
        operation = attributes.get("gen_ai.operation.name")
        client = operation in CLIENT_OPERATIONS
        own = self._own_durations.get(operation) if isinstance(operation, str) else None
        if not client and own is None:
            return
        if not self.include_foreign and event_set_of(span) is None:
            return
        status = span.status.status_code
        trace_id = format(span.context.trace_id, "032x") if span.context is not None else None
        seconds = (span.end_time - span.start_time) / 1e9
        # A call another instrumentation traced too (tracing/stacked.py) recorded its metrics
        # through the API already: here it counts on /metrics only.
        api = attributes.get(_STACKED) not in _STACKED_OUTER
        if own is not None:
            own.record(attributes, status, seconds, trace_id, api=api)
        if client:
            self._client(attributes, status, seconds, trace_id, api=api)

    def _client(
        self,
        attributes: Mapping[str, Any],
        status: StatusCode,
        seconds: float,
        trace_id: str | None,
        *,
        api: bool,
    ) -> None:
        """The client metrics of one model (or agent) call; through the metrics API too
        unless ``api`` is false."""
        recorded = _recorded_attributes(attributes, status, self._client_keys)
        labels = tuple(str(recorded.get(key, "")) for key in _CLIENT_LABELS)
        self.durations.observe(labels, seconds, trace_id)
        if api:
            self._duration.record(seconds, recorded)
        for token_type, key in _TOKEN_COUNTS:
            count = attributes.get(key)
            if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
                self.tokens.observe((*labels, token_type), count, trace_id)
                if api:
                    self._tokens.record(count, {**recorded, "gen_ai.token.type": token_type})
        first_chunk = attributes.get(_FIRST_CHUNK)
        if isinstance(first_chunk, float):
            self.first_chunks.observe(labels, first_chunk, trace_id)
            if api:
                self._first_chunk.record(first_chunk, recorded)
        per_chunk = attributes.get(_PER_CHUNK)
        if isinstance(per_chunk, float):
            chunk_recorded = {k: v for k, v in recorded.items() if k != "error.type"}
            chunk_labels = tuple(str(recorded.get(key, "")) for key in _CHUNK_LABELS)
            self.chunk_times.observe(chunk_labels, per_chunk, trace_id)
            if api:
                self._per_chunk.record(per_chunk, chunk_recorded)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def metric_families(self) -> Iterable[Metric]:
        """The six histograms; a series leaves out the labels its spans had no attribute for
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
            (self.chunk_times, GEN_AI_TIME_PER_OUTPUT_CHUNK),
            (self.agent_durations, GEN_AI_INVOKE_AGENT_DURATION),
            (self.tool_durations, GEN_AI_EXECUTE_TOOL_DURATION),
        ):
            family = histogram.family(definition)
            if not fixed:
                family.samples = [_without_absent(sample) for sample in family.samples]
            yield family


class _Duration:
    """One operation's own duration metric (an agent's, a tool's): its attributes, capped by
    one limiter for both sides, its ``/metrics`` histogram and its OpenTelemetry instrument."""

    __slots__ = ("histogram", "instrument", "keys", "limiter")

    def __init__(
        self, keys: tuple[str, ...], histogram: BucketHistogram, instrument: metrics.Histogram
    ) -> None:
        self.keys = keys
        self.limiter = SeriesLimiter(keys)
        self.histogram = histogram
        self.instrument = instrument

    def record(
        self,
        attributes: Mapping[str, Any],
        status: StatusCode,
        seconds: float,
        trace_id: str | None,
        *,
        api: bool = True,
    ) -> None:
        keys = self.keys
        recorded = _recorded_attributes(attributes, status, keys)
        labels = self.limiter.limit([str(recorded.get(key, "")) for key in keys])
        self.histogram.observe(labels, seconds, trace_id)
        if api:
            capped = {k: v for k, v in zip(keys, labels, strict=True) if v}
            self.instrument.record(seconds, capped)


def _without_absent(sample: Sample) -> Sample:
    """``sample`` without its empty labels: those whose attribute the spans did not have."""
    if "" not in sample.labels.values():
        return sample
    return sample._replace(labels={k: v for k, v in sample.labels.items() if v != ""})


def _recorded_attributes(
    attributes: Mapping[str, Any], status: StatusCode, keys: Sequence[str]
) -> dict[str, Any]:
    """The metric attributes among ``keys`` present on the span (``gen_ai.system`` is the older
    name of ``gen_ai.provider.name``, read for it and, with ``gen_ai/dup``, written beside it
    from it; a failed span without ``error.type`` gets ``_OTHER``)."""
    recorded = {key: attributes[key] for key in keys if key in attributes}
    for new, old in RENAMED:
        if new in keys and new not in recorded and old in attributes:
            recorded[new] = attributes[old]
        if old in keys and new in recorded:
            recorded[old] = recorded[new]
    if status is StatusCode.ERROR and "error.type" in keys and "error.type" not in recorded:
        recorded["error.type"] = "_OTHER"
    pattern = current_pattern()  # spanhooks' own spans are scrubbed already; foreign ones not
    if pattern is not None:
        recorded = {k: scrub(v, pattern) if type(v) is str else v for k, v in recorded.items()}
    return recorded
