"""Error handler: context handlers by priority, errors on spans, statistics."""

from __future__ import annotations

from typing import Any

import pytest

from spanhooks.ops import ErrorContext, ErrorHandler, ErrorInfo, ErrorSeverity
from spanhooks.testing import Capture


@pytest.fixture
def errors(spanhooks_capture: Capture) -> ErrorHandler:
    return ErrorHandler(tracer_provider=spanhooks_capture.provider)


def test_context_and_all_context_handlers_run_in_one_priority_order(errors: ErrorHandler) -> None:
    order: list[str] = []
    errors.register_error_handler(
        lambda info: order.append("ws-100"), ErrorContext.WEBSOCKET, priority=100
    )
    errors.register_error_handler(lambda info: order.append("all-75"), None, priority=75)
    errors.register_error_handler(
        lambda info: order.append("ws-50"), ErrorContext.WEBSOCKET, priority=50
    )
    errors.register_error_handler(
        lambda info: order.append("audio"), ErrorContext.AUDIO, priority=200
    )
    errors.handle_error(
        ConnectionError("WebSocket disconnected"), ErrorContext.WEBSOCKET, ErrorSeverity.HIGH, "ws"
    )
    assert order == ["ws-100", "all-75", "ws-50"]


def test_an_error_is_recorded_on_the_current_span(
    errors: ErrorHandler, spanhooks_capture: Capture
) -> None:
    with spanhooks_capture.tracer.start_as_current_span("websocket_communication"):
        info = errors.handle_error(
            ConnectionError("WebSocket disconnected"),
            context=ErrorContext.WEBSOCKET,
            severity=ErrorSeverity.HIGH,
            operation="websocket_communication",
            metadata={"attempt": 2},
        )
    span = spanhooks_capture.span("websocket_communication")
    assert span.status.status_code.name == "ERROR"
    [event] = span.events
    assert event.name == "exception"
    assert (
        dict(event.attributes or {}).items()
        >= {
            "exception.type": "ConnectionError",
            "error.context": "websocket",
            "error.severity": "high",
            "error.operation": "websocket_communication",
        }.items()
    )
    assert info.call_id == format(span.context.span_id, "016x")
    assert info.metadata == {"attempt": 2}


def test_an_error_outside_any_span_gets_a_span_of_its_own(
    errors: ErrorHandler, spanhooks_capture: Capture
) -> None:
    errors.handle_error(TimeoutError("slow"), "api", "critical")
    span = spanhooks_capture.span("handle_error api")
    assert span.status.status_code.name == "ERROR"


def test_statistics_by_context_severity_and_type(errors: ErrorHandler) -> None:
    errors.handle_error(ValueError("a"), ErrorContext.API, ErrorSeverity.LOW)
    errors.handle_error(ValueError("b"), ErrorContext.API, ErrorSeverity.HIGH)
    errors.handle_error(KeyError("c"), ErrorContext.SESSION, ErrorSeverity.HIGH)
    stats = errors.get_error_stats()
    assert stats["total_errors"] == 3
    assert stats["by_context"] == {"api": 2, "session": 1}
    assert stats["by_severity"] == {"low": 1, "high": 2}
    assert stats["by_type"] == {"ValueError": 2, "KeyError": 1}
    assert [r["message"] for r in stats["recent"]] == ["a", "b", "'c'"]
    errors.reset_stats()
    assert errors.get_error_stats()["total_errors"] == 0


def test_a_raising_handler_is_isolated(errors: ErrorHandler) -> None:
    after: list[ErrorInfo] = []

    def broken(info: ErrorInfo) -> None:
        raise RuntimeError("handler bug")

    errors.register_error_handler(broken, priority=10)
    errors.register_error_handler(after.append)
    errors.handle_error(OSError("disk"), ErrorContext.DATABASE)
    assert len(after) == 1


async def test_async_handlers_are_awaited(errors: ErrorHandler) -> None:
    seen: list[str] = []

    async def notify(info: ErrorInfo) -> None:
        seen.append(info.context.value)

    errors.register_error_handler(notify, "payments")
    await errors.handle_error_async(RuntimeError("declined"), ErrorContext.define("payments"))
    assert seen == ["payments"]


def test_user_contexts_are_validated_and_bounded() -> None:
    assert ErrorContext.define("billing") is ErrorContext.define("billing")
    with pytest.raises(ValueError, match="lowercase identifier"):
        ErrorContext.define("Not Valid")
    with pytest.raises(TypeError, match="exception"):
        ErrorHandler().handle_error("not an exception")  # type: ignore[arg-type]


def test_module_level_functions_match_the_seed(spanhooks_capture: Capture) -> None:
    from spanhooks.ops import get_error_handler, handle_error, register_error_handler

    seen: list[Any] = []
    handler_id = register_error_handler(
        lambda info: seen.append(info.error), ErrorContext.WEBSOCKET, priority=100
    )
    try:
        handle_error(ConnectionError("x"), ErrorContext.WEBSOCKET, ErrorSeverity.HIGH, "op")
        assert len(seen) == 1
        assert get_error_handler().get_error_stats()["by_context"]["websocket"] >= 1
    finally:
        get_error_handler().unregister_error_handler(handler_id)
