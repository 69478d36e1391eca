"""Test helpers: capture spans and events in memory and compare span trees as plain data.

``capture()`` gives a private TracerProvider (in-memory exporter, sequential ids) and a fresh
:class:`~spanhooks.CallbackManager` on it, so a test never touches global state::

    with spanhooks.testing.capture() as cap:
        run_agent(cap.manager)
    assert cap.tree() == [{"name": "invoke_agent bot", "children": [...]}]

The ``spanhooks_capture`` pytest fixture (registered on install) is the same object, and it
also captures the process-wide manager for the duration of the test, so code that uses the
decorators or ``spanhooks.emit`` is captured without changes::

    def test_one_turn_calls_search_twice(spanhooks_capture):
        run_agent("question")
        [turn] = spanhooks_capture.spans("invoke_agent bot")
        assert len(spanhooks_capture.children(turn, "execute_tool search")) == 2
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

from spanhooks.callbacks.manager import CallbackManager, get_callback_manager
from spanhooks.callbacks.processors import CallbackSpanProcessor
from spanhooks.tracing.sessions import SessionSpanProcessor

__all__ = ["Capture", "CapturedEvent", "SequentialIdGenerator", "capture", "span_tree"]


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


class CapturedEvent(NamedTuple):
    """One emitted event as callbacks saw it: its name, event set and arguments."""

    name: str
    event_set: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class Capture:
    """A private tracing pipeline and manager whose spans and events can be read back in a test.

    ``managers`` are further managers (such as the process-wide one) whose spans and events
    are captured too until :meth:`close`, which gives them back their own tracer provider.
    """

    def __init__(
        self, *, managers: tuple[CallbackManager, ...] = (), **manager_options: Any
    ) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(id_generator=SequentialIdGenerator(), shutdown_on_exit=False)
        self.provider.add_span_processor(SessionSpanProcessor())  # as setup() does
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.manager = CallbackManager(tracer_provider=self.provider, **manager_options)
        self.tracer = self.provider.get_tracer("spanhooks.testing")
        self._events: list[CapturedEvent] = []
        self._restore: list[tuple[CallbackManager, Any, int]] = []
        for manager in (self.manager, *managers):
            self.provider.add_span_processor(CallbackSpanProcessor(manager.spans))
            recorder = manager.register(self._recorder(manager), name="spanhooks.testing")
            self._restore.append((manager, manager.tracer_provider, recorder))
            if manager is not self.manager:
                manager.use_tracer_provider(self.provider)

    def _recorder(self, manager: CallbackManager) -> Any:
        """A generic callback that notes every event ``manager`` emits. Its ``event`` is
        positional-only: an event may declare an argument of that name (the meeting set's
        do), and an emit may pass it by keyword."""

        def record(event: Any, /, *args: Any, **kwargs: Any) -> None:
            spec = manager.spec(event)
            self._events.append(CapturedEvent(spec.name, spec.event_set, args, kwargs))

        return record

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans (those called ``name``, if given) in the order they ended."""
        spans = list(self.exporter.get_finished_spans())
        return spans if name is None else [span for span in spans if span.name == name]

    def children(self, parent: ReadableSpan, name: str | None = None) -> list[ReadableSpan]:
        """The finished spans started directly under ``parent`` (called ``name``, if given)."""
        assert parent.context is not None
        return [
            span
            for span in self.spans(name)
            if span.parent is not None and span.parent.span_id == parent.context.span_id
        ]

    def events(self, name: str | None = None) -> list[CapturedEvent]:
        """Events emitted so far, in order (those called ``name``, if given)."""
        return [e for e in self._events if name is None or e.name == name]

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
        """Forget the spans and events captured so far."""
        self.exporter.clear()
        self._events.clear()

    def close(self) -> None:
        """Close spans left open, stop capturing and give other managers their provider back."""
        for manager, provider, recorder in self._restore:
            manager.unregister(recorder)
            if manager is not self.manager:
                manager.use_tracer_provider(provider)
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
        """A fresh :class:`Capture` per test, capturing the process-wide manager too (the one
        the decorators and ``spanhooks.emit`` use)."""
        with capture(managers=(get_callback_manager(),)) as cap:
            yield cap
