"""Helpers shared by the framework integration tests: span trees as (name, parent) pairs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from spanhooks.testing import Capture


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
