"""Sessions, users and conversations: ids stamped on every span started inside one.

``with spanhooks.session(session_id="s-1", user_id="u-7", conversation_id="c-3"):`` puts the
ids in OpenTelemetry baggage for the block (``@spanhooks.session(...)`` does the same around a
function, sync or async). Baggage is context, so the ids follow the code wherever spanhooks'
context goes: nested calls, asyncio tasks, threads started through :func:`propagate`, child
processes through :func:`~spanhooks.child_env` (the ``BAGGAGE`` variable) and outgoing HTTP
requests of instrumented clients (the global propagator's ``baggage`` header).

:class:`SessionSpanProcessor`, which ``setup()`` puts first in its pipeline, copies them onto
every span as it starts, spanhooks' and other instrumentations' alike, as the conventions name
them: ``session.id``, ``user.id``, ``gen_ai.conversation.id``. A span started outside any
session costs one context read.

On ``/metrics`` (no id is ever a label): ``spanhooks_sessions_started_total`` counts the
session blocks and decorated calls entered, ``spanhooks_sessions_open`` those entered and not
yet left, and ``spanhooks_session_spans_total`` the spans stamped with ids, so that a dashboard
shows how much of the work runs inside sessions, and a drop in stamped spans shows context that
stopped reaching them. Each costs one lock-free counter increment: per block entered and left,
and per stamped span (a span outside any session costs nothing more).

Threading: the ids live in the context, so each thread and task sees its own; nothing here
takes a lock (the counters are ``itertools.count``, atomic under the GIL).
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from prometheus_client.core import Metric

from spanhooks.metrics.families import (
    SESSION_SPANS,
    SESSIONS_OPEN,
    SESSIONS_STARTED,
    count_value,
    counter,
    gauge,
    register_source,
)

__all__ = [
    "CONVERSATION_ID",
    "SESSION_ATTRIBUTES",
    "SESSION_ID",
    "USER_ID",
    "SessionSpanProcessor",
    "current_session",
    "session",
]

SESSION_ID = "session.id"
USER_ID = "user.id"
CONVERSATION_ID = "gen_ai.conversation.id"
SESSION_ATTRIBUTES = (SESSION_ID, USER_ID, CONVERSATION_ID)
"""The baggage keys a session sets, which are also the span attributes they become."""

MAX_ID_LENGTH = 256
"""Ids longer than this are refused: they travel in every request's ``baggage`` header."""

_F = TypeVar("_F", bound=Callable[..., Any])

_entered = itertools.count()
_left = itertools.count()
_stamped = itertools.count()


class session:
    """A session, user and conversation for the code inside: a context manager and a
    decorator (sync or async functions). Ids not given are inherited from an enclosing
    session; a nested session overrides only what it names.

    Raises TypeError or ValueError at once for an id that is not a non-empty string of at
    most :data:`MAX_ID_LENGTH` characters, without touching the current context.
    """

    def __init__(
        self,
        session_id: str | None = None,
        *,
        user_id: str | None = None,
        conversation_id: str | None = None,
    ) -> None:
        given = {SESSION_ID: session_id, USER_ID: user_id, CONVERSATION_ID: conversation_id}
        self.ids: dict[str, str] = {}
        for key, value in given.items():
            if value is None:
                continue
            if not isinstance(value, str):
                raise TypeError(f"{key} must be a str, got {type(value).__name__}")
            if not value or len(value) > MAX_ID_LENGTH or not value.isprintable():
                raise ValueError(
                    f"{key} must be 1 to {MAX_ID_LENGTH} printable characters, got {value!r}"
                )
            self.ids[key] = value
        if not self.ids:
            raise ValueError("session() needs at least one of session_id, user_id, conversation_id")
        self._tokens: list[object] = []

    def _context(self) -> Context:
        ctx = otel_context.get_current()
        for key, value in self.ids.items():
            ctx = baggage.set_baggage(key, value, ctx)
        return ctx

    def __enter__(self) -> session:
        self._tokens.append(otel_context.attach(self._context()))
        next(_entered)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            otel_context.detach(self._tokens.pop())  # type: ignore[arg-type]
        finally:
            next(_left)

    def __call__(self, fn: _F) -> _F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with _scoped(self):
                    return await fn(*args, **kwargs)

            return cast(_F, run_async)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with _scoped(self):
                return fn(*args, **kwargs)

        return cast(_F, run)


@contextmanager
def _scoped(chosen: session) -> Iterator[None]:
    """The session around one call of a decorated function (its own token: calls may overlap
    in threads and tasks)."""
    token = otel_context.attach(chosen._context())
    next(_entered)
    try:
        yield
    finally:
        try:
            otel_context.detach(token)
        finally:
            next(_left)


def current_session(ctx: Context | None = None) -> dict[str, str]:
    """The session ids in effect (in ``ctx``, default the current context), by attribute name."""
    found = baggage.get_all(ctx)
    return {key: str(found[key]) for key in SESSION_ATTRIBUTES if key in found}


class SessionSpanProcessor(SpanProcessor):
    """Copies the session ids in the starting span's context onto it (see the module doc)."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        found: Mapping[str, object] = baggage.get_all(parent_context)
        if not found:
            return
        stamped = False
        for key in SESSION_ATTRIBUTES:
            value = found.get(key)
            if isinstance(value, str):
                span.set_attribute(key, value)
                stamped = True
        if stamped:
            next(_stamped)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class _SessionMetrics:
    """The session families, from this process's counters (registered once, at import)."""

    def metric_families(self) -> Iterable[Metric]:
        entered, left = count_value(_entered), count_value(_left)
        yield counter(SESSIONS_STARTED, [((), float(entered))])
        yield gauge(SESSIONS_OPEN, [((), float(max(entered - left, 0)))])
        yield counter(SESSION_SPANS, [((), float(count_value(_stamped)))])


_SOURCE = _SessionMetrics()
register_source(_SOURCE)
