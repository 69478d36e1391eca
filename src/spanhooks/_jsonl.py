"""The JSONL span exporter: one JSON document per line, written so that a crash tears at most one.

Plug it into the SDK's own processors (``BatchSpanProcessor(JsonlSpanExporter(path))``); it
does no batching of its own. Two formats:

- ``spanhooks``: one object per span (hex ids, parent, name, kind, times in ns and ISO-8601,
  duration, status, attributes, events, links, resource, scope);
- ``otlp``: one OTLP/JSON ``ExportTraceServiceRequest`` per export call, as the OpenTelemetry
  Collector's ``otlpjsonfile`` receiver reads it, so a file can be replayed into any backend.

Threading: one lock per exporter; each export is one ``write()`` and one ``flush()``. After a
fork the child opens its own handle. A torn last line left by a killed process is cut off
before the next append, so it cannot swallow the next record.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import logging
import math
import os
import threading
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from spanhooks._spans import event_set_of

__all__ = ["DEFAULT_PATH", "FORMATS", "JsonlSpanExporter", "span_to_dict"]

logger = logging.getLogger("spanhooks")

DEFAULT_PATH = "spanhooks-traces.jsonl"
FORMATS = ("spanhooks", "otlp")


class JsonlSpanExporter(SpanExporter):
    """Appends finished spans to a JSONL file; see the module docstring for the guarantees.

    ``event_sets`` keeps only spans of those spanhooks event sets (like LogiLLM's
    ``include_module_events``; a span's set is its instrumentation scope, ``spanhooks.<set>``);
    spans of other instrumentations are kept if ``include_foreign``; ``predicate`` filters
    further.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        format: str = "spanhooks",
        event_sets: Collection[str] | None = None,
        include_foreign: bool = True,
        predicate: Callable[[ReadableSpan], bool] | None = None,
    ) -> None:
        if format not in FORMATS:
            raise ValueError(f"unknown JSONL format {format!r}; expected one of {FORMATS}")
        if predicate is not None and not callable(predicate):
            raise TypeError(f"predicate must be callable, got {predicate!r}")
        self.path = Path(
            path if path is not None else os.environ.get("SPANHOOKS_JSONL_PATH") or DEFAULT_PATH
        )
        self.format = format
        self._event_sets = frozenset(event_sets) if event_sets is not None else None
        self._include_foreign = include_foreign
        self._predicate = predicate
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._pid = os.getpid()
        self._shutdown = False
        self.written = 0
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)

            def reinit_in_child() -> None:
                exporter = ref()
                if exporter is not None:
                    exporter._after_fork()

            os.register_at_fork(after_in_child=reinit_in_child)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        kept = [span for span in spans if self._keep(span)]
        if not kept:
            return SpanExportResult.SUCCESS
        try:
            payload = self._encode(kept)
        except Exception:  # encoding is defensive; this is a last resort
            logger.exception("could not encode %d spans for %s", len(kept), self.path)
            return SpanExportResult.FAILURE
        with self._lock:
            try:
                handle = self._handle()
                handle.write(payload)
                handle.flush()
            except OSError as exc:
                logger.error("writing spans to %s failed: %s", self.path, exc)
                self._close_handle()
                return SpanExportResult.FAILURE
            self.written += len(kept)
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._lock:
            if self._file is not None:
                try:
                    self._file.flush()
                except OSError:
                    return False
        return True

    def shutdown(self) -> None:
        with self._lock:
            self._shutdown = True
            self._close_handle()

    def _keep(self, span: ReadableSpan) -> bool:
        if self._event_sets is not None or not self._include_foreign:
            event_set = event_set_of(span)
            if event_set is None:
                if not self._include_foreign:
                    return False
            elif self._event_sets is not None and event_set not in self._event_sets:
                return False
        if self._predicate is not None:
            try:
                return bool(self._predicate(span))
            except Exception:
                logger.exception("JSONL predicate failed; keeping the span")
        return True

    def _encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        if self.format == "otlp":
            lines = [dumps(otlp_request(spans))]
        else:
            lines = [dumps(span_to_dict(span)) for span in spans]
        return ("\n".join(lines) + "\n").encode("utf-8", errors="replace")

    def _handle(self) -> IO[bytes]:
        if self._file is None or self._pid != os.getpid():
            self._file = None
            self._pid = os.getpid()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _repair_torn_tail(self.path)
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open across exports
        return self._file

    def _close_handle(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = None

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._file = None  # the parent's buffer is not ours to flush or close
        self._pid = os.getpid()


def _repair_torn_tail(path: Path) -> None:
    """Cut a last line that has no newline (a write interrupted by a crash)."""
    try:
        with open(path, "r+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            keep = size
            while keep > 0:
                step = min(65536, keep)
                handle.seek(keep - step)
                chunk = handle.read(step)
                newline = chunk.rfind(b"\n")
                if newline >= 0:
                    keep = keep - step + newline + 1
                    break
                keep -= step
            handle.truncate(keep)
            logger.warning(
                "%s ended with a torn line; discarded its last %d bytes", path, size - keep
            )
    except FileNotFoundError:
        return


def dumps(data: Any) -> str:
    """Compact JSON that is always valid: NaN and infinities become strings."""
    return json.dumps(_sanitise(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _sanitise(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, Mapping):
        return {str(k): _sanitise(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [_sanitise(v) for v in value]
    try:
        return str(value)
    except Exception:
        return "<unrepresentable>"


def _iso(nanos: int | None) -> str | None:
    if nanos is None:
        return None
    moment = datetime.datetime.fromtimestamp(nanos / 1e9, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    """One span in the ``spanhooks`` JSONL format."""
    context = span.context
    parent = span.parent
    start, end = span.start_time, span.end_time
    return {
        "trace_id": _hex(context.trace_id, 32) if context else None,
        "span_id": _hex(context.span_id, 16) if context else None,
        "parent_span_id": _hex(parent.span_id, 16) if parent is not None else None,
        "name": span.name,
        "kind": span.kind.name,
        "start_time_unix_nano": start,
        "end_time_unix_nano": end,
        "start_time": _iso(start),
        "end_time": _iso(end),
        "duration_ms": (end - start) / 1e6 if start is not None and end is not None else None,
        "status": {
            "code": span.status.status_code.name,
            "description": span.status.description,
        },
        "attributes": dict(span.attributes or {}),
        "events": [
            {
                "name": event.name,
                "time_unix_nano": event.timestamp,
                "time": _iso(event.timestamp),
                "attributes": dict(event.attributes or {}),
            }
            for event in span.events
        ],
        "links": [
            {
                "trace_id": _hex(link.context.trace_id, 32),
                "span_id": _hex(link.context.span_id, 16),
                "attributes": dict(link.attributes or {}),
            }
            for link in span.links
        ],
        "resource": dict(span.resource.attributes),
        "scope": {
            "name": span.instrumentation_scope.name if span.instrumentation_scope else None,
            "version": span.instrumentation_scope.version if span.instrumentation_scope else None,
        },
        "dropped": {
            "attributes": span.dropped_attributes,
            "events": span.dropped_events,
            "links": span.dropped_links,
        },
    }


def otlp_request(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """Spans as an OTLP/JSON ``ExportTraceServiceRequest`` (ids in hex, as the spec requires)."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    message: dict[str, Any] = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for resource_spans in message.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                _ids_to_hex(span)
                for link in span.get("links", []):
                    _ids_to_hex(link)
    return message


def _ids_to_hex(item: dict[str, Any]) -> None:
    for key in ("traceId", "spanId", "parentSpanId"):
        if item.get(key):
            item[key] = base64.b64decode(item[key]).hex()
