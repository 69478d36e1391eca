"""Reading JSONL trace files back, rebuilding trace trees, and printing them.

Reads both formats the exporter writes, line by line. A torn last line (a write interrupted
by a crash) is skipped quietly; a corrupt line elsewhere is skipped, counted and reported once.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, TypedDict

__all__ = ["ReadResult", "SpanNode", "SpanRecord", "build_trees", "format_trees", "read_spans"]

logger = logging.getLogger("spanhooks")

_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


class SpanStatus(TypedDict):
    code: str
    description: str | None


class SpanRecord(TypedDict, total=False):
    """One span as the ``spanhooks`` JSONL format writes it (and as OTLP lines are read)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    start_time: str | None
    end_time: str | None
    duration_ms: float | None
    status: SpanStatus
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    links: list[dict[str, Any]]
    resource: dict[str, Any]
    scope: dict[str, Any]


@dataclass(frozen=True)
class ReadResult:
    """What :func:`read_spans` found: the spans, how many lines were unreadable, a torn tail."""

    spans: list[SpanRecord]
    skipped: int = 0
    torn_tail: bool = False


def read_spans(path: str | os.PathLike[str]) -> ReadResult:
    """Every span in a JSONL trace file of either format.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that is not
    a trace file at all (binary, or content without a single readable line).
    """
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{os.fspath(path)} is not a UTF-8 JSONL trace file ({exc.reason})"
        ) from None
    lines = text.split("\n")
    ends_clean = text.endswith("\n")
    if ends_clean:
        lines.pop()
    spans: list[SpanRecord] = []
    skipped = 0
    torn = False
    first_bad: int | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            spans.extend(_parse_line(json.loads(line)))
        except (ValueError, TypeError, KeyError, AttributeError):
            if number == len(lines) and not ends_clean:
                torn = True
                logger.debug("%s: skipped a torn last line", os.fspath(path))
                continue
            skipped += 1
            first_bad = first_bad or number
    if skipped:
        logger.warning(
            "%s: skipped %d unreadable line(s), the first at line %d",
            os.fspath(path),
            skipped,
            first_bad,
        )
    if not spans and skipped:
        raise ValueError(f"{os.fspath(path)} has no readable span line ({skipped} unreadable)")
    return ReadResult(spans, skipped, torn)


def _parse_line(data: Any) -> list[SpanRecord]:
    if not isinstance(data, dict):
        raise ValueError("a line must be a JSON object")
    if "resourceSpans" in data:
        return list(_from_otlp(data))
    if not isinstance(data.get("name"), str) or not isinstance(data.get("span_id"), str):
        raise ValueError("not a span record")
    return [data]  # type: ignore[list-item]


def _from_otlp(request: dict[str, Any]) -> list[SpanRecord]:
    records: list[SpanRecord] = []
    for resource_spans in request.get("resourceSpans", []):
        resource = _attributes(resource_spans.get("resource", {}).get("attributes", []))
        for scope_spans in resource_spans.get("scopeSpans", []):
            scope = scope_spans.get("scope", {})
            for span in scope_spans.get("spans", []):
                start = int(span.get("startTimeUnixNano", 0))
                end = int(span.get("endTimeUnixNano", 0))
                status = span.get("status", {})
                records.append(
                    SpanRecord(
                        trace_id=span["traceId"],
                        span_id=span["spanId"],
                        parent_span_id=span.get("parentSpanId") or None,
                        name=span.get("name", ""),
                        kind=_KINDS.get(int(span.get("kind", 0)), "UNSPECIFIED"),
                        start_time_unix_nano=start,
                        end_time_unix_nano=end,
                        start_time=_iso(start),
                        end_time=_iso(end),
                        duration_ms=(end - start) / 1e6,
                        status=SpanStatus(
                            code=_STATUS.get(int(status.get("code", 0)), "UNSET"),
                            description=status.get("message") or None,
                        ),
                        attributes=_attributes(span.get("attributes", [])),
                        events=[
                            {
                                "name": event.get("name", ""),
                                "time_unix_nano": int(event.get("timeUnixNano", 0)),
                                "time": _iso(int(event.get("timeUnixNano", 0))),
                                "attributes": _attributes(event.get("attributes", [])),
                            }
                            for event in span.get("events", [])
                        ],
                        links=[
                            {
                                "trace_id": link.get("traceId"),
                                "span_id": link.get("spanId"),
                                "attributes": _attributes(link.get("attributes", [])),
                            }
                            for link in span.get("links", [])
                        ],
                        resource=resource,
                        scope={"name": scope.get("name"), "version": scope.get("version")},
                    )
                )
    return records


