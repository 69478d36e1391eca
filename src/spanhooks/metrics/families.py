"""Prometheus metrics: every family's definition, and collection when scraped.

The definitions at the end of this module are the complete list of what spanhooks exposes;
the subsystems fill them with values from the state they keep anyway.

Nothing is created at import: :class:`SpanhooksCollector` is registered on a registry you pass
(or a private one) by ``setup(metrics_port=...)`` or :func:`enable_metrics`. At scrape time it
asks every live :class:`MetricSource` (callback managers, health monitors, polling and resource
managers, error handlers, sessions, exporters) for its metric families. Counters come from
counts those objects keep anyway, so the emit path gains no lock and no work.

Names follow Prometheus conventions: the ``spanhooks_`` prefix, base units (seconds), ``_total``
for counters, and labels only from bounded sets (declared event names, registered components,
enum values; never ids or free text). Labels the application names (callbacks, tasks,
components, operations of other instrumentations' spans) are capped besides by
:mod:`spanhooks.metrics.cardinality`: 1,000 values per label and 1,000 series per family, then
``other``.
"""

from __future__ import annotations

import bisect
import itertools
import re
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple, Protocol, TypeVar, runtime_checkable

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Exemplar, Sample

from spanhooks.metrics.cardinality import MAX_LABEL_VALUES, MAX_SERIES, SeriesLimiter
from spanhooks.util.forksafe import fork_safe_lock
from spanhooks.util.redaction import current_pattern, scrub

