"""spanhooks' own log records as OpenTelemetry logs, when ``OTEL_LOGS_EXPORTER`` names an
exporter (``otlp``, ``console``): a LoggerProvider of spanhooks' (not the global one, since the
application's logging is its own) with one BatchLogRecordProcessor per exporter, fed by a
handler on the ``spanhooks`` logger at WARNING, every record tied to the span current when it
was logged.

Every record is accounted for on ``/metrics``: ``spanhooks_log_records_exported_total`` and
``spanhooks_log_records_dropped_total{reason}``, ``export_failed`` as it happens and, once the
pipeline is closed, ``unsent`` for what the SDK's queue dropped or the shutdown deadline left.
The SDK offers its logs API only under underscore names (``opentelemetry.sdk._logs``, SDK
1.45); it is imported when a logs exporter is chosen, so nobody else pays for it at start-up.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from prometheus_client.core import Metric

from spanhooks.lifecycle import otlp
from spanhooks.metrics.families import (
    LOG_RECORDS_DROPPED,
    LOG_RECORDS_EXPORTED,
    count_value,
    counter,
    register_source,
)
from spanhooks.util.log import logger

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
    from opentelemetry.sdk.resources import Resource

__all__ = ["LogExport", "start_event_export", "start_log_export"]


def start_log_export(
    resource: Resource,
    exporters: frozenset[str],
    otlp_args: tuple[str | None, str | None, float | None],
) -> LogExport | None:
    """The logs pipeline for ``exporters`` (see :func:`spanhooks.lifecycle.otlp.exporters`),
    or None when there are none, or when a handler of OpenTelemetry's already sees the
    ``spanhooks`` logger (the SDK's auto-instrumented root handler, say: a second would send
    each record twice)."""
    if not exporters:
        return None
    if any(
        type(handler).__module__.startswith("opentelemetry") for handler in _handlers_seeing(logger)
    ):
        logger.debug("spanhooks' log records already reach an OpenTelemetry handler")
        return None
    counted: list[_CountedLogExporter] = []
    if "otlp" in exporters:
        counted.append(_CountedLogExporter(otlp.log_exporter(*otlp_args), "otlp"))
    if "console" in exporters:
        counted.append(_CountedLogExporter(_console_log_exporter(), "console"))
    return LogExport(_provider(resource, counted), counted)


def start_event_export(
    resource: Resource,
    jsonl: LogRecordExporter | None,
    otlp_args: tuple[str | None, str | None, float | None] | None,
) -> LogExport:
    """The logs pipeline for the GenAI content events: to the JSONL file (``jsonl``, the
    span file's :class:`~spanhooks.export.jsonl_logs.JsonlLogExporter`) and over OTLP when
    ``otlp_args`` is given; its records are counted with spanhooks' own log records."""
    counted: list[_CountedLogExporter] = []
    if jsonl is not None:
        counted.append(_CountedLogExporter(jsonl, "jsonl"))
    if otlp_args is not None:
        counted.append(_CountedLogExporter(otlp.log_exporter(*otlp_args), "otlp"))
    return LogExport(_provider(resource, counted), counted, handler=False)


def _provider(resource: Resource, counted: Sequence[_CountedLogExporter]) -> LoggerProvider:
    """A LoggerProvider of spanhooks' own with one batch processor per exporter."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    for exporter in counted:
        # Duck-typed as an exporter: subclassing would import the logs SDK with spanhooks.
        provider.add_log_record_processor(
            BatchLogRecordProcessor(cast("LogRecordExporter", exporter))
        )
    return provider


class LogExport:
    """The running logs pipeline: its handler on the ``spanhooks`` logger and its counts.

    :meth:`close` is called once, from setup's shutdown; the handler runs on whatever thread
    logs, and counts with ``itertools.count`` (no lock).
    """

    def __init__(
        self,
        provider: LoggerProvider,
        exporters: Sequence[_CountedLogExporter],
        *,
        handler: bool = True,
    ) -> None:
        self.provider = provider
        self.exporters = tuple(exporters)
        self.handler = _ExportedLogs(provider) if handler else None
        self.handed: itertools.count[int] = (
            self.handler.handed if self.handler is not None else itertools.count()
        )
        """Records handed to the provider: by the handler, or by whoever emits (events)."""
        self.closed = False
        if self.handler is not None:
            logger.addHandler(self.handler)
        register_source(self)

    def flush(self, seconds: float) -> bool:
        """Export what the batch processors hold, waiting at most ``seconds``."""
        try:
            return bool(self.provider.force_flush(max(1, int(seconds * 1000))))
        except Exception as error:  # a processor that raises: the records stay unsent
            logger.warning("flushing log records failed: %r", error)
            return False

    def close(self, seconds: float) -> None:
        """Take the handler off and shut the provider down within ``seconds``: its
        ``shutdown()`` takes no timeout (the batch processor waits up to 30 s), so it runs on a
        daemon thread that is waited for at most that long, then left behind."""
        if self.handler is not None:
            logger.removeHandler(self.handler)
        worker = threading.Thread(
            target=self.provider.shutdown, name="spanhooks-logs-shutdown", daemon=True
        )
        worker.start()
        worker.join(seconds)
        self.closed = True
        if worker.is_alive():
            logger.warning(
                "spanhooks' log records were not all exported within the shutdown timeout (%.3gs)",
                seconds,
            )

    def metric_families(self) -> Iterable[Metric]:
        handed = count_value(self.handed)
        exported, dropped = [], []
        for exporter in self.exporters:
            done, failed = count_value(exporter.exported), count_value(exporter.failed)
            exported.append(((exporter.name,), float(done)))
            dropped.append(((exporter.name, "export_failed"), float(failed)))
            if self.closed:  # final now: what neither reached the exporter nor failed there
                unsent = handed - done - failed
                dropped.append(((exporter.name, "unsent"), float(max(0, unsent))))
        yield counter(LOG_RECORDS_EXPORTED, exported)
        yield counter(LOG_RECORDS_DROPPED, dropped)


class _CountedLogExporter:
    """Counts the records an exporter took and those whose batch failed; never raises."""

    def __init__(self, inner: LogRecordExporter, name: str) -> None:
        self.inner = inner
        self.name = name
        self.exported = itertools.count()
        self.failed = itertools.count()

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        try:
            result = self.inner.export(batch)
        except Exception as error:  # an exporter that raises fails its batch, nothing more
            logger.debug("log record exporter %s raised: %r", self.name, error)
            result = LogRecordExportResult.FAILURE
        tally = self.exported if result is LogRecordExportResult.SUCCESS else self.failed
        for _ in batch:
            next(tally)
        return result

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]


def _console_log_exporter() -> LogRecordExporter:
    try:
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter as Console
    except ImportError:  # an older SDK, from before the LogRecord* names
        from opentelemetry.sdk._logs.export import ConsoleLogExporter as Console
    return Console(out=sys.stdout)  # the SDK's default is sys.stdout as it was at its import


def _handlers_seeing(start: logging.Logger) -> Iterable[logging.Handler]:
    """Every handler a record of ``start`` reaches, as :meth:`logging.Logger.callHandlers`
    walks them (up the parents while ``propagate`` is true)."""
    current: logging.Logger | None = start
    while current is not None:
        yield from current.handlers
        current = current.parent if current.propagate else None


class _ExportedLogs(logging.Handler):
    """The SDK's LoggingHandler on the ``spanhooks`` logger, at WARNING, leaving stderr as it was.

    At WARNING because spanhooks logs at DEBUG what is noise by design (each connection the
    metrics server drops, each skipped file line) and at WARNING or ERROR what an operator must
    see; the logger's own level still applies first, so an application that quiets spanhooks
    quiets this too. A logger with a handler no longer falls back to :data:`logging.lastResort`
    (WARNING and above to stderr when the application configured no logging), so a record no
    other handler sees is handed to it here as well: turning export on silences nothing.
    """

    def __init__(self, provider: LoggerProvider) -> None:
        from opentelemetry.sdk._logs import LoggingHandler

        super().__init__(logging.WARNING)
        self.handed = itertools.count()
        # Deprecated (SDK 1.45) for opentelemetry-instrumentation-logging's handler, which is no
        # dependency of spanhooks; still the SDK's own, and what its auto-configuration uses.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self.otel = LoggingHandler(logging.WARNING, provider)

    def emit(self, record: logging.LogRecord) -> None:
        next(self.handed)
        try:
            exported = record
            if record.exc_text and not record.exc_info:  # formatted and scrubbed by util/log.py
                exported = logging.makeLogRecord(record.__dict__)
                exported.__dict__["exception.stacktrace"] = record.exc_text  # an attribute
            self.otel.emit(exported)
        except Exception:  # the record stays uncounted as exported: it shows up as unsent
            pass
        last = logging.lastResort
        if last is not None and record.levelno >= last.level:
            source = logging.getLogger(record.name)
            if all(handler is self for handler in _handlers_seeing(source)):
                last.handle(record)
