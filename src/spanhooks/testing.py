"""Test helpers: capture spans and events in memory and compare span trees as plain data.

``capture()`` gives a private TracerProvider (in-memory exporter, sequential ids) and a fresh
:class:`~spanhooks.CallbackManager` on it, so a test never touches global state::

    with spanhooks.testing.capture() as cap:
        run_agent(cap.manager)
    assert cap.tree() == [{"name": "invoke_agent bot", "children": [...]}]

The same object is the ``spanhooks_capture`` pytest fixture (the plugin is registered on
install).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

from spanhooks._manager import CallbackManager
from spanhooks._processors import CallbackSpanProcessor

__all__ = ["Capture", "SequentialIdGenerator", "capture", "span_tree"]


class SequentialIdGenerator(IdGenerator):
    """Ids 1, 2, 3, ... so that captured ids are the same on every run. Thread-safe."""

    def __init__(self) -> None:
        self._spans = itertools.count(1)
        self._traces = itertools.count(1)
        self._lock = threading.Lock()

    def generate_span_id(self) -> int:
        with self._lock:
            return next(self._spans)

    def generate_trace_id(self) -> int:
        with self._lock:
            return next(self._traces)


class Capture:
    """A private tracing pipeline and manager whose spans can be read back in a test."""

    def __init__(self, **manager_options: Any) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(id_generator=SequentialIdGenerator(), shutdown_on_exit=False)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.manager = CallbackManager(tracer_provider=self.provider, **manager_options)
        self.provider.add_span_processor(CallbackSpanProcessor(self.manager.spans))
        self.tracer = self.provider.get_tracer("spanhooks.testing")

    def spans(self) -> list[ReadableSpan]:
        """Finished spans in the order they ended."""
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        """The one finished span called ``name``; fails loudly if there are none or several."""
        found = [s for s in self.spans() if s.name == name]
        if len(found) != 1:
            names = sorted({s.name for s in self.spans()})
            raise AssertionError(
                f"expected one span named {name!r}, found {len(found)}; have {names}"
            )
        return found[0]

    def tree(self, *, attributes: bool = False) -> list[dict[str, Any]]:
        """The finished spans as nested plain data; see :func:`span_tree`."""
        return span_tree(self.spans(), attributes=attributes)

    def clear(self) -> None:
        """Forget the spans captured so far."""
        self.exporter.clear()

    def close(self) -> None:
        self.manager.close_open_spans("test ended")
        self.provider.shutdown()


def span_tree(spans: list[ReadableSpan], *, attributes: bool = False) -> list[dict[str, Any]]:
    """Nest spans by parent id, children in start order, as dicts a test can compare.

    Each node has ``name``, ``status`` (``"UNSET"``, ``"OK"`` or ``"ERROR"``), ``events``
    (names) and ``children``; with ``attributes=True`` also the span's attributes.
    """
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None else None
        children.setdefault(parent if parent in by_id else None, []).append(span)

    def node(span: ReadableSpan) -> dict[str, Any]:
        assert span.context is not None
        kids = sorted(children.get(span.context.span_id, []), key=_start)
        out: dict[str, Any] = {
            "name": span.name,
            "status": span.status.status_code.name,
            "events": [event.name for event in span.events],
            "children": [node(kid) for kid in kids],
        }
        if attributes:
            out["attributes"] = dict(span.attributes or {})
        return out

    return [node(root) for root in sorted(children.get(None, []), key=_start)]


def _start(span: ReadableSpan) -> tuple[int, int]:
    return (span.start_time or 0, span.context.span_id if span.context else 0)


@contextmanager
def capture(**manager_options: Any) -> Iterator[Capture]:
    """A :class:`Capture` for the duration of a ``with`` block (closed afterwards)."""
    cap = Capture(**manager_options)
    try:
        yield cap
    finally:
        cap.close()


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixture
    pass
else:

    @pytest.fixture
    def spanhooks_capture() -> Iterator[Capture]:
        """A fresh :class:`Capture` per test: private provider, manager and in-memory spans."""
        with capture() as cap:
            yield cap
