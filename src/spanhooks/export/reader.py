"""Reading JSONL trace files back into plain span records (:mod:`~spanhooks.export.trees`
rebuilds and prints their trees).

:func:`read_spans` reads both formats :class:`~spanhooks.JsonlSpanExporter` writes, deciding
per line: an OTLP/JSON request (a line with ``resourceSpans``) becomes one :class:`SpanRecord`
per span, the same shape a ``spanhooks`` line has. A torn last line (a write cut short by a
crash) is skipped quietly; a corrupt line elsewhere is skipped, counted and reported once per
file.

Everything here is pure: no shared state, safe to call from any thread.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import datetime
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

__all__ = [
    "DroppedCounts",
    "EventRecord",
    "LinkRecord",
    "ReadResult",
    "ScopeRecord",
    "SpanRecord",
    "SpanStatus",
    "iso_time",
    "read_spans",
]

logger = logging.getLogger("spanhooks")


class SpanStatus(TypedDict):
    """A span's status: ``code`` is ``"UNSET"``, ``"OK"`` or ``"ERROR"``."""

    code: str
    description: str | None


class EventRecord(TypedDict):
    """A span event: its name, time (ns since the epoch and ISO-8601) and attributes."""

    name: str
    time_unix_nano: int
    time: str | None
    attributes: dict[str, Any]


class LinkRecord(TypedDict):
    """A link to another span, by hex ids, with the link's attributes."""

    trace_id: str
    span_id: str
    attributes: dict[str, Any]


class ScopeRecord(TypedDict):
    """The instrumentation scope (tracer name and version) that produced a span."""

    name: str | None
    version: str | None


class DroppedCounts(TypedDict):
    """How many attributes, events and links the SDK dropped from a span over its limits."""

    attributes: int
    events: int
    links: int


class _SpanIdentity(TypedDict):
    trace_id: str
    span_id: str
    name: str


class SpanRecord(_SpanIdentity, total=False):
    """One span as a line of the ``spanhooks`` JSONL format holds it (32/16 hex digit ids).

    Only the ids and the name are required, so that records can be built by hand; spans read
    by :func:`read_spans` always have ``parent_span_id``, ``status``, ``attributes``,
    ``events`` and ``links`` too.
    """

    parent_span_id: str | None
    kind: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    start_time: str | None
    end_time: str | None
    duration_ms: float | None
    status: SpanStatus
    attributes: dict[str, Any]
    events: list[EventRecord]
    links: list[LinkRecord]
    resource: dict[str, Any]
    scope: ScopeRecord
    dropped: DroppedCounts


@dataclass(frozen=True)
class ReadResult:
    """What :func:`read_spans` found: the spans, how many lines were unreadable, a torn tail,
    and the log records (GenAI content events) written beside the spans, as plain objects."""

    spans: list[SpanRecord]
    skipped: int = 0
    torn_tail: bool = False
    logs: list[dict[str, Any]] = field(default_factory=list)


_EPOCH = datetime.datetime(1970, 1, 1)  # naive, in UTC: isoformat() then adds no offset


def iso_time(nanos: int | None) -> str | None:
    """ISO-8601 UTC with microseconds and a trailing ``Z``; None when there is no valid time."""
    if nanos is None:
        return None
    try:
        moment = _EPOCH + datetime.timedelta(microseconds=nanos // 1000)
    except OverflowError:
        return None
    return moment.isoformat(timespec="microseconds") + "Z"


# What a damaged line can raise while it is decoded, parsed (deep nesting: RecursionError) or
# converted from a structure that is JSON but not the one expected.
_BAD_LINE = (ValueError, TypeError, KeyError, AttributeError, RecursionError)
_MAX_REPORTED_LINES = 10


def read_spans(path: str | os.PathLike[str]) -> ReadResult:
    """Every span in a JSONL trace file of either format, in file order.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file with content
    but not one readable line (binary data, or text that is not a trace file).
    """
    name = os.fspath(path)
    spans: list[SpanRecord] = []
    logs: list[dict[str, Any]] = []
    bad_lines: list[int] = []
    first_error = ""
    readable = torn = not_text = False
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            complete = line.endswith(b"\n")
            try:
                data = _load(_decode(line, complete))
                if _is_log_record(data):
                    logs.append(data)
                else:
                    spans.extend(_records(data))
            except UnicodeDecodeError as exc:
                not_text = True
                error: Exception = exc
            except _BAD_LINE as exc:
                error = exc
            else:
                readable = True
                continue
            if complete:
                bad_lines.append(number)
                first_error = first_error or f"{type(error).__name__}: {error}"
            else:
                torn = True
                logger.debug("%s: skipped a torn last line (line %d)", name, number)
    if not readable and (bad_lines or torn):
        what = "is not a UTF-8 text file" if not_text else "has no readable span line"
        raise ValueError(f"{name} {what} ({len(bad_lines) + torn} unreadable line(s))")
    if bad_lines:
        _report(name, bad_lines, first_error)
    return ReadResult(spans, len(bad_lines), torn, logs)


def _decode(line: bytes, complete: bool) -> str:
    if complete:
        return line.decode("utf-8")
    # A torn line may end inside a multi-byte character; only invalid bytes make it not text.
    return codecs.getincrementaldecoder("utf-8")().decode(line, final=False)


def _report(name: str, bad_lines: list[int], first_error: str) -> None:
    shown = ", ".join(map(str, bad_lines[:_MAX_REPORTED_LINES]))
    more = ", ..." if len(bad_lines) > _MAX_REPORTED_LINES else ""
    logger.warning(
        "%s: skipped %d unreadable line(s): line %s%s (first: %s)",
        name,
        len(bad_lines),
        shown,
        more,
        first_error,
    )


def _load(text: str) -> dict[str, Any]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("a line must hold a JSON object")
    return data


def _is_log_record(data: dict[str, Any]) -> bool:
    """A log record's line (:mod:`spanhooks.export.jsonl_logs`): it has no span name."""
    return "event_name" in data and "observed_time_unix_nano" in data and "name" not in data


def _records(data: dict[str, Any]) -> list[SpanRecord]:
    if "resourceSpans" in data:
        return _from_otlp(data)
    return [_from_spanhooks(data)]


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "trace_id": (str,),
    "span_id": (str,),
    "name": (str,),
    "parent_span_id": (str, type(None)),
    "kind": (str,),
    "start_time_unix_nano": (int,),
    "end_time_unix_nano": (int,),
    "duration_ms": (int, float, type(None)),
    "status": (dict,),
    "attributes": (dict,),
    "events": (list,),
    "links": (list,),
    "resource": (dict,),
    "scope": (dict,),
    "dropped": (dict,),
}
_REQUIRED = ("trace_id", "span_id", "name")


