"""Span accounting for ``/metrics``: how long spans take, and where every finished span went.

:class:`SpanMetricsProcessor` observes span durations (with the trace id as exemplar) and counts
spans handed to export. :class:`AccountedExporter` wraps an exporter and counts spans exported
and spans in failed batches; together with the batch processor's queue that tells, at scrape
time, how many were dropped: ``dropped = handed - exported - failed - queued``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client.core import Metric

from spanhooks._metrics import (
    SPAN_DURATION_SECONDS,
    SPAN_EXPORT_FAILURES,
    SPANS_DROPPED,
    SPANS_EXPORTED,
    SPANS_QUEUED,
    BucketHistogram,
    count_value,
    counter,
    gauge,
    register_source,
)
from spanhooks._spans import event_set_of

__all__ = ["AccountedExporter", "SpanMetricsProcessor"]


class SpanMetricsProcessor(SpanProcessor):
    """Observes every ended span's duration by event set and GenAI operation."""

    def __init__(self) -> None:
        self.durations = BucketHistogram()
        register_source(self)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if span.start_time is None or span.end_time is None or span.context is None:
            return
        attributes = span.attributes or {}
        labels = (
            event_set_of(span) or "other",
            str(attributes.get("gen_ai.operation.name", "none")),
            span.status.status_code.name.lower(),
        )
        trace_id = (
            format(span.context.trace_id, "032x") if span.context.trace_flags.sampled else None
        )
        self.durations.observe(labels, (span.end_time - span.start_time) / 1e9, trace_id)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def metric_families(self) -> Iterable[Metric]:
        yield self.durations.family(SPAN_DURATION_SECONDS)


class AccountedExporter(SpanExporter):
    """Counts what an exporter did with each span; the counts are lock-free (itertools.count)."""

    def __init__(self, inner: SpanExporter, name: str) -> None:
        self.inner = inner
        self.name = name
        self._exported = itertools.count()
        self._failed = itertools.count()
        self._handed = itertools.count()
        self.processor: BatchSpanProcessor | None = None
        register_source(self)

    def handed(self) -> None:
        next(self._handed)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        tally = self._exported if result is SpanExportResult.SUCCESS else self._failed
        for _ in spans:
            next(tally)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))

    def counts(self) -> dict[str, int]:
        """Spans handed to the processor, exported, failed, still queued and dropped."""
        handed, exported, failed = (
            count_value(self._handed),
            count_value(self._exported),
            count_value(self._failed),
        )
        queue = getattr(getattr(self.processor, "_batch_processor", None), "_queue", ())
        queued = len(queue)
        dropped = max(0, handed - exported - failed - queued)
        return {
            "handed": handed,
            "exported": exported,
            "failed": failed,
            "queued": queued,
            "dropped": dropped,
        }

    def metric_families(self) -> Iterable[Metric]:
        counts = self.counts()
        label = [self.name]
        yield counter(
            SPANS_EXPORTED,
            [(label, counts["exported"])],
        )
        yield counter(
            SPAN_EXPORT_FAILURES,
            [(label, counts["failed"])],
        )
        yield counter(
            SPANS_DROPPED,
            [(label, counts["dropped"])],
        )
        yield gauge(
            SPANS_QUEUED,
            [(label, counts["queued"])],
        )


class AccountedBatchProcessor(BatchSpanProcessor):
    """The SDK's BatchSpanProcessor, counting the spans it is handed for its exporter."""

    def __init__(self, exporter: AccountedExporter, **options: object) -> None:
        super().__init__(exporter, **options)  # type: ignore[arg-type]
        exporter.processor = self
        self._accounted = exporter

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            self._accounted.handed()
        super().on_end(span)
