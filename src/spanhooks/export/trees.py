"""Trace trees from span records: parents found by id, children in start order, traces
grouped by the session their spans carry, and the trees printed as text (``spanhooks view``).
Nothing here recurses, so any depth works; an id cycle in a damaged file is broken, not
followed.

Pure functions: no shared state, safe to call from any thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from spanhooks.export.reader import SpanRecord

__all__ = [
    "SESSION_ATTRIBUTE",
    "SpanNode",
    "build_trees",
    "by_session",
    "format_duration",
    "format_trees",
    "session_of",
]

SESSION_ATTRIBUTE = "session.id"
"""What :func:`spanhooks.session` stamps on every span of a session."""


@dataclass
class SpanNode:
    """A span and its children, in start order: one node of a trace tree."""

    span: SpanRecord
    children: list[SpanNode] = field(default_factory=list)


_NodeKey = tuple[str, str]


def _start_key(node: SpanNode) -> tuple[int, str]:
    return (node.span.get("start_time_unix_nano") or 0, node.span["span_id"])


def build_trees(spans: Iterable[SpanRecord]) -> list[SpanNode]:
    """The roots of every trace's tree: traces in order of their first span, roots by start.

    A span whose parent is not among ``spans`` becomes a root, and so does one span of each
    parent cycle a damaged file may hold, so no span is ever lost. A span id seen twice in a
    trace keeps its last record.
    """
    nodes = {(span["trace_id"], span["span_id"]): SpanNode(span) for span in spans}
    parents: dict[_NodeKey, SpanNode] = {}
    roots: list[SpanNode] = []
    for (trace_id, span_id), node in nodes.items():
        parent = nodes.get((trace_id, node.span.get("parent_span_id") or ""))
        if parent is None or parent is node:
            roots.append(node)
        else:
            parents[(trace_id, span_id)] = parent
            parent.children.append(node)
    roots += _break_cycles(nodes, parents, roots)
    for node in nodes.values():
        node.children.sort(key=_start_key)
    return _in_trace_order(roots)


def _break_cycles(
    nodes: dict[_NodeKey, SpanNode], parents: dict[_NodeKey, SpanNode], roots: list[SpanNode]
) -> list[SpanNode]:
    """Nodes that, cut from their parent, make every node reachable from a root."""
    unreached = {id(node): key for key, node in nodes.items()}
    _forget_reachable(roots, unreached)
    new_roots: list[SpanNode] = []
    while unreached:
        root = min((nodes[key] for key in unreached.values()), key=_start_key)
        parents[(root.span["trace_id"], root.span["span_id"])].children.remove(root)
        new_roots.append(root)
        _forget_reachable([root], unreached)
    return new_roots


def _forget_reachable(roots: list[SpanNode], unreached: dict[int, _NodeKey]) -> None:
    stack = list(roots)
    while stack:
        node = stack.pop()
        unreached.pop(id(node), None)
        stack.extend(node.children)


def _in_trace_order(roots: list[SpanNode]) -> list[SpanNode]:
    roots.sort(key=_start_key)
    first_root: dict[str, tuple[int, str]] = {}
    for root in roots:
        first_root.setdefault(root.span["trace_id"], _start_key(root))
    return sorted(
        roots, key=lambda root: (first_root[root.span["trace_id"]], root.span["trace_id"])
    )


def session_of(root: SpanNode) -> str | None:
    """The session id of the tree under ``root``: the first its spans carry, in tree order."""
    stack = [root]
    while stack:
        node = stack.pop()
        found = (node.span.get("attributes") or {}).get(SESSION_ATTRIBUTE)
        if isinstance(found, str) and found:
            return found
        stack.extend(reversed(node.children))
    return None


def by_session(roots: list[SpanNode]) -> list[tuple[str | None, list[SpanNode]]]:
    """``roots`` (as :func:`build_trees` orders them) in groups of one session each: sessions
    in the order their first trace started, a trace in the session any of its trees names,
    traces of no session last. Within a group traces keep their order."""
    trace_session: dict[str, str | None] = {}
    for root in roots:
        trace_id = root.span["trace_id"]
        if trace_session.get(trace_id) is None:
            trace_session[trace_id] = session_of(root)
    groups: dict[str | None, list[SpanNode]] = {}
    for root in roots:
        groups.setdefault(trace_session[root.span["trace_id"]], []).append(root)
    unsessioned = groups.pop(None, None)
    ordered: list[tuple[str | None, list[SpanNode]]] = list(groups.items())
    if unsessioned is not None:
        ordered.append((None, unsessioned))
    return ordered


def format_duration(milliseconds: float | None) -> str:
    """A duration as a person reads it: ``812µs``, ``12.3ms``, ``1.20s`` (``?`` if unknown)."""
    if milliseconds is None or milliseconds < 0:
        return "?"
    if round(milliseconds * 1000) < 1000:
        return f"{milliseconds * 1000:.0f}µs"
    if round(milliseconds, 1) < 1000:
        return f"{milliseconds:.1f}ms"
    return f"{milliseconds / 1000:.2f}s"


_RED, _DIM, _RESET = "\x1b[31m", "\x1b[2m", "\x1b[0m"


@dataclass(frozen=True)
class _Palette:
    red: str = ""
    dim: str = ""
    reset: str = ""


def format_trees(roots: list[SpanNode], *, color: bool = False) -> str:
    """Trace trees as text: a ``trace <id>`` header per trace, then one line per span.

    Each line has the span's name, duration, ``ERROR: <description>`` for a failed span and
    its event count; its events follow as ``· name`` lines. Children are indented two columns
    per level with ``├─``/``└─`` connectors. When spans carry session ids
    (:func:`spanhooks.session`), traces are grouped under a ``session <id>`` header per session
    (``no session`` for the rest). ANSI colours only when ``color`` is true.
    """
    palette = _Palette(_RED, _DIM, _RESET) if color else _Palette()
    out: list[str] = []
    groups = by_session(roots)
    headed = bool(groups) and groups[0][0] is not None  # some trace has a session
    for session, group in groups:
        just_headed = False
        if headed:
            if out:
                out.append("")
            title = f"session {_printable(session)}" if session is not None else "no session"
            out.append(f"{palette.dim}{title}{palette.reset}")
            just_headed = True
        trace_id: str | None = None
        for root in group:
            if root.span["trace_id"] != trace_id:
                trace_id = root.span["trace_id"]
                if out and not just_headed:
                    out.append("")
                just_headed = False
                out.append(f"{palette.dim}trace {_printable(trace_id[:8])}{palette.reset}")
            _format_tree(root, palette, out)
    return "\n".join(out)


def _format_tree(root: SpanNode, palette: _Palette, out: list[str]) -> None:
    # Each entry: the node, the text before its name, and the prefix its own lines continue.
    stack: list[tuple[SpanNode, str, str]] = [(root, "", "")]
    while stack:
        node, lead, prefix = stack.pop()
        out.append(lead + _span_line(node.span, palette))
        under = prefix + ("│ " if node.children else "  ")
        for event in node.span.get("events", []):
            name = _printable(str(event.get("name")))
            out.append(f"{under}{palette.dim}· {name}{palette.reset}")
        last = len(node.children) - 1
        for index in range(last, -1, -1):
            connector, continuation = ("└─ ", "  ") if index == last else ("├─ ", "│ ")
            stack.append((node.children[index], prefix + connector, prefix + continuation))


def _span_line(span: SpanRecord, palette: _Palette) -> str:
    took = format_duration(_duration_ms(span))
    line = f"{_printable(span['name'])}  {palette.dim}{took}{palette.reset}"
    status = span.get("status")
    if status is not None and status.get("code") == "ERROR":
        error = f"ERROR: {status['description']}" if status.get("description") else "ERROR"
        line += f"  {palette.red}{_printable(error)}{palette.reset}"
    count = len(span.get("events", []))
    if count:
        line += f"  ({count} event{'' if count == 1 else 's'})"
    return line


def _duration_ms(span: SpanRecord) -> float | None:
    if span.get("duration_ms") is not None:
        return span.get("duration_ms")
    start, end = span.get("start_time_unix_nano"), span.get("end_time_unix_nano")
    return (end - start) / 1e6 if start is not None and end is not None else None


def _printable(text: str) -> str:
    """Text with control characters escaped, so a name cannot break lines or move the cursor."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)
