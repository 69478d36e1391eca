"""``spanhooks demo``: a simulated agent that speaks every seed's callback style.

No network and no API key: the "model" and the tools are local functions. One run makes an
agent turn (Thea-style messages and delegation, LLMProc-style API and tool calls, one failing
tool, LogiLLM-style module and provider events, two tools run as concurrent asyncio tasks, a
model call that times out and a streamed reply made with the ``@llm`` decorator from a named,
versioned prompt), all inside a ``spanhooks.session(...)``, a meeting with turns, joins, a
timeout and leaves, and the operations subsystems: the failing tool goes through the error
handler, the conversation is a SessionState, its creation is routed, two health checks and a
polling task run, and a cleanup is registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from spanhooks.callbacks.manager import AbstractCallback, CallbackManager
from spanhooks.instrument.decorators import llm
from spanhooks.ops import (
    CleanupPriority,
    ErrorContext,
    ErrorInfo,
    ErrorSeverity,
    EventRouter,
    HandlerContext,
    MessageContext,
    ResourceType,
    SessionState,
    SessionStatus,
    get_error_handler,
    get_health_monitor,
    get_resource_manager,
    handle_error_async,
    invoke_handler,
    register_cleanup,
    register_polling_task,
)
from spanhooks.tracing.evaluations import evaluate
from spanhooks.tracing.sessions import session
from spanhooks.vocab.llmproc import CallbackEvent
from spanhooks.vocab.logillm import (
    ModuleEndEvent,
    ModuleStartEvent,
    ProviderRequestEvent,
    ProviderResponseEvent,
)
from spanhooks.vocab.meeting import (
    MeetingEndedEventData,
    MeetingEvent,
    MeetingEventType,
    MeetingStartedEventData,
    ParticipantJoinedEventData,
    ParticipantLeftEventData,
    TimeoutOccurredEventData,
    TurnChangedEventData,
)

__all__ = ["DemoStats", "install_demo_callbacks", "run_demo"]


@dataclass
class DemoStats:
    """What the demo's own callbacks observed, printed at the end."""

    tool_calls: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    module_calls: int = 0
    meeting_events: int = 0
    runs: int = 0
    errors_handled: int = 0
    session_changes: int = 0
    routed: int = 0
    messages_notified: int = 0


class _ToolTimer:
    """LLMProc-style class callback: methods named after event values."""

    def __init__(self, stats: DemoStats) -> None:
        self.stats = stats

    def tool_start(self, tool_name: str, tool_args: Any) -> None:
        self.stats.tool_calls[tool_name] = self.stats.tool_calls.get(tool_name, 0) + 1


class _ModuleMonitor(AbstractCallback):
    """LogiLLM-style callback with an async method."""

    def __init__(self, stats: DemoStats) -> None:
        self.stats = stats

    async def on_module_end(self, event: ModuleEndEvent) -> None:
        self.stats.module_calls += 1


def install_demo_callbacks(manager: CallbackManager) -> DemoStats:
    """Register one callback in each seed's style; returns the stats they fill."""
    stats = DemoStats()
    manager.register(_ToolTimer(stats))
    manager.register(_ModuleMonitor(stats))

    def count_message(user_id: str, message: str, timestamp: float) -> None:
        stats.messages += 1

    manager.register("on_message", count_message)

    def meeting_listener(event: object, *args: Any, **kwargs: Any) -> None:
        stats.meeting_events += 1

    manager.register(meeting_listener, events=list(MeetingEventType))
    return stats


class Summarize:
    """Stands for a LogiLLM module (spans are named after the module's class)."""


def _fake_completion(model: str, prompt_tokens: int, text: str) -> dict[str, Any]:
    return {
        "id": f"msg_{int(time.time() * 1000) % 100000:05d}",
        "model": model,
        "stop_reason": "end_turn",
        "content": text,
        "usage": {"input_tokens": prompt_tokens, "output_tokens": len(text.split())},
    }


