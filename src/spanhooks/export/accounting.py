"""Span accounting for ``/metrics``: how long spans take, and where every finished span went.

:class:`SpanMetricsProcessor` observes span durations (with the trace id as exemplar).
:class:`AccountedBatchProcessor` is the SDK's BatchSpanProcessor with bounds the SDK lacks, and
:class:`AccountedExporter` counts what its exporter did with every span handed to it. Each span
ends up in exactly one place:

    handed == exported + dropped{export_failed} + dropped{queue_full} + dropped{shutdown}
              + queued + in flight

``dropped{export_failed}`` is the same number as ``spanhooks_span_export_failures_total`` (a
batch whose export failed or raised is counted as dropped, never lost silently); queued and in
flight are zero at rest, so at rest ``handed == exported + failed + queue_full + shutdown``
exactly. The queue-full figure is the remainder of that equation (the SDK's queue drops without
telling anyone), so between two exports it can briefly lead or lag by the spans being popped.
Drops are logged as one WARNING per exporter at most every :data:`DROP_LOG_INTERVAL` seconds,
saying how many.

Bounds (the emitting thread is never blocked by an exporter and never sees its exception):

- ``on_end`` appends to a bounded queue, or, when it is full, counts the span as dropped and
  returns: no lock, no I/O, no log call on the emit path;
- ``force_flush(timeout_millis)`` returns within ``timeout_millis`` even while an export hangs
  (the flush goes on in the background and reports False);
- ``shutdown()`` takes at most what is left of a :class:`~spanhooks.util.deadline.SharedDeadline`
  shared by every exporter, then abandons the export in progress (its worker is a daemon
  thread) and counts what was left as dropped ``shutdown``.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client.core import Metric

from spanhooks.events.scope import event_set_of
from spanhooks.metrics.families import (
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
from spanhooks.util.deadline import SharedDeadline
from spanhooks.util.forksafe import fork_safe_lock, renew_in_child
from spanhooks.util.log import logger, rate_limited

__all__ = [
    "DROP_REASONS",
    "AccountedBatchProcessor",
    "AccountedExporter",
    "DropLog",
    "SpanMetricsProcessor",
]

DROP_REASONS = ("export_failed", "queue_full", "shutdown")
"""Why a span was not exported: its batch failed, the queue was full, or shutdown came first."""

DROP_LOG_INTERVAL = 10.0
"""Seconds between two drop warnings of one exporter."""


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


class DropLog:
    """One WARNING per exporter at most every ``interval`` seconds, saying how many spans it
    dropped since the last one, by reason. Called off the emit path (after an export, at
    shutdown); thread-safe."""

    def __init__(self, interval: float = DROP_LOG_INTERVAL) -> None:
        self.interval = interval
        self._lock = fork_safe_lock(self)
        self._logged: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self._last = float("-inf")

    def note(self, name: str, dropped: dict[str, int], *, final: bool = False) -> bool:
        """Log if the drops grew and the interval has passed (or ``final``); True if it logged."""
        now = time.monotonic()
        with self._lock:
            new = {reason: dropped[reason] - self._logged[reason] for reason in DROP_REASONS}
            if sum(new.values()) <= 0 or (not final and now - self._last < self.interval):
                return False
            self._logged = dict(dropped)
            self._last = now
        logger.warning(
            "%s exporter dropped %d spans (export_failed=%d, queue_full=%d, shutdown=%d); "
            "%d dropped in total so far (spanhooks_spans_dropped_total)",
            name,
            sum(new.values()),
            new["export_failed"],
            new["queue_full"],
            new["shutdown"],
            sum(dropped.values()),
        )
        return True


@runtime_checkable
class PartialWriter(Protocol):
    """An exporter that says how many spans of a batch it wrote, even when the rest failed."""

    def write(self, spans: Sequence[ReadableSpan]) -> int:
        """Write ``spans``; the number done (written, or nothing to write). Never raises."""
        ...


class SpanQueue(Protocol):
    """What the accounting reads from the processor that feeds an :class:`AccountedExporter`."""

    closed: bool
    """True once shutdown finished: what is still queued then counts as dropped."""
    counts_drops: bool
    """True when every ``queue_full`` drop is reported through :meth:`AccountedExporter.full`."""

    def queued(self) -> int:
        """Spans waiting to be exported."""
        ...


class AccountedExporter(SpanExporter):
    """Counts what an exporter did with each span; the counts are lock-free (itertools.count).

    ``export`` never raises: an exception from the wrapped exporter fails the batch (counted,
    and logged with rate limiting). Called by the batch processor's worker thread.
    """

    def __init__(self, inner: SpanExporter, name: str, drop_log: DropLog | None = None) -> None:
        self.inner = inner
        self.name = name
        self._write = inner.write if isinstance(inner, PartialWriter) else None
        self.drop_log = drop_log or DropLog()
        self._reset_counts()
        self.processor: SpanQueue | None = None
        register_source(self)
        renew_in_child(self)

    def _reset_counts(self) -> None:
        self._handed = itertools.count()
        self._started = itertools.count()
        self._exported = itertools.count()
        self._failed = itertools.count()
        self._late = itertools.count()
        self._full = itertools.count()

    def after_fork_in_child(self) -> None:
        """In a forked child: count afresh, since the SDK empties the inherited queue there
        (the parent's spans are the parent's to export). The OTLP/HTTP exporter's connection
        pools are renewed by its own session (``lifecycle.http_session.ForkSafeSession``)."""
        self._reset_counts()

    def handed(self) -> None:
        next(self._handed)

    def late(self) -> None:
        """A span ended after shutdown began: it is dropped (``shutdown``)."""
        next(self._late)

    def full(self) -> None:
        """A span found no room in its processor's queue: it is dropped (``queue_full``)."""
        next(self._full)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for _ in spans:
            next(self._started)
        try:
            if self._write is not None:  # it says how many of a failed batch it still wrote
                done = self._write(spans)
            else:
                done = len(spans) if self.inner.export(spans) is SpanExportResult.SUCCESS else 0
        except Exception as exc:
            rate_limited.log(
                logging.ERROR,
                f"exporter:{self.name}",
                "%s exporter raised %s; its batch of %d spans is dropped (export_failed)",
                self.name,
                type(exc).__name__,
                len(spans),
                exc_info=exc,
            )
            done = 0
        for _ in range(done):
            next(self._exported)
        for _ in range(len(spans) - done):
            next(self._failed)
        self.drop_log.note(self.name, self.dropped())
        return SpanExportResult.SUCCESS if done == len(spans) else SpanExportResult.FAILURE

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        shutdown: Any = self.inner.shutdown
        if "timeout_millis" in inspect.signature(shutdown).parameters:
            shutdown(timeout_millis=timeout_millis)
        else:
            shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))

    def counts(self) -> dict[str, int]:
        """Spans handed to the processor, exported, failed, queued, in flight, and dropped by
        reason (``export_failed`` equals ``failed``)."""
        handed, started, exported, failed, late = (
            count_value(self._handed),
            count_value(self._started),
            count_value(self._exported),
            count_value(self._failed),
            count_value(self._late),
        )
        processor = self.processor
        queued = processor.queued() if processor is not None else 0
        in_flight = max(0, started - exported - failed)
        shutdown = 0
        if processor is not None and processor.closed:
            shutdown, queued, in_flight = queued + in_flight + late, 0, 0
        if processor is not None and processor.counts_drops:
            queue_full = count_value(self._full)
        else:  # the SDK's queue drops without telling: what is nowhere else was dropped there
            queue_full = max(0, handed - exported - failed - in_flight - queued - shutdown)
        return {
            "handed": handed,
            "exported": exported,
            "failed": failed,
            "queued": queued,
            "in_flight": in_flight,
            "export_failed": failed,
            "queue_full": queue_full,
            "shutdown": shutdown,
            "dropped": failed + queue_full + shutdown,
        }

    def dropped(self) -> dict[str, int]:
        """Dropped spans by reason (see :data:`DROP_REASONS`)."""
        counts = self.counts()
        return {reason: counts[reason] for reason in DROP_REASONS}

    def metric_families(self) -> Iterable[Metric]:
        counts = self.counts()
        label = [self.name]
        yield counter(SPANS_EXPORTED, [(label, counts["exported"])])
        yield counter(SPAN_EXPORT_FAILURES, [(label, counts["failed"])])
        yield counter(
            SPANS_DROPPED, [([self.name, reason], counts[reason]) for reason in DROP_REASONS]
        )
        yield gauge(SPANS_QUEUED, [(label, counts["queued"])])