def _from_spanhooks(data: dict[str, Any]) -> SpanRecord:
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise ValueError(f"not a span record: no {', '.join(missing)}")
    for key, types in _FIELD_TYPES.items():
        if key in data and not isinstance(data[key], types):
            raise ValueError(f"{key} is a {type(data[key]).__name__}")
    if not isinstance(data.get("status", {}).get("code", ""), str):
        raise ValueError("status code is not a string")
    if not all(isinstance(event, dict) for event in data.get("events", [])):
        raise ValueError("an event is not an object")
    defaults: dict[str, Any] = {
        "parent_span_id": None,
        "status": {"code": "UNSET", "description": None},
        "attributes": {},
        "events": [],
        "links": [],
    }
    return cast(SpanRecord, defaults | data)


_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS_CODES = ("UNSET", "OK", "ERROR")


def _from_otlp(request: dict[str, Any]) -> list[SpanRecord]:
    records: list[SpanRecord] = []
    for resource_spans in request["resourceSpans"]:
        resource = _attributes(resource_spans.get("resource", {}).get("attributes", []))
        for scope_spans in resource_spans.get("scopeSpans", []):
            scope = scope_spans.get("scope", {})
            scope_record = ScopeRecord(name=scope.get("name"), version=scope.get("version"))
            for span in scope_spans.get("spans", []):
                record = _otlp_span(span)
                record["resource"] = resource
                record["scope"] = scope_record
                records.append(record)
    return records


def _otlp_span(span: dict[str, Any]) -> SpanRecord:
    start = int(span.get("startTimeUnixNano", 0))
    end = int(span.get("endTimeUnixNano", 0))
    status = span.get("status", {})
    parent = span.get("parentSpanId")
    return SpanRecord(
        trace_id=_hex_id(span["traceId"], 16),
        span_id=_hex_id(span["spanId"], 8),
        parent_span_id=_hex_id(parent, 8) if parent else None,
        name=str(span.get("name", "")),
        kind=_enum_name(span.get("kind", 0), _KINDS, "SPAN_KIND_"),
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        start_time=iso_time(start),
        end_time=iso_time(end),
        duration_ms=(end - start) / 1e6,
        status=SpanStatus(
            code=_enum_name(status.get("code", 0), _STATUS_CODES, "STATUS_CODE_"),
            description=status.get("message") or None,
        ),
        attributes=_attributes(span.get("attributes", [])),
        events=[_otlp_event(event) for event in span.get("events", [])],
        links=[
            LinkRecord(
                trace_id=_hex_id(link["traceId"], 16),
                span_id=_hex_id(link["spanId"], 8),
                attributes=_attributes(link.get("attributes", [])),
            )
            for link in span.get("links", [])
        ],
        dropped=DroppedCounts(
            attributes=int(span.get("droppedAttributesCount", 0)),
            events=int(span.get("droppedEventsCount", 0)),
            links=int(span.get("droppedLinksCount", 0)),
        ),
    )


def _otlp_event(event: dict[str, Any]) -> EventRecord:
    nanos = int(event.get("timeUnixNano", 0))
    return EventRecord(
        name=str(event.get("name", "")),
        time_unix_nano=nanos,
        time=iso_time(nanos),
        attributes=_attributes(event.get("attributes", [])),
    )


def _hex_id(value: str, size: int) -> str:
    """An id in lowercase hex, as OTLP/JSON requires; base64 (protobuf's JSON) is accepted too."""
    if len(value) == size * 2:
        int(value, 16)  # raises ValueError if it is not hex
        return value.lower()
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError(f"id {value!r} is neither hex nor base64") from None
    if len(raw) != size:
        raise ValueError(f"id {value!r} is not {size} bytes long")
    return raw.hex()


def _enum_name(value: int | str, names: tuple[str, ...], prefix: str) -> str:
    """An OTLP enum given as a number or as its protobuf name, as the short name."""
    if isinstance(value, str) and not value.isdigit():
        return value.removeprefix(prefix)
    number = int(value)
    return names[number] if 0 <= number < len(names) else str(number)


def _attributes(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {item["key"]: _any_value(item.get("value", {})) for item in items}


def _any_value(value: dict[str, Any]) -> Any:
    """An OTLP ``AnyValue`` as a plain value (arrays as lists, key-value lists as dicts)."""
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [_any_value(item) for item in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return _attributes(value["kvlistValue"].get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]  # base64 text, as protobuf's JSON writes bytes
    return None
