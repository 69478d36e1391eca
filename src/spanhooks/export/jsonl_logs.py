"""OpenTelemetry log records (the GenAI conventions' content events) as lines of the JSONL file
the spans go to.

One JSON object per record, beside the span lines and written through the span exporter's
own appends (the same lock, the same torn-tail repair), so the local file holds a call's
content events next to its spans::

    {"event_name": "gen_ai.client.inference.operation.details", "time_unix_nano": ...,
     "trace_id": "...", "span_id": "...", "attributes": {...}, "body": null, ...}

A line is told from a span line by its ``event_name`` and ``observed_time_unix_nano`` (a span
line has ``name``); :func:`spanhooks.export.reader.read_spans` returns them as ``logs``. The
records' attributes may hold structured values (the messages as lists of objects), written as
JSON. Threading contract: the SDK's batch processor calls :meth:`export` from its worker
thread; the appends are the span exporter's, which are safe from any thread.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from spanhooks.export.jsonl import JsonlSpanExporter, json_safe
from spanhooks.export.reader import iso_time

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import ReadableLogRecord
    from opentelemetry.sdk._logs.export import LogRecordExportResult

__all__ = ["JsonlLogExporter", "log_record_to_dict"]


class JsonlLogExporter:
    """Appends log records to the JSONL file of ``spans`` (a :class:`JsonlSpanExporter`).

    Duck-typed as the SDK's ``LogRecordExporter``: subclassing it would import the logs SDK
    whenever spanhooks is imported.
    """

    def __init__(self, spans: JsonlSpanExporter) -> None:
        self.spans = spans

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        lines = [
            json.dumps(log_record_to_dict(record), ensure_ascii=False, separators=(",", ":"))
            for record in batch
        ]
        written = self.spans.append_lines(lines)
        return LogRecordExportResult.SUCCESS if written else LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        return None


def log_record_to_dict(readable: ReadableLogRecord) -> dict[str, Any]:
    """One log record as the JSON-ready object a line holds."""
    record = readable.log_record
    scope = readable.instrumentation_scope
    severity = record.severity_number
    return {
        "event_name": record.event_name or "",
        "time_unix_nano": record.timestamp,
        "observed_time_unix_nano": record.observed_timestamp,
        "time": iso_time(record.timestamp),
        "trace_id": format(record.trace_id, "032x") if record.trace_id else None,
        "span_id": format(record.span_id, "016x") if record.span_id else None,
        "severity_number": severity.value if severity is not None else None,
        "severity_text": record.severity_text,
        "body": json_safe(record.body),
        "attributes": json_safe(dict(record.attributes or {})),
        "resource": json_safe(dict(readable.resource.attributes)),
        "scope": {"name": scope.name, "version": scope.version} if scope is not None else None,
    }
