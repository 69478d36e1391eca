"""Registering callbacks in each seed's style, and the manager's switches and listings."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

import spanhooks
from spanhooks import (
    AbstractCallback,
    CallbackEvent,
    CallbackManager,
    CallbackType,
    MeetingEventType,
)
from spanhooks.callbacks.dispatch import Dispatcher
from spanhooks.callbacks.registry import EventRegistry, OpenEvents
from spanhooks.events.spec import Phase
from spanhooks.vocab.logillm import ModuleEndEvent, ModuleStartEvent
from spanhooks.vocab.meeting import MeetingEvent, ParticipantJoinedEventData
from spanhooks.vocab.thea import THEA, undeclared_event


def test_thea_style_callback_receives_the_triggered_keyword_arguments() -> None:
    manager = CallbackManager()
    seen: list[dict[str, Any]] = []

    def log_message(user_id: str, message: str, timestamp: float) -> None:
        seen.append({"user_id": user_id, "message": message, "timestamp": timestamp})

    manager.register("on_message", log_message)
    manager.trigger("on_message", user_id="alvaro_123", message="Agendar", timestamp=1.0)
    assert seen == [{"user_id": "alvaro_123", "message": "Agendar", "timestamp": 1.0}]


def test_one_thea_callback_can_serve_several_events() -> None:
    manager = CallbackManager()
    seen: list[tuple[str, dict[str, Any]]] = []

    def log_all(user_id: str, **kwargs: Any) -> None:
        seen.append((user_id, kwargs))

    manager.register(["on_message", "on_state_change"], log_all)
    manager.trigger("on_message", user_id="u", message="m", timestamp=0)
    manager.trigger("on_state_change", user_id="u", old_state="a", new_state="b")
    assert seen == [
        ("u", {"message": "m", "timestamp": 0}),
        ("u", {"old_state": "a", "new_state": "b"}),
    ]


def test_llmproc_function_callback_receives_the_enum_member_and_arguments() -> None:
    manager = CallbackManager()
    seen: list[tuple[Any, tuple[Any, ...]]] = []

    def my_callback(event: CallbackEvent, *args: Any, **kwargs: Any) -> None:
        seen.append((event, args))

    manager.register(my_callback)
    manager.emit(CallbackEvent.TOOL_START, "calc", {"x": 1})
    manager.emit(CallbackEvent.TOOL_END, "calc", 2)
    assert seen == [
        (CallbackEvent.TOOL_START, ("calc", {"x": 1})),
        (CallbackEvent.TOOL_END, ("calc", 2)),
    ]
    assert seen[0][0] == "tool_start"  # the members are strings too, as LLMProc code compares them


def test_llmproc_class_callback_methods_are_named_after_event_values() -> None:
    manager = CallbackManager()
    calls: list[str] = []

    class MyCallbacks:
        def tool_start(self, tool_name: str, tool_args: Any) -> None:
            calls.append(f"start {tool_name}")

        def response(self, text: str) -> None:
            calls.append(f"response {text}")

        def unrelated_helper(self) -> None:
            calls.append("never")

    manager.add_callback(MyCallbacks()).add_callback(lambda event, *a, **k: calls.append("chained"))
    manager.emit(CallbackEvent.TOOL_START, "search", {})
    manager.emit(CallbackEvent.RESPONSE, "hello")
    manager.emit(CallbackEvent.TURN_START, object())
    assert calls == ["start search", "chained", "response hello", "chained", "chained"]


def test_a_class_callback_may_mix_sync_and_async_methods() -> None:
    manager = CallbackManager()
    calls: list[str] = []

    class Mixed:
        def tool_start(self, tool_name: str, tool_args: Any) -> None:
            calls.append("sync")

        async def response(self, text: str) -> None:
            calls.append("async")

    manager.register(Mixed())
    manager.emit(CallbackEvent.TOOL_START, "t", {})
    manager.emit(CallbackEvent.RESPONSE, "r")
    assert calls == ["sync", "async"]


def test_abstract_callback_subclass_is_called_only_for_what_it_overrides() -> None:
    manager = CallbackManager()
    seen: list[ModuleEndEvent] = []

    class SimpleLogger(AbstractCallback):
        async def on_module_end(self, event: ModuleEndEvent) -> None:
            seen.append(event)

    callback_id = manager.register(SimpleLogger())
    manager.emit(ModuleStartEvent(module="m"))
    manager.emit(ModuleEndEvent(module="m", duration=0.5))
    assert len(seen) == 1 and seen[0].duration == 0.5
    [listing] = manager.get_registered_callbacks()
    assert listing["id"] == callback_id and listing["style"] == "class"


def test_logillm_callback_types_filter_limits_a_callback_to_those_events() -> None:
    manager = CallbackManager()
    seen: list[Any] = []
    manager.register(
        lambda event, *args: seen.append(event),
        callback_types=[CallbackType.MODULE_START, CallbackType.MODULE_END],
    )
    manager.emit(ModuleStartEvent(module="m"))
    manager.emit(CallbackEvent.RESPONSE, "ignored")
    manager.emit(ModuleEndEvent(module="m"))
    assert seen == [CallbackType.MODULE_START, CallbackType.MODULE_END]


def test_meeting_handlers_receive_the_typed_event() -> None:
    manager = CallbackManager()
    seen: list[MeetingEvent] = []
    manager.register(MeetingEventType.PARTICIPANT_JOINED, seen.append)
    event = MeetingEvent(MeetingEventType.PARTICIPANT_JOINED, 7, ParticipantJoinedEventData("bob"))
    manager.emit(MeetingEventType.PARTICIPANT_JOINED, event)
    assert seen == [event]
    assert seen[0].data.participant_id == "bob"


def test_decorators_register_for_named_events_or_for_everything() -> None:
    manager = CallbackManager()
    seen: list[Any] = []

    @manager.on(CallbackEvent.TOOL_START, priority=spanhooks.Priority.HIGH)
    def started(tool_name: str, tool_args: Any) -> None:
        seen.append(("named", tool_name))

    @manager.on()
    def everything(event: Any, *args: Any, **kwargs: Any) -> None:
        seen.append(("all", event))

    manager.emit(CallbackEvent.TOOL_START, "t", {})
    assert seen == [("named", "t"), ("all", CallbackEvent.TOOL_START)]
    assert started.__name__ == "started"  # the decorator returns the function itself


def test_decorating_with_an_unknown_event_fails_at_decoration_time() -> None:
    manager = CallbackManager()
    with pytest.raises(ValueError, match="unknown event"):
        manager.on("tool_sart")


def test_unregister_by_id_and_clear() -> None:
    manager = CallbackManager()
    seen: list[str] = []
    first = manager.register("on_message", lambda **kw: seen.append("first"))
    manager.register("on_message", lambda **kw: seen.append("second"))
    assert manager.unregister(first) is True
    assert manager.unregister(first) is False
    manager.trigger("on_message", user_id="u", message="m", timestamp=0)
    manager.clear()
    manager.trigger("on_message", user_id="u", message="m", timestamp=0)
    assert seen == ["second"]


def test_register_rejects_what_cannot_be_called() -> None:
    manager = CallbackManager()
    with pytest.raises(TypeError, match="not callable"):
        manager.register("on_message", "print")
    with pytest.raises(TypeError, match="no methods named after"):
        manager.register(object())
    with pytest.raises(TypeError, match="needs a callback"):
        manager.register("on_message")


def test_disable_makes_emit_do_nothing_until_enabled() -> None:
    manager = CallbackManager()
    seen: list[str] = []
    manager.register(CallbackEvent.RESPONSE, seen.append)
    manager.disable()
    assert not manager.is_enabled()
    manager.emit(CallbackEvent.RESPONSE, "dropped")
    manager.enable()
    manager.emit(CallbackEvent.RESPONSE, "kept")
    assert seen == ["kept"]


def test_the_environment_switch_disables_every_manager() -> None:
    code = (
        "import spanhooks;"
        "m = spanhooks.CallbackManager();"
        "print(spanhooks.is_enabled(), m.is_enabled(), spanhooks.CallbackManager(enabled=True).is_enabled())"
    )
    env = {**os.environ, "SPANHOOKS_ENABLED": "0"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "False", "True"]


def test_history_keeps_the_most_recent_events_only() -> None:
    manager = CallbackManager(history_size=3)
    for text in ("a", "b", "c", "d"):
        manager.emit(CallbackEvent.RESPONSE, text)
    manager.trigger("on_message", user_id="u", message="m", timestamp=0)
    assert [(r.name, r.phase) for r in manager.history()] == [
        ("response", "point"),
        ("response", "point"),
        ("on_message", "point"),
    ]
    assert CallbackManager().history() == []


def test_a_forked_manager_inherits_callbacks_but_not_later_ones() -> None:
    parent = CallbackManager()
    seen: list[str] = []
    parent.register(CallbackEvent.RESPONSE, lambda text: seen.append(f"inherited {text}"))
    child = parent.fork()
    parent.register(CallbackEvent.RESPONSE, lambda text: seen.append(f"parent-only {text}"))
    child.emit(CallbackEvent.RESPONSE, "child")
    assert seen == ["inherited child"]


def test_unknown_events_at_emit_are_ignored_with_a_warning(
    spanhooks_logs: pytest.LogCaptureFixture,
) -> None:
    manager = CallbackManager()
    assert manager.emit("no_such_event", 1, 2) is None
    assert manager.emit(["unhashable"]) is None
    assert "unknown event 'no_such_event'" in spanhooks_logs.text


def test_the_listing_reports_what_is_registered_in_priority_order() -> None:
    manager = CallbackManager()

    def low(**kwargs: Any) -> None: ...

    def high(**kwargs: Any) -> None: ...

    manager.register("on_message", low, priority=-5)
    manager.register("on_error", high, priority=5, timeout=2.0)
    listing = manager.get_registered_callbacks()
    assert [item["name"].rsplit(".", 1)[-1] for item in listing] == ["high", "low"]
    assert listing[0]["keys"] == ["on_error"] and listing[0]["timeout"] == 2.0


# -- open event names (Thea's manager accepts any; spanhooks' own stays strict) ----------------


def _open_registry(limit: int = 8) -> EventRegistry:
    registry = EventRegistry(
        Dispatcher(), open_events=OpenEvents("thea", undeclared_event, limit=limit)
    )
    registry.declare(THEA)
    return registry


def test_spanhooks_own_manager_refuses_an_undeclared_name_at_register() -> None:
    with pytest.raises(ValueError, match=r"unknown event 'on_payment'.*declare it first"):
        CallbackManager().register("on_payment", print)


def test_an_open_registry_declares_an_undeclared_name_on_first_use() -> None:
    registry = _open_registry()
    spec = registry.spec("payment.completed")
    assert (spec.name, spec.event_set, spec.identity, spec.phase) == (
        "payment.completed",
        "thea",
        "payment.completed",
        Phase.POINT,
    )
    assert registry.spec("payment.completed") is spec
    assert registry.opened() == ["payment.completed"]
    assert registry.events()[-1] is spec
    assert registry.resolve_payload("on_refund") is registry.spec("on_refund")


def test_an_open_registry_refuses_names_past_its_limit_and_non_strings() -> None:
    registry = _open_registry(limit=1)
    registry.spec("first")
    with pytest.raises(ValueError, match="but not this one: 1 are declared already"):
        registry.spec("second")
    with pytest.raises(ValueError, match="unknown event 42"):
        registry.spec(42)  # type: ignore[arg-type]
    assert registry.opened() == ["first"]


def test_an_open_registry_cuts_a_long_name_and_keys_it_by_the_whole_name() -> None:
    registry = _open_registry()
    long = "e" * 300
    spec = registry.spec(long)
    assert len(spec.name) == 256 and spec.identity == long
    with pytest.raises(ValueError, match="but not this one"):
        registry.spec("e" * 301)  # cut to the same name as the first: refused, not merged


def test_a_factory_that_fails_refuses_the_name(spanhooks_logs: pytest.LogCaptureFixture) -> None:
    def broken(name: str) -> Any:
        raise RuntimeError("no")

    registry = EventRegistry(Dispatcher(), open_events=OpenEvents("mine", broken))
    with pytest.raises(ValueError, match="unknown event 'x'"):
        registry.spec("x")
    assert registry.resolve_payload("x") is None
    assert "failed: RuntimeError('no')" in spanhooks_logs.text


def test_open_events_are_declared_through_declare_and_survive_a_copy() -> None:
    registry = EventRegistry(Dispatcher())
    registry.declare(OpenEvents("thea", undeclared_event))
    registry.spec("a")
    twin = registry.copy()
    assert twin.spec("a") is registry.spec("a")
    twin.spec("b")
    assert registry.opened() == ["a"] and twin.opened() == ["a", "b"]


def test_a_bad_open_events_declaration_fails_when_made() -> None:
    with pytest.raises(TypeError, match="must be callable"):
        OpenEvents("thea", "factory")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit must be an int >= 0"):
        OpenEvents("thea", undeclared_event, limit=-1)
