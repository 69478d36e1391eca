"""Agent messaging handlers (seed 003): global message handlers and per-instance meeting handlers.

Global handlers process message content: one per :class:`HandlerContext`, registered by
decorator, the last registration winning; :func:`clear_handlers` removes them all. Invoking one
is a CONSUMER span, ``process {context}`` (``process one_way``, ``process conversation``,
``process message_notification``), whether or not a span is open, with the OpenTelemetry
messaging conventions' names where they apply and the ids always: ``messaging.system``
(``agent_messaging``), ``messaging.operation.type``/``.name`` (``process``),
``messaging.destination.name`` (the receiver), ``messaging.message.id``,
``messaging.message.conversation_id`` (and ``session.id``), ``meeting.id``, and
``spanhooks.messaging.sender_id``, ``.receiver_id``, ``.organization_id``, ``.context``,
``.handler`` (the handler's name) and ``.outcome`` (``handled``, ``failed``, ``unhandled``). A
handler that raises leaves the span's status ERROR with ``error.type`` (delivery goes on). The
message, the metadata and the response are content: recorded (``spanhooks.messaging.message``,
``.metadata``, ``.response``) only when the active attribute policy captures content, and
everything recorded, ids included, passes its redaction.

Spans are made through the tracer provider of the process-wide manager
(:func:`~spanhooks.get_callback_manager`): the global one unless a test capture (or
``use_tracer_provider``) gave it another.

Meeting event handlers are per instance (:class:`MeetingEventHandler`): many per event type,
run concurrently, with typed event data; a meeting is a span from ``MEETING_STARTED`` to
``MEETING_ENDED``, each speaking turn a child span, joins, leaves, turn changes and timeouts
span events on it. A meeting never becomes the caller's current span: it is a long-lived
resource, not a call, so meetings run one after the other (or side by side) are siblings under
whatever span was current when each started, and work done between meeting events does not
nest under a meeting. Meeting events are delivered inside their meeting's context, so the
spans handlers make are its children.

Threading contract: registration is safe from any thread; handlers run in the task or thread
that invokes them, through the dispatch core (isolated, timed, sync or async).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from prometheus_client.core import Metric

from spanhooks.callbacks.dispatch import Dispatcher, DispatchMode, DispatchObserver
from spanhooks.callbacks.manager import CallbackManager, get_callback_manager
from spanhooks.callbacks.routes import Registration
from spanhooks.metrics.families import MESSAGES_HANDLED, counter, register_source
from spanhooks.tracing.attributes import active_policy
from spanhooks.tracing.failures import error_description, exception_type_name
from spanhooks.util.log import logger as _log
from spanhooks.vocab.meeting import MEETING, MeetingEvent, MeetingEventType

__all__ = [
    "MESSAGING_SYSTEM",
    "HandlerContext",
    "MeetingEventHandler",
    "MessageContext",
    "clear_handlers",
    "get_handler",
    "invoke_handler",
    "invoke_handler_sync",
    "messaging_tracer",
    "register_conversation_handler",
    "register_message_notification_handler",
    "register_one_way_handler",
]

F = TypeVar("F", bound=Callable[..., Any])

MESSAGING_SYSTEM = "agent_messaging"
"""The ``messaging.system`` of every messaging span."""


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


class _Invocation:
    """What happened to one invocation's handler, told by the dispatcher's observer."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: BaseException | None = None


_invocation: contextvars.ContextVar[_Invocation | None] = contextvars.ContextVar(
    "spanhooks_messaging_invocation", default=None
)


class _Outcomes(DispatchObserver):
    """Tells the invocation being dispatched (in this context) that its handler failed."""

    def callback_failed(
        self, registration: Registration, key: object, error: BaseException
    ) -> None:
        invocation = _invocation.get()
        if invocation is not None:
            invocation.error = error

    def callback_timed_out(self, registration: Registration, key: object) -> None:
        invocation = _invocation.get()
        if invocation is not None:
            invocation.error = TimeoutError(f"handler {registration.name} timed out")


