"""``spanhooks html``: a trace file as one self-contained waterfall page.

The page carries its data inline and draws the waterfall with a few lines of inline script: no
stylesheet, font, script or image is fetched, so it opens offline, from a mail attachment or a
CI artifact. Each trace is a table of spans in tree order; a bar shows when a span ran within its
trace, red when it failed; hovering shows its attributes and events.
"""

from __future__ import annotations

import html
import json
from typing import Any

from spanhooks.export.reader import SpanRecord
from spanhooks.export.trees import SpanNode, build_trees, by_session, format_duration

__all__ = ["render_html"]

_STYLE = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 24px; color: #1d1d1f; }
h1 { font-size: 18px; } h1.session { font-size: 16px; margin-top: 32px; }
h2 { font-size: 14px; margin: 24px 0 6px; color: #555; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
td { padding: 2px 6px; border-bottom: 1px solid #eee; white-space: nowrap; overflow: hidden; }
td.name { width: 34%; } td.took { width: 8%; text-align: right; color: #555; }
.track { position: relative; height: 14px; background: #f6f6f8; }
.bar { position: absolute; top: 2px; height: 10px; min-width: 2px; border-radius: 2px;
       background: #3478f6; }
tr.error .bar { background: #d93025; } tr.error td.name { color: #d93025; }
.events { color: #888; font-size: 11px; }
"""

_SCRIPT = """
let session;
for (const trace of TRACES) {
  if (trace.session !== undefined && trace.session !== session) {
    session = trace.session;
    const header = document.getElementById("traces").appendChild(document.createElement("h1"));
    header.className = "session";
    header.textContent = session === null ? "no session" : `session ${session}`;
  }
  const section = document.createElement("section");
  section.className = "trace";
  const count = trace.spans.length + (trace.spans.length === 1 ? " span" : " spans");
  const heading = section.appendChild(document.createElement("h2"));
  heading.textContent = `trace ${trace.id.slice(0, 8)} · ${count} · ${trace.took}`;
  const table = document.createElement("table");
  for (const span of trace.spans) {
    const row = table.insertRow();
    row.className = "span" + (span.error ? " error" : "");
    row.dataset.span = span.name;
    row.title = span.detail;
    const name = row.insertCell();
    name.className = "name";
    name.style.paddingLeft = (6 + 16 * span.depth) + "px";
    name.textContent = span.name;
    if (span.events) {
      const events = document.createElement("span");
      events.className = "events";
      events.textContent = "  · " + span.events;
      name.appendChild(events);
    }
    const took = row.insertCell();
    took.className = "took";
    took.textContent = span.took;
    const track = row.insertCell().appendChild(document.createElement("div"));
    track.className = "track";
    const bar = track.appendChild(document.createElement("div"));
    bar.className = "bar";
    bar.style.left = span.left + "%";
    bar.style.width = span.width + "%";
  }
  section.appendChild(table);
  document.getElementById("traces").appendChild(section);
}
"""


def _walk(root: SpanNode) -> list[tuple[int, SpanRecord]]:
    out: list[tuple[int, SpanRecord]] = []
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        out.append((depth, node.span))
        stack.extend((child, depth + 1) for child in reversed(node.children))
    return out


def _trace_data(roots: list[SpanNode]) -> list[dict[str, Any]]:
    """Each trace's rows, grouped by session (``session`` is None for all when no span names
    one, which draws no session headers)."""
    groups = by_session(roots)
    headed = bool(groups) and groups[0][0] is not None
    traces = []
    for session, group in groups:
        traces.extend(_traces(group, session, headed))
    return traces


def _traces(roots: list[SpanNode], session: str | None, headed: bool) -> list[dict[str, Any]]:
    by_trace: dict[str, list[SpanNode]] = {}
    for root in roots:
        by_trace.setdefault(str(root.span.get("trace_id", "")), []).append(root)
    traces = []
    for trace_id, trace_roots in by_trace.items():
        rows = [row for root in trace_roots for row in _walk(root)]
        starts = [int(span.get("start_time_unix_nano") or 0) for _, span in rows]
        ends = [int(span.get("end_time_unix_nano") or 0) for _, span in rows]
        first, last = min(starts), max(ends)
        total = max(last - first, 1)
        traces.append(
            {
                **({"session": session} if headed else {}),
                "id": trace_id,
                "took": format_duration((last - first) / 1e6),
                "spans": [_span_data(depth, span, first, total) for depth, span in rows],
            }
        )
    return traces


def _span_data(depth: int, span: SpanRecord, first: int, total: int) -> dict[str, Any]:
    start = int(span.get("start_time_unix_nano") or first)
    end = int(span.get("end_time_unix_nano") or start)
    status = span.get("status") or {"code": "UNSET", "description": None}
    events = [str(event.get("name")) for event in span.get("events") or []]
    detail = [f"{key} = {value}" for key, value in (span.get("attributes") or {}).items()]
    if status.get("code") == "ERROR":
        detail.insert(0, f"ERROR: {status.get('description') or ''}")
    return {
        "name": span.get("name", "?"),
        "depth": depth,
        "took": format_duration((end - start) / 1e6),
        "left": round(100 * (start - first) / total, 3),
        "width": round(100 * (end - start) / total, 3),
        "error": status.get("code") == "ERROR",
        "events": ", ".join(events),
        "detail": "\n".join(detail + [f"event: {name}" for name in events]),
    }


def render_html(spans: list[SpanRecord], *, title: str = "spanhooks traces") -> str:
    """One HTML document showing every trace in ``spans`` as a waterfall."""
    data = json.dumps(_trace_data(build_trees(spans)), ensure_ascii=False)
    data = data.replace("</", "<\\/")  # the data may not end the script element early
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head>\n"
        f"<body><h1>{html.escape(title)}</h1>"
        f'<p>{len(spans)} spans</p><div id="traces"></div>\n'
        f"<script>const TRACES = {data};\n{_SCRIPT}</script>\n"
        "</body></html>\n"
    )