__all__ = [
    "LATENCY_BUCKETS",
    "MAX_LABEL_VALUES",
    "MAX_SERIES",
    "BucketHistogram",
    "MetricSource",
    "SpanhooksCollector",
    "count_value",
    "counter",
    "gauge",
    "register_source",
]

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Seconds; from half a millisecond (a callback) to ten seconds (a slow model call)."""


class MetricDef(NamedTuple):
    """One metric family: its name (without ``_total``), type, help text and label names."""

    name: str
    kind: str
    documentation: str
    labels: tuple[str, ...]


@runtime_checkable
class MetricSource(Protocol):
    """Anything that can describe its current state as Prometheus metric families."""

    def metric_families(self) -> Iterable[Metric]: ...


_sources: weakref.WeakSet[MetricSource] = weakref.WeakSet()
_sources_lock = threading.Lock()


def register_source(source: MetricSource) -> None:
    """Include ``source`` in every scrape for as long as it is alive (held weakly)."""
    with _sources_lock:
        _sources.add(source)


def live_sources() -> list[MetricSource]:
    with _sources_lock:
        return list(_sources)


class SpanhooksCollector(Collector):
    """A prometheus_client collector that gathers every live source at scrape time.

    Families with the same name from several sources (two callback managers, say) are merged,
    and samples with the same labels added up, so each series appears once in the exposition.
    Safe to scrape from any thread.
    """

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for source in live_sources():
            for family in source.metric_families():
                existing = merged.get(family.name)
                if existing is None:
                    merged[family.name] = family
                elif existing.type == family.type:
                    existing.samples.extend(family.samples)
        pattern = current_pattern()  # label values are application text: scrub them too
        for family in merged.values():
            samples = family.samples
            if pattern is not None:
                samples = [_scrubbed(sample, pattern) for sample in samples]
            family.samples = _sum_duplicates(_capped_samples(family.name, samples))
            yield family

    def describe(self) -> Iterable[Metric]:
        return ()  # computed families: describing them would run a collection at register time


def _scrubbed(sample: Sample, pattern: re.Pattern[str]) -> Sample:
    """``sample`` with every label value scrubbed of ``pattern`` (two series that differed only
    in a secret become one, added up by :func:`_sum_duplicates`)."""
    labels = {key: scrub(value, pattern) for key, value in sample.labels.items()}
    return sample if labels == sample.labels else sample._replace(labels=labels)


def _capped_samples(name: str, samples: list[Sample]) -> list[Sample]:
    """Samples whose series are within the family's limit once several sources are merged
    (each source is capped on its own, the sum of them may not be): series past the limit are
    relabelled ``other`` and then added up with the rest."""
    series = {tuple(v for k, v in s.labels.items() if k != "le") for s in samples}
    if len(series) <= MAX_SERIES + 1:
        return samples
    capped = []
    for sample in samples:
        names = [k for k in sample.labels if k != "le"]
        limited = _family_limiter(name, len(names)).limit([sample.labels[k] for k in names])
        labels = dict(zip(names, limited, strict=True))
        if "le" in sample.labels:
            labels["le"] = sample.labels["le"]
        capped.append(sample._replace(labels=labels))
    return capped


def _sum_duplicates(samples: list[Sample]) -> list[Sample]:
    totals: dict[tuple[str, tuple[tuple[str, str], ...]], Sample] = {}
    for sample in samples:
        key = (sample.name, tuple(sorted(sample.labels.items())))
        found = totals.get(key)
        totals[key] = sample if found is None else found._replace(value=found.value + sample.value)
    return list(totals.values())


def install_collector(registry: CollectorRegistry) -> SpanhooksCollector:
    """Register one collector on ``registry`` (once per registry); returns it."""
    with _sources_lock:
        found = _installed.get(registry)
        if found is None:
            found = SpanhooksCollector()
            registry.register(found)
            _installed[registry] = found
        return found


_installed: weakref.WeakKeyDictionary[CollectorRegistry, SpanhooksCollector] = (
    weakref.WeakKeyDictionary()
)


def count_value(count: itertools.count[int]) -> int:
    """The next value an ``itertools.count`` would return, read without consuming it.

    ``next(count)`` is a lock-free atomic increment under the GIL, which is why the hot path
    counts with it; reading parses its repr, ``count(N)`` (its pickle form is gone in 3.14).
    """
    return int(repr(count)[6:-1])


def counter(
    definition: MetricDef, values: Iterable[tuple[Sequence[str], float]]
) -> CounterMetricFamily:
    """A counter family from ``(label values, count)`` pairs, with label cardinality capped."""
    family = CounterMetricFamily(
        definition.name, definition.documentation, labels=list(definition.labels)
    )
    return _filled(family, definition, values)


def gauge(
    definition: MetricDef, values: Iterable[tuple[Sequence[str], float]]
) -> GaugeMetricFamily:
    """A gauge family from ``(label values, value)`` pairs, with label cardinality capped."""
    family = GaugeMetricFamily(
        definition.name, definition.documentation, labels=list(definition.labels)
    )
    return _filled(family, definition, values)


F = TypeVar("F", CounterMetricFamily, GaugeMetricFamily)


def _filled(family: F, definition: MetricDef, values: Iterable[tuple[Sequence[str], float]]) -> F:
    limiter = _family_limiter(definition.name, len(definition.labels))
    totals: dict[tuple[str, ...], float] = {}
    for label_values, value in values:
        key = limiter.limit(label_values)
        totals[key] = totals.get(key, 0.0) + value
    for key, total in totals.items():
        family.add_metric(list(key), total)
    return family


_limiters: dict[tuple[str, int], SeriesLimiter] = {}
_limiters_lock = threading.Lock()


def _family_limiter(name: str, width: int) -> SeriesLimiter:
    """One sticky limiter per family for scrape-time capping, so a counter's series persist."""
    key = (name, width)
    found = _limiters.get(key)
    if found is None:
        with _limiters_lock:
            found = _limiters.setdefault(key, SeriesLimiter(tuple(f"l{i}" for i in range(width))))
    return found