_handlers: Dispatcher[HandlerContext] = Dispatcher(name="messaging", observer=_Outcomes())
_current: dict[HandlerContext, int] = {}
_lock = threading.Lock()
_outcomes: dict[tuple[str, str], int] = {}
_tracers: tuple[TracerProvider | None, Tracer] | None = None


def messaging_tracer() -> Tracer:
    """The tracer messaging spans are made with: the process-wide manager's provider's."""
    global _tracers
    provider = get_callback_manager().tracer_provider
    cached = _tracers
    if cached is not None and cached[0] is provider:
        return cached[1]
    tracer = trace.get_tracer("spanhooks.messaging", tracer_provider=provider)
    _tracers = (provider, tracer)
    return tracer


def _count(context: HandlerContext, outcome: str) -> None:
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
        _log.debug(
            "registered the %s handler %s%s",
            context.value,
            _handlers.routes(context)[0].registration.name,
            " (replacing the previous one)" if previous is not None else "",
        )
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
    _log.debug("cleared every message handler")


def get_handler(context: HandlerContext) -> Callable[..., Any] | None:
    """The handler registered for ``context``, if any."""
    routes = _handlers.routes(context)
    return routes[0].fn if routes else None


def _id_attributes(context: HandlerContext, message_context: MessageContext) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": message_context.receiver_id,
        "spanhooks.messaging.context": context.value,
        "spanhooks.messaging.sender_id": message_context.sender_id,
        "spanhooks.messaging.receiver_id": message_context.receiver_id,
        "spanhooks.messaging.organization_id": message_context.organization_id,
    }
    if message_context.message_id is not None:
        attributes["messaging.message.id"] = str(message_context.message_id)
    if message_context.session_id is not None:
        attributes["messaging.message.conversation_id"] = message_context.session_id
        attributes["session.id"] = message_context.session_id
    if message_context.meeting_id is not None:
        attributes["meeting.id"] = str(message_context.meeting_id)
    return attributes


@contextmanager
def _processing(
    context: HandlerContext, message: Any, message_context: MessageContext, handler: str | None
) -> Iterator[tuple[Span, _Invocation]]:
    """The span of one invocation, its ids and (on capture) content recorded; on leaving, its
    outcome: counted, and recorded on the span."""
    context = HandlerContext(context)
    policy = active_policy()
    attributes = _id_attributes(context, message_context)
    if handler is not None:
        attributes["spanhooks.messaging.handler"] = handler
    if policy.capture_content:
        attributes["spanhooks.messaging.message"] = message
        if message_context.metadata:
            attributes["spanhooks.messaging.metadata"] = message_context.metadata
    _log.debug(
        "invoking the %s handler %s for a message from %s to %s",
        context.value,
        handler or "(none registered)",
        message_context.sender_id,
        message_context.receiver_id,
    )
    invocation = _Invocation()
    token = _invocation.set(invocation)
    try:
        with messaging_tracer().start_as_current_span(
            f"process {context.value}",
            kind=SpanKind.CONSUMER,
            attributes=policy.recorded(attributes),
            record_exception=False,
        ) as span:
            yield span, invocation
            error = invocation.error
            outcome = "unhandled" if handler is None else "failed" if error else "handled"
            span.set_attribute("spanhooks.messaging.outcome", outcome)
            if error is not None:
                span.set_attribute("error.type", exception_type_name(error))
                span.set_status(Status(StatusCode.ERROR, error_description(error, policy)))
    finally:
        _invocation.reset(token)
    _count(context, outcome)


def _result(span: Span, results: list[Any] | None) -> Any:
    result = results[0] if results else None
    policy = active_policy()
    if result is not None and policy.capture_content and span.is_recording():
        span.set_attributes(policy.recorded({"spanhooks.messaging.response": result}))
    return result


async def invoke_handler(
    context: HandlerContext, message: Any, message_context: MessageContext
) -> Any:
    """Run the handler for ``context``; its result, or None without a handler or on error."""
    routes = _handlers.routes(context)
    handler = routes[0].registration.name if routes else None
    with _processing(context, message, message_context, handler) as (span, _):
        results = await _handlers.dispatch_async(
            routes, context, (message, message_context), {}, span, DispatchMode.COLLECT
        )
        return _result(span, results)