async def _run_tool(manager: CallbackManager, name: str, args: dict[str, Any], delay: float) -> Any:
    manager.emit(CallbackEvent.TOOL_START, name, args)
    connection = SimpleNamespace(open=True)
    async with get_resource_manager().managed_resource_async(
        connection, lambda: setattr(connection, "open", False), ResourceType.NETWORK
    ):
        await asyncio.sleep(delay)
    if name == "calculator" and args.get("expression") == "1/0":
        try:
            1 / 0  # noqa: B018 - the demo's deliberately failing tool
        except ZeroDivisionError as exc:
            await handle_error_async(exc, ErrorContext.TOOL, ErrorSeverity.MEDIUM, operation=name)
        result = SimpleNamespace(is_error=True, error="ZeroDivisionError: division by zero")
    else:
        result = SimpleNamespace(is_error=False, content=f"{name} ok")
    manager.emit(CallbackEvent.TOOL_END, name, result)
    return result


def _model_calls(manager: CallbackManager) -> tuple[Any, Any]:
    """Two decorated model calls: a streamed reply, and an attempt that times out."""

    @llm(
        model="claude-demo",
        provider="anthropic",
        manager=manager,
        prompt_name="trip-reply",
        prompt_version=3,
    )
    async def stream_reply(prompt: str) -> AsyncIterator[dict[str, Any]]:
        for word in ("Your ", "trip ", "is ", "planned."):
            await asyncio.sleep(0.002)
            yield {"delta": word}
        yield {"model": "claude-demo", "usage": {"input_tokens": 64, "output_tokens": 4}}

    @llm(model="claude-demo", provider="anthropic", manager=manager)
    def first_try(prompt: str) -> dict[str, Any]:
        raise TimeoutError("the model did not answer within 10 ms")

    return stream_reply, first_try


async def _agent_turn(manager: CallbackManager, user_id: str, router: EventRouter) -> None:
    """One turn of the agent, inside the user's session (its ids on every span of the turn)."""
    with session(f"demo-{user_id}", user_id=user_id, conversation_id=f"conv-{user_id}"):
        await _turn(manager, user_id, router)


async def _turn(manager: CallbackManager, user_id: str, router: EventRouter) -> None:
    process = SimpleNamespace(
        display_name="travel-agent", model_name="claude-demo", provider="anthropic"
    )
    manager.emit(CallbackEvent.TURN_START, process)
    session = SessionState(f"conv-{user_id}", user_id, manager=manager)
    session.update_status(SessionStatus.ACTIVE, reason="first message")
    router.route("session.created", {"conversation_id": session.conversation_id})
    await invoke_handler(
        HandlerContext.MESSAGE_NOTIFICATION,
        {"text": "Book a trip to Lisbon"},
        MessageContext(user_id, "travel-agent", "demo-org", HandlerContext.MESSAGE_NOTIFICATION),
    )
    manager.trigger(
        "on_message", user_id=user_id, message="Book a trip to Lisbon", timestamp=time.time()
    )
    manager.trigger("on_intent_detected", user_id=user_id, intent="travel", score=0.93)
    manager.trigger("on_agent_delegated", user_id=user_id, agent="TravelAgent", intent="travel")
    manager.trigger("on_state_change", user_id=user_id, old_state="initial", new_state="planning")

    manager.emit(
        CallbackEvent.API_REQUEST, {"model": "claude-demo", "max_tokens": 256, "messages": ["..."]}
    )
    await asyncio.sleep(0.01)
    manager.emit(
        CallbackEvent.API_RESPONSE, _fake_completion("claude-demo", 42, "I will search flights")
    )

    await asyncio.gather(
        _run_tool(manager, "flight_search", {"to": "LIS"}, 0.02),
        _run_tool(manager, "hotel_search", {"city": "Lisbon"}, 0.015),
    )
    await _run_tool(manager, "calculator", {"expression": "1/0"}, 0.002)

    module = Summarize()
    manager.emit(ModuleStartEvent(module=module, inputs={"question": "summarise the plan"}))
    # a model the demo's price table leaves out: its calls are counted as unpriced
    provider = SimpleNamespace(name="anthropic", model="claude-demo-haiku")
    manager.emit(
        ProviderRequestEvent(provider=provider, messages=["..."], parameters={"temperature": 0.2})
    )
    await asyncio.sleep(0.005)
    manager.emit(
        ProviderResponseEvent(
            provider=provider,
            response={"text": "Flights and hotel found"},
            usage={"input_tokens": 30, "output_tokens": 6},
            duration=0.005,
        )
    )
    # a judge's verdict on the module's answer (gen_ai.evaluation.result on its span)
    evaluate(name="answer_relevance", score=0.9, label="relevant")
    manager.emit(
        ModuleEndEvent(module=module, outputs={"answer": "ok"}, duration=0.01, success=True)
    )

    reply, first_try = _model_calls(manager)
    with contextlib.suppress(TimeoutError):  # the model times out once; the reply is streamed
        first_try("Write the reply")
    words = [chunk["delta"] async for chunk in reply("Write the reply") if "delta" in chunk]
    manager.emit(CallbackEvent.RESPONSE, " ".join(words))
    manager.emit(
        CallbackEvent.TURN_END, process, _fake_completion("claude-demo", 80, "done"), [1, 2, 3]
    )


