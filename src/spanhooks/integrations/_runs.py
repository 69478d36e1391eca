"""Framework runs as spanhooks calls: the one pairing table every framework integration uses.

Frameworks name each run (LangChain's ``run_id``, LlamaIndex's span ids, the Agents SDK's span
ids, DSPy's ``call_id``) and its parent. :class:`Runs` opens a spanhooks start event for a run
under its parent's span, wherever the framework reports it from, and ends it by spanhooks' call
id, so the span tree follows the framework's nesting even when its callbacks run in another
thread or task than the run's parent. A run whose parent is unknown (the top of a framework
call, or a parent the integration does not trace) opens under the current span.

Threading: any thread or task may start and end runs; the table is guarded by a lock, bounded
to :data:`MAX_OPEN_RUNS` (the oldest is forgotten; its span is still closed by spanhooks' own
open-span limits).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace

from spanhooks.callbacks.manager import CallbackManager
from spanhooks.tracing.spans import record_failure
from spanhooks.util.log import rate_limited

__all__ = ["MAX_OPEN_RUNS", "Runs", "annotate", "is_current", "isolated", "model_output"]

_F = TypeVar("_F", bound=Callable[..., None])

MAX_OPEN_RUNS = 10_000
"""Framework runs remembered while open."""


@dataclass(frozen=True)
class _Run:
    """An open run: spanhooks' call id, the context that makes its span current, and, when its
    start had to make the framework's parent current, the context that replaced."""

    call_id: str | None
    ctx: otel_context.Context
    parent_ctx: otel_context.Context | None
    caller: otel_context.Context | None


class Runs:
    """Open framework runs by the framework's id, each a spanhooks call on ``manager``."""

    def __init__(self, manager: CallbackManager) -> None:
        self.manager = manager
        self._open: OrderedDict[Hashable, _Run] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._open)

    def start(self, run_id: Hashable, parent_id: Hashable | None, event: Any, *args: Any) -> None:
        """Emit start ``event(*args)`` for ``run_id``, its span under ``parent_id``'s."""
        parent = self._open.get(parent_id) if parent_id is not None else None
        caller = parent_ctx = None
        if parent is not None and not is_current(parent.ctx):
            # The framework names a parent that is not the current span (another task or
            # thread): open under it, as spanhooks' own starts do, with no token to detach.
            caller = otel_context.get_current()
            parent_ctx = parent.ctx
            otel_context.attach(parent.ctx)
        call_id = self.manager.emit(event, *args)
        ctx = otel_context.get_current()  # emit made the new span current
        with self._lock:
            self._open[run_id] = _Run(call_id, ctx, parent_ctx, caller)
            while len(self._open) > MAX_OPEN_RUNS:
                self._open.popitem(last=False)

    def end(
        self, run_id: Hashable, event: Any, *args: Any, error: BaseException | None = None
    ) -> bool:
        """Emit end ``event(*args)`` closing ``run_id``'s call; False if no such run is open
        (the event's callbacks still run). ``error`` is recorded on the span first, for end
        events whose own arguments carry no exception."""
        with self._lock:
            run = self._open.pop(run_id, None)
        if run is None or run.call_id is None:
            self.manager.emit(event, *args)
            return False
        if error is not None:
            span = trace.get_current_span(run.ctx)
            if span.is_recording():
                record_failure(span, error, self.manager.attribute_policy)
        self.manager.emit(event, *args, call_id=run.call_id)
        if run.caller is not None and is_current(run.parent_ctx):
            otel_context.attach(run.caller)
        return True

    def span(self, run_id: Hashable) -> trace.Span:
        """The span of open run ``run_id`` (the invalid span if it is not open)."""
        run = self._open.get(run_id)
        return trace.get_current_span(run.ctx) if run is not None else trace.INVALID_SPAN

    def context(self, run_id: Hashable) -> otel_context.Context | None:
        """The context that makes open run ``run_id``'s span current."""
        run = self._open.get(run_id)
        return run.ctx if run is not None else None

    def annotate(self, run_id: Hashable, attributes: Mapping[str, Any]) -> None:
        """Set ``attributes`` on ``run_id``'s span (see :func:`annotate`)."""
        annotate(self.manager, self.span(run_id), attributes)


def annotate(manager: CallbackManager, span: trace.Span, attributes: Mapping[str, Any]) -> None:
    """Set ``attributes`` on ``span`` as spanhooks records any attribute: coerced, bounded and
    redacted by ``manager``'s policy; None values left out."""
    if not attributes or not span.is_recording():
        return
    clean = manager.attribute_policy.recorded(attributes)
    if clean:
        span.set_attributes(clean)


def isolated(framework: str) -> Callable[[_F], _F]:
    """For the methods a framework calls: a failure inside is logged (rate-limited, as
    ``spanhooks: <framework> callback <method> failed``) and never reaches the framework, which
    would log it per call or, configured to, raise it into the user's run."""

    def decorate(method: _F) -> _F:
        @functools.wraps(method)
        def guarded(*args: Any, **kwargs: Any) -> None:
            try:
                method(*args, **kwargs)
            except Exception as exc:
                rate_limited.log(
                    logging.WARNING,
                    f"{framework}:{method.__name__}",
                    "spanhooks: %s callback %s failed: %r",
                    framework,
                    method.__name__,
                    exc,
                )

        return guarded  # type: ignore[return-value]

    return decorate


def is_current(ctx: otel_context.Context | None) -> bool:
    """Whether ``ctx``'s span is the current span."""
    if ctx is None:
        return False
    return trace.get_current_span() is trace.get_current_span(ctx)


def model_output(
    *,
    model: str | None = None,
    response_id: str | None = None,
    text: str | None = None,
    finish_reasons: list[str] | tuple[str, ...] = (),
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A model call's result in one shape for every framework, as ``llm_end``'s ``output``:
    what the span's response attributes are read from and what callbacks receive. Missing
    fields are left out."""
    output: dict[str, Any] = {}
    if response_id is not None:
        output["id"] = response_id
    if model is not None:
        output["model"] = model
    if text is not None or tool_calls:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if tool_calls:
            message["tool_calls"] = tool_calls
        output["message"] = message
    if finish_reasons:
        output["choices"] = [{"finish_reason": reason} for reason in finish_reasons]
    usage = {
        key: value
        for key, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens))
        if isinstance(value, int) and not isinstance(value, bool)
    }
    if usage:
        output["usage"] = usage
    return output
