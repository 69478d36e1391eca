"""Call context: who called whom, carried by OpenTelemetry context to tasks, threads and processes.

asyncio tasks copy the context by themselves. Threads do not, so :func:`propagate` and
:class:`ContextThreadPoolExecutor` carry it. Child processes get it as a W3C ``traceparent``
(and the baggage, sessions' ids among it, as ``BAGGAGE``) through the environment
(:func:`child_env`), which :func:`attach_parent_from_env` (called by ``setup()``) picks up on the
other side; a forked child simply keeps its parent's context.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "CallContext",
    "ContextThreadPoolExecutor",
    "attach_parent_from_env",
    "child_env",
    "current_call",
    "propagate",
]

P = ParamSpec("P")
R = TypeVar("R")

TRACEPARENT_ENV = "TRACEPARENT"
TRACESTATE_ENV = "TRACESTATE"
BAGGAGE_ENV = "BAGGAGE"
_propagator = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
_CARRIED = {"traceparent": TRACEPARENT_ENV, "tracestate": TRACESTATE_ENV, "baggage": BAGGAGE_ENV}


@dataclass(frozen=True)
class CallContext:
    """The ids of a call and of the call that made it, as LogiLLM's ``event.context`` carries them.

    ``call_id`` and ``parent_call_id`` are the OpenTelemetry span ids in hex, so they can be
    looked up in any trace backend; ``trace_id`` ties calls across processes.
    """

    call_id: str
    parent_call_id: str | None
    trace_id: str


def current_call() -> CallContext | None:
    """The call context of the current span, or None when no span is active."""
    span = trace.get_current_span()
    sc = span.get_span_context()
    if not sc.is_valid:
        return None
    parent = getattr(span, "parent", None)
    parent_id = format(parent.span_id, "016x") if parent is not None and parent.is_valid else None
    return CallContext(format(sc.span_id, "016x"), parent_id, format(sc.trace_id, "032x"))


def propagate(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``fn`` so it runs in a copy of the caller's context, wherever it is called.

    Use it to hand work to a thread (``threading.Thread(target=propagate(work))``): spans and
    events emitted there nest under the span that was current when ``propagate`` was called.
    """
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run_in_context(*args: P.args, **kwargs: P.kwargs) -> R:
        return ctx.copy().run(fn, *args, **kwargs)

    return run_in_context


class ContextThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks run in the context of the code that submitted them.

    The standard executor runs tasks in the worker thread's own (empty) context, which
    breaks parent/child links; this one copies the submitter's context per task.
    """

    def submit(
        self, fn: Callable[..., R], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[R]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment for a child process that continues the current trace.

    Pass it as ``subprocess.run(..., env=spanhooks.child_env())``; a child that calls
    ``spanhooks.setup()`` starts its spans under the caller's current span.
    """
    result = dict(os.environ if env is None else env)
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    for header, variable in _CARRIED.items():
        result.pop(variable, None)
        if header in carrier:
            result[variable] = carrier[header]
    return result


def attach_parent_from_env(env: Mapping[str, str] | None = None) -> bool:
    """Make a ``TRACEPARENT`` from the environment the current parent, with the ``BAGGAGE``
    that came with it; True if there was a parent.

    Called once at start-up by ``setup()``; the attach is never detached, as it stands for
    the whole process.
    """
    source = os.environ if env is None else env
    carrier = {
        header: source[variable] for header, variable in _CARRIED.items() if source.get(variable)
    }
    if not carrier:
        return False
    ctx = _propagator.extract(carrier)
    otel_context.attach(ctx)
    return trace.get_current_span(ctx).get_span_context().is_valid
