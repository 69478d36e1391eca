"""Helpers shared by the framework integration tests: a capture with the test module's
integration (its ``traced``) instrumented, and span trees as (name, parent) pairs."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from spanhooks.testing import Capture, capture


@pytest.fixture
def cap(request: pytest.FixtureRequest) -> Iterator[Capture]:
    """A :class:`Capture` whose manager the test module's integration emits on while the
    test runs (``traced.instrument(cap.manager)``, undone afterwards)."""
    traced = request.module.traced
    with capture() as cap:
        traced.instrument(cap.manager)
        try:
            yield cap
        finally:
            traced.uninstrument()


def _edges(cap: Capture) -> list[tuple[str, str | None]]:
    """Each finished span as (its name, its parent's name or None), in start order."""
    spans = sorted(cap.spans(), key=lambda s: s.context.span_id)  # ids are given at start
    by_id = {s.context.span_id: s for s in spans}
    edges: list[tuple[str, str | None]] = []
    for span in spans:
        parent = by_id.get(span.parent.span_id) if span.parent is not None else None
        edges.append((span.name, parent.name if parent is not None else None))
    return edges


@pytest.fixture
def edges() -> Callable[[Capture], list[tuple[str, str | None]]]:
    return _edges
