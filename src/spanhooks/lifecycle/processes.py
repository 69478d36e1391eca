"""Continuing a trace in child processes started by ``multiprocessing`` (fork, forkserver, spawn).

A spawned child starts with empty context and no spanhooks set-up, and every multiprocessing
child ends through ``os._exit``, which skips ``atexit``: spans it produced would be lost.
:class:`ProcessTarget` is a picklable wrapper that carries the caller's trace context
(W3C ``traceparent``) and ``setup()`` settings into the child, runs the function under that
context, and flushes before the child exits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from spanhooks.lifecycle import setup as _setup

__all__ = ["ProcessTarget"]

R = TypeVar("R")
_propagator = TraceContextTextMapPropagator()


class ProcessTarget(Generic[R]):
    """Wrap ``fn`` for ``multiprocessing``: its spans join the caller's trace and are exported.

    ``Process(target=ProcessTarget(work))`` or ``pool.map(ProcessTarget(work), items)``; ``fn``
    must itself be picklable (a module-level function) for the spawn and forkserver methods.
    The context is captured when the wrapper is created.
    """

    def __init__(self, fn: Callable[..., R], *, flush_timeout_millis: int = 5000) -> None:
        if not callable(fn):
            raise TypeError(f"ProcessTarget needs a callable, got {fn!r}")
        self.fn = fn
        self.flush_timeout_millis = flush_timeout_millis
        self.carrier: dict[str, str] = {}
        _propagator.inject(self.carrier)
        telemetry = _setup.active()
        self.settings: dict[str, Any] | None = dict(telemetry.settings) if telemetry else None

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        if self.settings is not None and _setup.active() is None:
            _setup.setup(**self.settings)
        token = otel_context.attach(_propagator.extract(self.carrier))
        try:
            return self.fn(*args, **kwargs)
        finally:
            otel_context.detach(token)
            _setup.force_flush(self.flush_timeout_millis)

    def __repr__(self) -> str:
        return f"ProcessTarget({self.fn!r})"