def _meeting(manager: CallbackManager, meeting_id: int) -> None:
    def emit(kind: MeetingEventType, data: object) -> None:
        manager.emit(kind, MeetingEvent(event_type=kind, meeting_id=meeting_id, data=data))

    emit(MeetingEventType.MEETING_STARTED, MeetingStartedEventData("alice", ("bob", "carol")))
    emit(MeetingEventType.PARTICIPANT_JOINED, ParticipantJoinedEventData("bob"))
    emit(MeetingEventType.PARTICIPANT_JOINED, ParticipantJoinedEventData("carol"))
    emit(MeetingEventType.TURN_CHANGED, TurnChangedEventData(None, "alice"))
    emit(MeetingEventType.TURN_CHANGED, TurnChangedEventData("alice", "bob"))
    emit(MeetingEventType.TIMEOUT_OCCURRED, TimeoutOccurredEventData("bob", 30.0))
    emit(MeetingEventType.PARTICIPANT_LEFT, ParticipantLeftEventData("carol"))
    emit(MeetingEventType.MEETING_ENDED, MeetingEndedEventData("alice", "agenda done"))


def _install_operations(manager: CallbackManager, stats: DemoStats) -> EventRouter:
    """Error, session, routing, health, polling and cleanup subsystems, as an app wires them."""

    def count_error(info: ErrorInfo) -> None:
        stats.errors_handled += 1

    def count_session(user_id: str, old_state: str, new_state: str) -> None:
        stats.session_changes += 1

    def count_route(data: dict[str, Any]) -> None:
        stats.routed += 1

    get_error_handler().register_error_handler(count_error, ErrorContext.TOOL, priority=100)
    manager.register("on_state_change", count_session)
    router = EventRouter("demo")
    router.register_middleware(lambda event_type, data: {**data, "source": "demo"})
    router.register_realtime_handler("session.created", count_route, priority=100)
    monitor = get_health_monitor()
    for component, check, critical in (
        ("llm_api", lambda: {"status": "healthy", "message": "responding"}, True),
        ("vector_store", lambda: {"status": "degraded", "message": "slow replica"}, False),
    ):
        with contextlib.suppress(ValueError):  # already registered by an earlier run here
            monitor.register_health_check(component, check, interval=5.0, critical=critical)
    with contextlib.suppress(ValueError):
        register_polling_task("queue_depth", lambda: {"depth": 0}, interval=2.0)
    register_cleanup(
        lambda: None, ResourceType.NETWORK, CleanupPriority.HIGH, "demo connection pool"
    )
    return router


def run_demo(manager: CallbackManager, duration: float = 0.0) -> DemoStats:
    """Run the simulated agent once, or repeatedly until ``duration`` seconds have passed."""
    stats = install_demo_callbacks(manager)
    with session("demo-operations"):  # the periodic checks' runs carry it (ops/polling.py)
        router = _install_operations(manager, stats)
    deadline = time.monotonic() + duration
    meeting_id = 1
    while True:
        asyncio.run(_agent_turn(manager, user_id="user-42", router=router))
        with session(f"meeting-{meeting_id}"):  # every span of the app's own work is in one
            _meeting(manager, meeting_id)
        stats.runs += 1
        meeting_id += 1
        if time.monotonic() >= deadline:
            return stats
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
