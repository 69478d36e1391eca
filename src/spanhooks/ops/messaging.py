"""Agent messaging handlers (seed 003): global message handlers and per-instance meeting handlers.

Global handlers process message content: one per :class:`HandlerContext`, registered by
decorator, the last registration winning; :func:`clear_handlers` removes them all. Invoking one
is a span (``handle_message {context}``). Meeting event handlers are per instance
(:class:`MeetingEventHandler`): many per event type, run concurrently, with typed event data; a
meeting is a span, each speaking turn a child span, joins, leaves and timeouts span events.

Threading contract: registration is safe from any thread; handlers run in the task or thread
that invokes them, through the dispatch core (isolated, timed, sync or async).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Span, TracerProvider
from prometheus_client.core import Metric

from spanhooks.callbacks.dispatch import Dispatcher, DispatchMode
from spanhooks.callbacks.manager import CallbackManager
from spanhooks.callbacks.routes import Route
from spanhooks.metrics.families import MESSAGES_HANDLED, counter, register_source
from spanhooks.vocab.meeting import MEETING, MeetingEvent, MeetingEventType

__all__ = [
    "HandlerContext",
    "MeetingEventHandler",
    "MessageContext",
    "clear_handlers",
    "get_handler",
    "invoke_handler",
    "invoke_handler_sync",
    "register_conversation_handler",
    "register_message_notification_handler",
    "register_one_way_handler",
]

F = TypeVar("F", bound=Callable[..., Any])


class HandlerContext(str, Enum):
    """Which kind of message a global handler processes."""

    ONE_WAY = "one_way"
    CONVERSATION = "conversation"
    MESSAGE_NOTIFICATION = "message_notification"


@dataclass
class MessageContext:
    """Routing information handed to a message handler with the message."""

    sender_id: str
    receiver_id: str
    organization_id: str
    handler_context: HandlerContext
    message_id: int | None = None
    session_id: str | None = None
    meeting_id: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


_handlers: Dispatcher[HandlerContext] = Dispatcher(name="messaging")
_current: dict[HandlerContext, int] = {}
_lock = threading.Lock()
_tracer = trace.get_tracer("spanhooks.messaging")
_outcomes: dict[tuple[str, str], int] = {}


def _count(context: HandlerContext, routes: tuple[Route, ...], errors_before: int) -> None:
    if not routes:
        outcome = "unhandled"
    else:
        outcome = "failed" if routes[0].registration.errors > errors_before else "handled"
    with _lock:
        key = (context.value, outcome)
        _outcomes[key] = _outcomes.get(key, 0) + 1


class _Messages:
    def metric_families(self) -> Iterable[Metric]:
        with _lock:
            outcomes = [(key, float(n)) for key, n in _outcomes.items()]
        yield counter(MESSAGES_HANDLED, outcomes)


_SOURCE = _Messages()
register_source(_SOURCE)


def _register(context: HandlerContext) -> Callable[[F], F]:
    def decorate(handler: F) -> F:
        if not callable(handler):
            raise TypeError(f"a {context.value} handler must be callable, got {handler!r}")
        with _lock:
            previous = _current.pop(context, None)
            if previous is not None:
                _handlers.remove(previous)  # one handler per context: the last one wins
            _current[context] = _handlers.add(handler, {context: handler}).id
        return handler

    return decorate


register_one_way_handler = _register(HandlerContext.ONE_WAY)
"""Decorator: the handler for fire-and-forget messages, ``handler(message, context)``."""
register_conversation_handler = _register(HandlerContext.CONVERSATION)
"""Decorator: the handler for request-response messages; its return value is the response."""
register_message_notification_handler = _register(HandlerContext.MESSAGE_NOTIFICATION)
"""Decorator: the handler told of a message that arrived while its receiver was not waiting."""


def clear_handlers() -> None:
    """Remove every global message handler."""
    with _lock:
        _current.clear()
        _handlers.clear()


def get_handler(context: HandlerContext) -> Callable[..., Any] | None:
    """The handler registered for ``context``, if any."""
    routes = _handlers.routes(context)
    return routes[0].fn if routes else None


def _span_attributes(message_context: MessageContext) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.operation.type": "process",
        "spanhooks.messaging.context": message_context.handler_context.value,
    }
    if message_context.message_id is not None:
        attributes["messaging.message.id"] = str(message_context.message_id)
    if message_context.session_id is not None:
        attributes["session.id"] = message_context.session_id
    return attributes


async def invoke_handler(
    context: HandlerContext, message: Any, message_context: MessageContext
) -> Any:
    """Run the handler for ``context``; its result, or None without a handler or on error."""
    routes = _handlers.routes(context)
    errors = routes[0].registration.errors if routes else 0
    with _tracer.start_as_current_span(
        f"handle_message {context.value}", attributes=_span_attributes(message_context)
    ) as span:
        results = await _handlers.dispatch_async(
            routes, context, (message, message_context), {}, span, DispatchMode.COLLECT
        )
    _count(context, routes, errors)
    return results[0] if results else None


def invoke_handler_sync(
    context: HandlerContext, message: Any, message_context: MessageContext
) -> Any:
    """:func:`invoke_handler` from synchronous code (an async handler runs to completion)."""
    routes = _handlers.routes(context)
    errors = routes[0].registration.errors if routes else 0
    with _tracer.start_as_current_span(
        f"handle_message {context.value}", attributes=_span_attributes(message_context)
    ) as span:
        results = _handlers.dispatch(
            routes, context, (message, message_context), {}, span, DispatchMode.COLLECT
        )
    _count(context, routes, errors)
    return results[0] if results else None


class MeetingEventHandler:
    """Per-instance meeting event handlers: many per event type, run concurrently.

    Built on its own :class:`~spanhooks.CallbackManager` holding the meeting vocabulary, so a
    meeting becomes a span and its events span events, with the same isolation and ordering as
    every other callback.
    """

    def __init__(
        self, *, tracer_provider: TracerProvider | None = None, timeout: float | None = None
    ) -> None:
        self.manager = CallbackManager(
            [MEETING], tracer_provider=tracer_provider, default_timeout=timeout
        )
        self.manager.enable_metrics()  # meeting events count in spanhooks_events{event_set=meeting}
        self._tracer = trace.get_tracer("spanhooks.messaging", tracer_provider=tracer_provider)
        self._ids: dict[tuple[MeetingEventType, Callable[..., Any]], int] = {}
        self._meetings: dict[Any, Span] = {}
        self._turns: dict[Any, Span] = {}
        self._lock = threading.Lock()

    def register_handler(
        self, event_type: MeetingEventType, handler: Callable[[MeetingEvent], Any]
    ) -> None:
        """Call ``handler(event)`` (sync or async) for every event of ``event_type``."""
        event_type = MeetingEventType(event_type)
        callback_id = self.manager.register(event_type, handler)
        with self._lock:
            self._ids[(event_type, handler)] = callback_id

    def unregister_handler(
        self, event_type: MeetingEventType, handler: Callable[[MeetingEvent], Any]
    ) -> bool:
        """Remove a handler registered for ``event_type``; True if it was."""
        with self._lock:
            callback_id = self._ids.pop((MeetingEventType(event_type), handler), None)
        return callback_id is not None and self.manager.unregister(callback_id)

    async def emit(self, event: MeetingEvent) -> None:
        """Deliver ``event`` to its handlers (concurrently) and record it on the meeting's span."""
        self._before(event)
        await self.manager.emit_async(event.event_type, event, concurrent=True)
        self._after(event)

    def emit_sync(self, event: MeetingEvent) -> None:
        """:meth:`emit` from synchronous code (handlers then run one after another)."""
        self._before(event)
        self.manager.emit(event.event_type, event)
        self._after(event)

    def _before(self, event: MeetingEvent) -> None:
        if event.event_type is MeetingEventType.MEETING_ENDED:
            self._end_turn(event.meeting_id)

    def _after(self, event: MeetingEvent) -> None:
        kind = event.event_type
        if kind is MeetingEventType.MEETING_STARTED:
            span = trace.get_current_span()  # the meeting span the start just opened
            if span.is_recording():
                with self._lock:
                    self._meetings[event.meeting_id] = span
        elif kind is MeetingEventType.TURN_CHANGED:
            self._end_turn(event.meeting_id)
            speaker = getattr(event.data, "current_speaker_id", None)
            with self._lock:
                meeting = self._meetings.get(event.meeting_id)
            if meeting is not None and speaker is not None:
                turn = self._tracer.start_span(
                    "speaking_turn",
                    context=trace.set_span_in_context(meeting),
                    attributes={
                        "meeting.id": str(event.meeting_id),
                        "meeting.speaker_id": str(speaker),
                    },
                )
                with self._lock:
                    self._turns[event.meeting_id] = turn
        elif kind is MeetingEventType.MEETING_ENDED:
            with self._lock:
                self._meetings.pop(event.meeting_id, None)

    def _end_turn(self, meeting_id: Any) -> None:
        with self._lock:
            turn = self._turns.pop(meeting_id, None)
        if turn is not None:
            turn.end()
