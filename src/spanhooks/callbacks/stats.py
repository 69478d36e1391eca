"""A manager's figures on ``/metrics``: events by name, callback failures and latency, open spans.

Nothing is counted until :meth:`EventMetrics.enable` (``setup()`` calls it when metrics are
asked for); then an emit costs one lock-free ``itertools.count`` step, and an emit that has
callbacks two clock reads. Values are read at scrape time from what the manager's parts keep.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from opentelemetry.trace import Span
from prometheus_client.core import Metric

from spanhooks.callbacks.dispatch import Dispatcher, DispatchObserver
from spanhooks.callbacks.registry import EventRegistry
from spanhooks.callbacks.routes import Registration
from spanhooks.events.spec import EventSpec
from spanhooks.metrics.families import (
    CALLBACK_DURATION_SECONDS,
    CALLBACK_ERRORS,
    CALLBACK_TIMEOUTS,
    EVENTS,
    OPEN_SPANS,
    SPANS_ABANDONED,
    UNMATCHED_ENDS,
    BucketHistogram,
    count_value,
    counter,
    gauge,
    register_source,
)
from spanhooks.tracing.recorder import SpanRecorder

__all__ = ["EventMetrics"]


class EventMetrics:
    """Counts and latencies of one manager's events, collected as Prometheus families.

    ``counts`` is None until enabled, then a dict replaced (never mutated) when events are
    declared, so emit reads it without a lock and a scrape never sees it change size.
    """

    def __init__(
        self, registry: EventRegistry, span_dispatcher: Dispatcher[str], recorder: SpanRecorder
    ) -> None:
        self.counts: dict[EventSpec, itertools.count[int]] | None = None
        self.latency: BucketHistogram | None = None
        self._registry = registry
        self._span_dispatcher = span_dispatcher
        self._recorder = recorder

    def enable(self) -> None:
        """Start counting every declared event and timing its callbacks. Idempotent."""
        with self._registry.lock:  # no declare() between reading the events and counting them
            if self.counts is not None:
                return
            dispatcher = self._registry.dispatcher
            self.latency = BucketHistogram()
            dispatcher.observer = _LatencyObserver(self, dispatcher.observer)
            dispatcher.timed = True
            self.counts = {spec: itertools.count() for spec in self._registry.events()}
        register_source(self)

    def declared(self, specs: Iterable[EventSpec]) -> None:
        """Count newly declared events too: called by the registry under its lock, before
        emit can see them."""
        counts = self.counts
        if counts is not None:
            self.counts = {**counts, **{spec: itertools.count() for spec in specs}}

    def observe(self, key: object, seconds: float, span: Span | None) -> None:
        """One dispatch of the event named ``key`` took ``seconds``."""
        latency = self.latency
        spec = self._registry.specs.get(key)
        if latency is None or spec is None:
            return
        trace_id = None
        if span is not None and span.get_span_context().is_valid:
            trace_id = format(span.get_span_context().trace_id, "032x")
        latency.observe((spec.event_set, spec.name), seconds, trace_id)

    def metric_families(self) -> Iterable[Metric]:
        """Events by name, callback errors and timeouts, open and abandoned spans."""
        counts = self.counts or {}
        yield counter(
            EVENTS,
            [((spec.event_set, spec.name), float(count_value(c))) for spec, c in counts.items()],
        )
        registrations: list[Registration] = [
            *self._registry.dispatcher.registrations(),
            *self._span_dispatcher.registrations(),
        ]
        yield counter(CALLBACK_ERRORS, [((reg.name,), float(reg.errors)) for reg in registrations])
        yield counter(
            CALLBACK_TIMEOUTS, [((reg.name,), float(reg.timeouts)) for reg in registrations]
        )
        if self.latency is not None:
            yield self.latency.family(CALLBACK_DURATION_SECONDS)
        spans = self._recorder.stats()
        yield gauge(OPEN_SPANS, [((), spans["open_spans"])])
        yield counter(SPANS_ABANDONED, [((), spans["abandoned_spans"])])
        yield counter(UNMATCHED_ENDS, [((), spans["unmatched_ends"])])


class _LatencyObserver(DispatchObserver):
    """Feeds per-event callback latency (with the span's trace id as exemplar) to metrics and
    passes every other outcome on to the observer it replaced."""

    def __init__(self, metrics: EventMetrics, inner: DispatchObserver) -> None:
        self._metrics = metrics
        self._inner = inner

    def callback_failed(self, registration: Any, key: object, error: BaseException) -> None:
        self._inner.callback_failed(registration, key, error)

    def callback_timed_out(self, registration: Any, key: object) -> None:
        self._inner.callback_timed_out(registration, key)

    def callback_latency(self, registration: Any, key: object, seconds: float) -> None:
        self._inner.callback_latency(registration, key, seconds)

    def dispatch_dropped(self, key: object) -> None:
        self._inner.dispatch_dropped(key)

    def dispatched(self, key: object, seconds: float, span: Span | None) -> None:
        self._metrics.observe(key, seconds, span)
        self._inner.dispatched(key, seconds, span)