def invoke_handler_sync(
    context: HandlerContext, message: Any, message_context: MessageContext
) -> Any:
    """:func:`invoke_handler` from synchronous code (an async handler runs to completion)."""
    routes = _handlers.routes(context)
    handler = routes[0].registration.name if routes else None
    with _processing(context, message, message_context, handler) as (span, _):
        results = _handlers.dispatch(
            routes, context, (message, message_context), {}, span, DispatchMode.COLLECT
        )
        return _result(span, results)


class MeetingEventHandler:
    """Per-instance meeting event handlers: many per event type, run concurrently.

    Built on its own :class:`~spanhooks.CallbackManager` holding the meeting vocabulary, so a
    meeting becomes a span and its events span events, with the same isolation and ordering as
    every other callback. Without ``tracer_provider``, spans go where the process-wide
    manager's went when this handler was made. A meeting's span is never left current in the
    caller's context (see the module docstring): each event is delivered inside its meeting's
    context, then the caller's context is restored.
    """

    def __init__(
        self, *, tracer_provider: TracerProvider | None = None, timeout: float | None = None
    ) -> None:
        if tracer_provider is None:
            tracer_provider = get_callback_manager().tracer_provider
        self.manager = CallbackManager(
            [MEETING], tracer_provider=tracer_provider, default_timeout=timeout
        )
        self.manager.enable_metrics()  # meeting events count in spanhooks_events{event_set=meeting}
        self._tracer = trace.get_tracer("spanhooks.messaging", tracer_provider=tracer_provider)
        self._ids: dict[tuple[MeetingEventType, Callable[..., Any]], list[int]] = {}
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
            self._ids.setdefault((event_type, handler), []).append(callback_id)

    def unregister_handler(
        self, event_type: MeetingEventType, handler: Callable[[MeetingEvent], Any]
    ) -> bool:
        """Remove a handler registered for ``event_type`` (its latest registration); True if
        it was registered."""
        key = (MeetingEventType(event_type), handler)
        with self._lock:
            ids = self._ids.get(key)
            callback_id = ids.pop() if ids else None
            if ids is not None and not ids:
                del self._ids[key]
        return callback_id is not None and self.manager.unregister(callback_id)

    def meeting_span(self, meeting_id: Any) -> Span | None:
        """The span of the open meeting ``meeting_id``, or None when none is open here."""
        with self._lock:
            return self._meetings.get(meeting_id)

    def turn_span(self, meeting_id: Any) -> Span | None:
        """The span of the current speaking turn of meeting ``meeting_id``, if any."""
        with self._lock:
            return self._turns.get(meeting_id)

    async def emit(self, event: MeetingEvent) -> None:
        """Deliver ``event`` to its handlers (concurrently) and record it on the meeting's span."""
        token = otel_context.attach(self._delivery_context(event))
        try:
            self._before(event)
            await self.manager.emit_async(event.event_type, event, concurrent=True)
            self._after(event)
        finally:
            otel_context.detach(token)

    def emit_sync(self, event: MeetingEvent) -> None:
        """:meth:`emit` from synchronous code (handlers then run one after another)."""
        token = otel_context.attach(self._delivery_context(event))
        try:
            self._before(event)
            self.manager.emit(event.event_type, event)
            self._after(event)
        finally:
            otel_context.detach(token)

    def _delivery_context(self, event: MeetingEvent) -> otel_context.Context:
        """The context ``event`` is delivered in: the caller's for a start (the meeting's span
        opens under it), else the caller's with the meeting's span current."""
        current = otel_context.get_current()
        if event.event_type is MeetingEventType.MEETING_STARTED:
            return current
        meeting = self.meeting_span(event.meeting_id)
        return current if meeting is None else trace.set_span_in_context(meeting, current)

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
                policy = active_policy()
                turn = self._tracer.start_span(
                    "speaking_turn",
                    context=trace.set_span_in_context(meeting),
                    attributes=policy.recorded(
                        {"meeting.id": str(event.meeting_id), "meeting.speaker_id": speaker}
                    ),
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
