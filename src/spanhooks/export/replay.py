"""Replaying a captured JSONL trace file to an OTLP endpoint (``spanhooks replay``).

Records of either format are turned back into SDK spans, with their original ids, parents,
times, attributes, events, links, status, resource and scope, and handed to the SDK's own OTLP
exporters, so traces recorded offline reach Jaeger, Tempo or any OTLP backend later exactly as
they were.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from spanhooks.export.reader import SpanRecord, read_spans

__all__ = ["records_to_spans", "replay"]

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def _context(trace_id: str, span_id: str) -> SpanContext:
    return SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=False, trace_flags=_SAMPLED)


def _attributes(values: Any) -> dict[str, Any]:
    """Attribute values as the SDK accepts them (lists become tuples, nested data JSON text)."""
    out: dict[str, Any] = {}
    for key, raw in (values or {}).items():
        if isinstance(raw, list):
            out[str(key)] = tuple(raw)
        elif isinstance(raw, dict):
            out[str(key)] = json.dumps(raw, separators=(",", ":"))
        elif raw is not None:
            out[str(key)] = raw
    return out


def _kind(name: object) -> SpanKind:
    return (
        SpanKind[name]
        if isinstance(name, str) and name in SpanKind.__members__
        else SpanKind.INTERNAL
    )


def records_to_spans(records: Iterable[SpanRecord]) -> list[ReadableSpan]:
    """SDK spans with the ids, times and data of the records."""
    spans: list[ReadableSpan] = []
    resources: dict[str, Resource] = {}
    for record in records:
        trace_id = record["trace_id"]
        parent_id = record.get("parent_span_id")
        status = record.get("status") or {"code": "UNSET", "description": None}
        resource_attributes = _attributes(record.get("resource"))
        key = repr(sorted(resource_attributes.items()))
        resource = resources.setdefault(key, Resource(resource_attributes))
        scope: dict[str, Any] = dict(record.get("scope") or {})
        spans.append(
            ReadableSpan(
                name=record["name"],
                context=_context(trace_id, record["span_id"]),
                parent=_context(trace_id, parent_id) if parent_id else None,
                resource=resource,
                attributes=_attributes(record.get("attributes")),
                events=[
                    Event(
                        str(e.get("name", "")),
                        _attributes(e.get("attributes")),
                        int(e.get("time_unix_nano") or 0),
                    )
                    for e in record.get("events") or []
                ],
                links=[
                    Link(
                        _context(str(link["trace_id"]), str(link["span_id"])),
                        _attributes(link.get("attributes")),
                    )
                    for link in record.get("links") or []
                    if link.get("trace_id") and link.get("span_id")
                ],
                kind=_kind(record.get("kind")),
                status=Status(StatusCode[status.get("code") or "UNSET"], status.get("description")),
                start_time=int(record.get("start_time_unix_nano") or 0),
                end_time=int(record.get("end_time_unix_nano") or 0),
                instrumentation_scope=InstrumentationScope(
                    str(scope.get("name") or "spanhooks.replay"), scope.get("version")
                ),
            )
        )
    return spans


def _exporter(endpoint: str | None, protocol: str, headers: dict[str, str] | None) -> SpanExporter:
    """The SDK's OTLP exporter for ``protocol``; with no ``endpoint`` the SDK reads it from
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as is) or ``OTEL_EXPORTER_OTLP_ENDPOINT`` (a
    base URL), as it does for any exporter it configures."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        if endpoint is None:
            return GrpcExporter(headers=headers)
        return GrpcExporter(
            endpoint=endpoint, insecure=endpoint.startswith("http://"), headers=headers
        )
    if protocol not in ("http/protobuf", "http"):
        raise ValueError(f"unsupported OTLP protocol {protocol!r}: use 'http/protobuf' or 'grpc'")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    if endpoint is None:
        return HttpExporter(headers=headers)
    url = endpoint.rstrip("/")
    return HttpExporter(
        endpoint=url if url.endswith("/v1/traces") else url + "/v1/traces", headers=headers
    )


def replay(
    path: str | os.PathLike[str],
    endpoint: str | None = None,
    *,
    protocol: str = "http/protobuf",
    batch_size: int = 512,
    headers: dict[str, str] | None = None,
) -> tuple[int, int]:
    """Send every span in ``path`` to ``endpoint``; (spans sent, spans in failed batches).

    ``endpoint=None`` sends where ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` says, read by the SDK exporter itself so that the
    variables mean what they mean to any OTLP exporter (the SDK's localhost default when
    neither is set: ``spanhooks replay`` refuses that case before calling this). The protocol
    is the caller's to choose (the command reads ``OTEL_EXPORTER_OTLP_PROTOCOL``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    spans = records_to_spans(read_spans(path).spans)
    exporter = _exporter(endpoint, protocol, headers)
    sent = failed = 0
    try:
        for start in range(0, len(spans), batch_size):
            batch: Sequence[ReadableSpan] = spans[start : start + batch_size]
            if exporter.export(batch) is SpanExportResult.SUCCESS:
                sent += len(batch)
            else:
                failed += len(batch)
    finally:
        exporter.shutdown()
    return sent, failed