class BucketHistogram:
    """Cumulative-bucket latency histograms per label tuple, with the latest trace-id exemplar.

    Observed off the emit path (span end, health checks, polling runs); one lock per
    histogram, held only to add a sample, never while calling out.
    """

    def __init__(
        self,
        buckets: Sequence[float] = LATENCY_BUCKETS,
        max_series: int = MAX_SERIES,
        max_values: int = MAX_LABEL_VALUES,
    ) -> None:
        self.buckets = tuple(sorted(buckets))
        self.max_series = max_series
        self.max_values = max_values
        self._limiter: SeriesLimiter | None = None
        self._lock = fork_safe_lock(self)
        self._series: dict[tuple[str, ...], list[float]] = {}
        self._exemplars: dict[tuple[str, ...], dict[int, tuple[str, float]]] = {}

    def observe(self, labels: tuple[str, ...], seconds: float, trace_id: str | None = None) -> None:
        index = bisect.bisect_left(self.buckets, seconds)
        with self._lock:
            series = self._series.get(labels)
            if series is None:  # a new label tuple: each label and the series count capped
                limiter = self._limiter
                if limiter is None or len(limiter.labelnames) != len(labels):
                    limiter = self._limiter = SeriesLimiter(
                        tuple(f"l{i}" for i in range(len(labels))),
                        max_values=self.max_values,
                        max_series=self.max_series,
                    )
                labels = limiter.limit(labels)
                series = self._series.setdefault(labels, [0.0] * (len(self.buckets) + 3))
            series[index] += 1  # per-bucket counts; the last two slots are count and sum
            series[-2] += 1
            series[-1] += seconds
            if trace_id is not None:
                self._exemplars.setdefault(labels, {})[index] = (trace_id, seconds)

    def family(self, definition: MetricDef) -> HistogramMetricFamily:
        """The histogram as a Prometheus family, with the latest exemplar per bucket."""
        family = HistogramMetricFamily(
            definition.name, definition.documentation, labels=list(definition.labels)
        )
        with self._lock:
            snapshot = {k: list(v) for k, v in self._series.items()}
            exemplars = {k: dict(v) for k, v in self._exemplars.items()}
        for labels, series in snapshot.items():
            cumulative = 0.0
            buckets = []
            for index, bound in enumerate((*self.buckets, float("inf"))):
                cumulative += series[index]
                found = exemplars.get(labels, {}).get(index)
                exemplar = Exemplar({"trace_id": found[0]}, found[1]) if found else None
                buckets.append(
                    (_le(bound), cumulative, exemplar) if exemplar else (_le(bound), cumulative)
                )
            family.add_metric(list(labels), buckets, series[-1])
        return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


# -- every family spanhooks exposes, in one place (dashboards and alert rules use these) -----