def _attributes(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {item["key"]: _any_value(item.get("value", {})) for item in items}


def _any_value(value: dict[str, Any]) -> Any:
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "arrayValue" in value:
        return [_any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return _attributes(value["kvlistValue"].get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def _iso(nanos: int) -> str | None:
    if not nanos:
        return None
    moment = datetime.datetime.fromtimestamp(nanos / 1e9, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class SpanNode:
    """A span and its children, in start order."""

    span: SpanRecord
    children: list[SpanNode] = field(default_factory=list)


def _start_key(node: SpanNode) -> tuple[int, str]:
    return (int(node.span.get("start_time_unix_nano") or 0), node.span.get("span_id", ""))


def build_trees(spans: list[SpanRecord]) -> list[SpanNode]:
    """Traces as trees; a span whose parent is not in the file becomes a root.

    Roots come in start order, grouped by trace. Never recursive, so any depth works.
    """
    nodes = {(span.get("trace_id"), span.get("span_id")): SpanNode(span) for span in spans}
    roots: list[SpanNode] = []
    for (trace_id, _), node in nodes.items():
        parent = nodes.get((trace_id, node.span.get("parent_span_id")))
        if parent is None or parent is node:
            roots.append(node)
        else:
            parent.children.append(node)
    for node in nodes.values():
        node.children.sort(key=_start_key)
    roots.sort(key=_start_key)
    first_start: dict[object, tuple[int, str]] = {}
    for root in roots:
        first_start.setdefault(root.span.get("trace_id"), _start_key(root))
    roots.sort(key=lambda r: (first_start[r.span.get("trace_id")], _start_key(r)))
    return roots


def format_duration(milliseconds: float | None) -> str:
    """812µs, 12.3ms, 1.20s: short and readable."""
    if milliseconds is None:
        return "?"
    if milliseconds < 1:
        return f"{milliseconds * 1000:.0f}µs"
    if milliseconds < 1000:
        return f"{milliseconds:.1f}ms"
    return f"{milliseconds / 1000:.2f}s"


_RED, _DIM, _RESET = "\x1b[31m", "\x1b[2m", "\x1b[0m"


def format_trees(roots: list[SpanNode], *, color: bool = False) -> str:
    """An indented tree per trace: name, duration, ERROR with its description, span events."""
    red, dim, reset = (_RED, _DIM, _RESET) if color else ("", "", "")
    out: list[str] = []
    current_trace: object = None
    for root in roots:
        trace_id = root.span.get("trace_id", "")
        if trace_id != current_trace:
            if out:
                out.append("")
            out.append(f"{dim}trace {str(trace_id)[:8]}{reset}")
            current_trace = trace_id
        stack: list[tuple[SpanNode, str, str]] = [(root, "", "")]
        while stack:
            node, lead, child_prefix = stack.pop()
            span = node.span
            took = format_duration(span.get("duration_ms"))
            line = f"{lead}{span.get('name', '?')}  {dim}{took}{reset}"
            status = span.get("status") or {"code": "UNSET", "description": None}
            if status.get("code") == "ERROR":
                line += f"  {red}ERROR: {status.get('description') or ''}{reset}".rstrip()
            events = span.get("events") or []
            if events:
                line += f"  ({len(events)} events)"
            out.append(line)
            bar = "│  " if node.children else "   "
            for event in events:
                out.append(f"{child_prefix}{bar}{dim}· {event.get('name')}{reset}")
            for index in range(len(node.children) - 1, -1, -1):
                last = index == len(node.children) - 1
                connector = "└─ " if last else "├─ "
                deeper = child_prefix + ("   " if last else "│  ")
                stack.append((node.children[index], child_prefix + connector, deeper))
    return "\n".join(out)