class AccountedBatchProcessor(BatchSpanProcessor):
    """The SDK's BatchSpanProcessor, accounted and bounded (see the module docstring).

    ``deadline`` is shared with the other exporters' processors, so that shutting them all
    down takes at most its seconds.
    """

    def __init__(
        self,
        exporter: AccountedExporter,
        deadline: SharedDeadline | None = None,
        **options: Any,
    ) -> None:
        super().__init__(exporter, **options)
        exporter.processor = self
        self._accounted = exporter
        self._deadline = deadline or SharedDeadline(30.0)
        batch = getattr(self, "_batch_processor", None)  # the SDK's worker (1.33 and later)
        self._sdk_queue: Any = getattr(batch, "_queue", None)
        self._sdk_queue_max: int = getattr(batch, "_max_queue_size", 0)
        self._rejecting = False
        self.closed = False
        """True once shutdown finished: whatever was not exported by then is dropped."""
        self.counts_drops = False
        """The SDK's queue drops silently: the accounting infers ``queue_full``."""
        self._flush_lock = threading.Lock()
        self._flusher: threading.Thread | None = None

    def queued(self) -> int:
        return 0 if self._sdk_queue is None else len(self._sdk_queue)

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None or not span.context.trace_flags.sampled:
            return
        accounted = self._accounted
        if self._rejecting:
            accounted.late()
        elif self._sdk_queue is None or len(self._sdk_queue) < self._sdk_queue_max:
            super().on_end(span)
        # else the queue is full: dropped here (and counted by difference), without the SDK's
        # per-span log call, so a stalled exporter costs the emitting thread nothing extra.
        accounted.handed()

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        """Export what is queued; True if done within ``timeout_millis`` (30 s by default).

        The SDK's own flush ignores its timeout and waits for a hung export; here the flush
        runs on a daemon thread that this call waits for at most ``timeout_millis``. A flush
        still running from an earlier call is waited for instead of starting another.
        """
        if self._rejecting:
            return False
        seconds = (30_000 if timeout_millis is None else timeout_millis) / 1000
        with self._flush_lock:
            flusher = self._flusher
            if flusher is None or not flusher.is_alive():
                flusher = threading.Thread(
                    target=functools.partial(BatchSpanProcessor.force_flush, self),
                    name=f"spanhooks-flush-{self._accounted.name}",
                    daemon=True,
                )
                flusher.start()
                self._flusher = flusher
        flusher.join(max(0.0, seconds))
        return not flusher.is_alive()

    def shutdown(self) -> None:
        """Export what is queued within the shared deadline, then stop. Idempotent.

        Spans ending from now on are counted as dropped (``shutdown``), as is whatever the
        deadline left unexported; an export still in progress is abandoned to its daemon
        thread (the wrapped exporter is told to shut down, which ends its retries).
        """
        if self._rejecting:
            return
        self._rejecting = True
        batch = getattr(self, "_batch_processor", None)
        try:
            if batch is not None:
                batch.shutdown(timeout_millis=self._deadline.remaining_millis())
            else:  # pragma: no cover - SDKs before 1.33 have no separate worker object
                sdk_shutdown: Any = super().shutdown
                sdk_shutdown()
        finally:
            self.closed = True
            self._accounted.drop_log.note(
                self._accounted.name, self._accounted.dropped(), final=True
            )