CALLBACK_DURATION_SECONDS = MetricDef(
    "spanhooks_callback_duration_seconds",
    "histogram",
    "Time spent in one event's callbacks, by event set and event.",
    ("event_set", "event"),
)
CALLBACK_ERRORS = MetricDef(
    "spanhooks_callback_errors",
    "counter",
    "Exceptions raised by callbacks (isolated, not propagated).",
    ("callback",),
)
CALLBACK_TIMEOUTS = MetricDef(
    "spanhooks_callback_timeouts",
    "counter",
    "Callbacks abandoned after their timeout.",
    ("callback",),
)
CLEANUPS = MetricDef(
    "spanhooks_cleanups", "counter", "Cleanups run, by outcome.", ("resource_type", "outcome")
)
CLEANUPS_PENDING = MetricDef(
    "spanhooks_cleanups_pending", "gauge", "Registered cleanups not yet run.", ("resource_type",)
)
ERRORS = MetricDef(
    "spanhooks_errors",
    "counter",
    "Errors handled, by context and severity.",
    ("context", "severity"),
)
EVALUATIONS = MetricDef(
    "spanhooks_evaluations",
    "counter",
    "Evaluation results recorded (spanhooks.evaluate), by evaluation name and score label.",
    ("name", "label"),
)
EVENTS = MetricDef(
    "spanhooks_events", "counter", "Events emitted, by event set and name.", ("event_set", "event")
)
GENAI_COST_USD = MetricDef(
    "spanhooks_genai_cost_usd",
    "counter",
    "What model calls cost in US dollars, from their token usage and the price table, by "
    "provider and model.",
    ("provider", "model"),
)
GENAI_UNPRICED_CALLS = MetricDef(
    "spanhooks_genai_unpriced_calls",
    "counter",
    "Model calls with token usage that no price table knows (they cost nothing), by provider "
    "and model.",
    ("provider", "model"),
)
HEALTH_ALERTS = MetricDef(
    "spanhooks_health_alerts", "counter", "Alerts raised by severity.", ("component", "severity")
)
HEALTH_CHECK_CRITICAL = MetricDef(
    "spanhooks_health_check_critical", "gauge", "1 if the component is critical.", ("component",)
)
HEALTH_CHECK_DURATION_SECONDS = MetricDef(
    "spanhooks_health_check_duration_seconds",
    "histogram",
    "How long health checks took.",
    ("component",),
)
HEALTH_CHECKS = MetricDef(
    "spanhooks_health_checks", "counter", "Health check results by status.", ("component", "status")
)
HEALTH_OVERALL = MetricDef(
    "spanhooks_health_overall", "gauge", "1 for the overall status.", ("status",)
)
HEALTH_STATUS = MetricDef(
    "spanhooks_health_status",
    "gauge",
    "1 for each component's current status (healthy, degraded, unhealthy, unknown).",
    ("component", "status"),
)
LOG_RECORDS_DROPPED = MetricDef(
    "spanhooks_log_records_dropped",
    "counter",
    "spanhooks' own log records not exported (OTEL_LOGS_EXPORTER), by reason: export_failed, "
    "unsent (dropped by the queue or left at the shutdown deadline; known once shut down).",
    ("exporter", "reason"),
)
LOG_RECORDS_EXPORTED = MetricDef(
    "spanhooks_log_records_exported",
    "counter",
    "spanhooks' own log records exported (OTEL_LOGS_EXPORTER).",
    ("exporter",),
)
MESSAGES_HANDLED = MetricDef(
    "spanhooks_messages_handled",
    "counter",
    "Messages given to global handlers, by handler context and outcome.",
    ("context", "outcome"),
)
METRICS_SERVER_CONNECTIONS_DROPPED = MetricDef(
    "spanhooks_metrics_server_connections_dropped",
    "counter",
    "Connections to the /metrics server closed before a complete reply, by reason: timeout, "
    "disconnect, over_cap, bad_request, handler_error.",
    ("reason",),
)
OPEN_SPANS = MetricDef("spanhooks_open_spans", "gauge", "Spans started and not yet ended.", ())
POLLING_RUN_DURATION_SECONDS = MetricDef(
    "spanhooks_polling_run_duration_seconds", "histogram", "How long polling runs took.", ("task",)
)
POLLING_RUNS = MetricDef(
    "spanhooks_polling_runs", "counter", "Polling task runs by outcome.", ("task", "outcome")
)
POLLING_TASK_STATE = MetricDef(
    "spanhooks_polling_task_state", "gauge", "1 for each task's current state.", ("task", "state")
)
ROUTER_EVENTS = MetricDef(
    "spanhooks_router_events",
    "counter",
    "Routed events by type and outcome.",
    ("event_type", "outcome"),
)
SESSIONS = MetricDef("spanhooks_sessions", "gauge", "Live sessions by status.", ("status",))
SESSION_SPANS = MetricDef(
    "spanhooks_session_spans",
    "counter",
    "Spans stamped with the ids of a spanhooks.session(...) (session, user or conversation id) "
    "as they started.",
    (),
)
SESSIONS_OPEN = MetricDef(
    "spanhooks_sessions_open",
    "gauge",
    "spanhooks.session(...) blocks and decorated calls entered and not yet left.",
    (),
)
SESSIONS_STARTED = MetricDef(
    "spanhooks_sessions_started",
    "counter",
    "spanhooks.session(...) blocks and decorated calls entered (each entry counts, a nested one "
    "too).",
    (),
)
SPAN_DURATION_SECONDS = MetricDef(
    "spanhooks_span_duration_seconds",
    "histogram",
    "Span durations by event set, GenAI operation and status.",
    ("event_set", "operation", "status"),
)
SPAN_EXPORT_FAILURES = MetricDef(
    "spanhooks_span_export_failures",
    "counter",
    "Spans in batches whose export failed.",
    ("exporter",),
)
SPANS_ABANDONED = MetricDef(
    "spanhooks_spans_abandoned", "counter", "Spans closed because they were never ended.", ()
)
SPANS_DROPPED = MetricDef(
    "spanhooks_spans_dropped",
    "counter",
    "Spans not exported, by reason: export_failed, queue_full, shutdown.",
    ("exporter", "reason"),
)
REDACTION_FAILURES = MetricDef(
    "spanhooks_redaction_failures",
    "counter",
    "Attributes dropped because the redactor raised (fail closed).",
    (),
)
SPANS_EXPORTED = MetricDef("spanhooks_spans_exported", "counter", "Spans exported.", ("exporter",))
SPANS_QUEUED = MetricDef(
    "spanhooks_spans_queued", "gauge", "Spans waiting for export.", ("exporter",)
)
UNMATCHED_ENDS = MetricDef(
    "spanhooks_unmatched_ends", "counter", "End events with no open start.", ()
)

# The OpenTelemetry GenAI metrics under their Prometheus names (see metrics/genai.py).
# These are the label names a series may carry: one whose spans lack an attribute the
# conventions make conditional or recommended (error_type on success, server_port unknown)
# leaves that label out rather than exporting it as "" (except in multiprocess mode).
# gen_ai_system, the older name of gen_ai_provider_name, is set only with
# OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai/dup (spanhooks.util.semconv); it is declared either way
# so that one family has one label-name list in every mode (the multiprocess mirror needs it).
_GEN_AI_LABELS = (
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
    "server_address",
    "server_port",
    "error_type",
    "gen_ai_system",
)
GEN_AI_OPERATION_DURATION = MetricDef(
    "gen_ai_client_operation_duration_seconds",
    "histogram",
    "GenAI operation duration (gen_ai.client.operation.duration).",
    _GEN_AI_LABELS,
)
GEN_AI_TOKEN_USAGE = MetricDef(
    "gen_ai_client_token_usage",
    "histogram",
    "Number of input and output tokens used (gen_ai.client.token.usage).",
    (*_GEN_AI_LABELS, "gen_ai_token_type"),
)
GEN_AI_TIME_TO_FIRST_CHUNK = MetricDef(
    "gen_ai_client_operation_time_to_first_chunk_seconds",
    "histogram",
    "Time to the first chunk of a streaming response "
    "(gen_ai.client.operation.time_to_first_chunk).",
    _GEN_AI_LABELS,
)
GEN_AI_TIME_PER_OUTPUT_CHUNK = MetricDef(
    "gen_ai_client_operation_time_per_output_chunk_seconds",
    "histogram",
    "Time per output chunk after the first of a streaming response, one stream's mean "
    "(gen_ai.client.operation.time_per_output_chunk).",
    tuple(label for label in _GEN_AI_LABELS if label != "error_type"),
)
GEN_AI_INVOKE_AGENT_DURATION = MetricDef(
    "gen_ai_invoke_agent_duration_seconds",
    "histogram",
    "End-to-end duration of an agent invocation (gen_ai.invoke_agent.duration).",
    ("gen_ai_agent_name", "gen_ai_request_model", "error_type"),
)
GEN_AI_EXECUTE_TOOL_DURATION = MetricDef(
    "gen_ai_execute_tool_duration_seconds",
    "histogram",
    "Duration of a tool execution (gen_ai.execute_tool.duration).",
    ("gen_ai_tool_name", "gen_ai_tool_type", "gen_ai_agent_name", "error_type"),
)
