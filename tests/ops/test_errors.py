"""Error handler: context handlers by priority, errors on spans, statistics, isolation."""

from __future__ import annotations

import json
import logging
import pickle
from typing import Any

import pytest
from opentelemetry import trace

from spanhooks.ops import (
    ErrorContext,
    ErrorHandler,
    ErrorInfo,
    ErrorSeverity,
    get_error_handler,
    handle_error,
    handle_error_async,
    register_error_handler,
)
from spanhooks.testing import Capture
from spanhooks.tracing.attributes import AttributePolicy, set_active_policy


@pytest.fixture
def errors(spanhooks_capture: Capture) -> ErrorHandler:
    return ErrorHandler(tracer_provider=spanhooks_capture.provider)


async def test_the_seed_usage_works_as_written() -> None:
    seen: list[str] = []

    def my_error_handler(error_info: ErrorInfo) -> None:
        seen.append(f"Error: {error_info.error} in {error_info.context.value}")

    handler_id = register_error_handler(my_error_handler, ErrorContext.WEBSOCKET, priority=100)
    try:
        info = await handle_error_async(
            error=ConnectionError("WebSocket disconnected"),
            context=ErrorContext.WEBSOCKET,
            severity=ErrorSeverity.HIGH,
            operation="websocket_communication",
        )
        handle_error(ConnectionError("again"), ErrorContext.WEBSOCKET)
    finally:
        assert get_error_handler().unregister_error_handler(handler_id)
    assert seen == ["Error: WebSocket disconnected in websocket", "Error: again in websocket"]
    assert info.operation == "websocket_communication"
    assert get_error_handler().get_error_stats()["by_context"]["websocket"] >= 2


def test_higher_priority_handlers_run_first(errors: ErrorHandler) -> None:
    order: list[int] = []
    errors.register_error_handler(lambda info: order.append(50), ErrorContext.API, priority=50)
    errors.register_error_handler(lambda info: order.append(100), ErrorContext.API, priority=100)
    errors.handle_error(TimeoutError("slow"), ErrorContext.API)
    assert order == [100, 50]


def test_context_and_all_context_handlers_interleave_by_priority(errors: ErrorHandler) -> None:
    order: list[str] = []
    errors.register_error_handler(lambda i: order.append("ws-100"), "websocket", priority=100)
    errors.register_error_handler(lambda i: order.append("all-75"), None, priority=75)
    errors.register_error_handler(lambda i: order.append("ws-50"), "websocket", priority=50)
    errors.register_error_handler(lambda i: order.append("all-10"), priority=10)
    errors.register_error_handler(lambda i: order.append("audio"), "audio", priority=200)
    errors.handle_error(ConnectionError("closed"), ErrorContext.WEBSOCKET, ErrorSeverity.HIGH)
    assert order == ["ws-100", "all-75", "ws-50", "all-10"]


def test_all_context_handlers_hear_contexts_defined_after_they_registered(
    errors: ErrorHandler,
) -> None:
    heard: list[str] = []
    errors.register_error_handler(lambda info: heard.append(info.context.value))
    payments = ErrorContext.define("payments")
    errors.register_error_handler(lambda info: heard.append("payments-only"), payments, 5)
    errors.handle_error(RuntimeError("declined"), "payments")
    errors.handle_error(RuntimeError("declined"), "Payments")  # names are case-insensitive
    assert heard == ["payments-only", "payments"] * 2


def test_statistics_count_by_context_severity_and_type(spanhooks_capture: Capture) -> None:
    errors = ErrorHandler(tracer_provider=spanhooks_capture.provider, recent=2)
    assert errors.get_error_stats()["last_error_time"] is None
    errors.handle_error(ValueError("a"), ErrorContext.API, ErrorSeverity.LOW)
    errors.handle_error(ValueError("b"), ErrorContext.API, "HIGH")
    errors.handle_error(KeyError("c"), ErrorContext.SESSION, ErrorSeverity.HIGH, "load")
    stats = errors.get_error_stats()
    assert stats["total_errors"] == 3
    assert stats["by_context"] == {"api": 2, "session": 1}
    assert stats["by_severity"] == {"low": 1, "high": 2}
    assert stats["by_type"] == {"ValueError": 2, "KeyError": 1}
    assert [r["message"] for r in stats["recent"]] == ["b", "'c'"]  # bounded to the last two
    assert stats["recent"][-1]["operation"] == "load"
    assert stats["last_error_time"] == stats["recent"][-1]["timestamp"]
    errors.reset_stats()
    assert errors.get_error_stats()["total_errors"] == 0
    assert errors.get_error_stats()["recent"] == []


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
    assert span.status.description == "ConnectionError: WebSocket disconnected"
    assert dict(span.attributes or {})["error.type"] == "ConnectionError"
    [event] = span.events
    assert event.name == "exception"
    assert (
        dict(event.attributes or {}).items()
        >= {
            "exception.type": "ConnectionError",
            "exception.message": "WebSocket disconnected",
            "error.context": "websocket",
            "error.severity": "high",
            "error.operation": "websocket_communication",
        }.items()
    )
    assert info.call_id == format(span.context.span_id, "016x")
    assert info.trace_id == format(span.context.trace_id, "032x")
    assert info.metadata == {"attempt": 2}


def test_an_error_outside_any_span_gets_a_span_of_its_own_that_handlers_run_in(
    errors: ErrorHandler, spanhooks_capture: Capture
) -> None:
    current: list[int] = []
    errors.register_error_handler(
        lambda info: current.append(trace.get_current_span().get_span_context().span_id)
    )
    info = errors.handle_error(TimeoutError("slow"), "api", "critical")
    span = spanhooks_capture.span("handle_error api")
    assert span.status.status_code.name == "ERROR"
    assert [e.name for e in span.events] == ["exception"]
    assert dict(span.attributes or {})["error.type"] == "TimeoutError"
    assert info.call_id == format(span.context.span_id, "016x")
    assert current == [span.context.span_id]
    assert not trace.get_current_span().is_recording()  # and it is no longer current


def test_error_type_names_the_module_of_non_builtin_exceptions(
    errors: ErrorHandler, spanhooks_capture: Capture
) -> None:
    class PaymentDeclined(Exception):
        pass

    errors.handle_error(PaymentDeclined("no funds"), ErrorContext.API)
    expected = f"{__name__}.{PaymentDeclined.__qualname__}"
    assert dict(spanhooks_capture.span("handle_error api").attributes or {}) == {
        "error.context": "api",
        "error.severity": "medium",
        "error.type": expected,
    }
    assert errors.get_error_stats()["by_type"] == {expected: 1}


def test_a_raising_handler_is_isolated_and_the_next_one_still_runs(
    errors: ErrorHandler, spanhooks_capture: Capture, spanhooks_logs: pytest.LogCaptureFixture
) -> None:
    after: list[ErrorInfo] = []

    def broken(info: ErrorInfo) -> None:
        raise RuntimeError("handler bug")

    errors.register_error_handler(broken, priority=10)
    errors.register_error_handler(after.append)
    with spanhooks_capture.tracer.start_as_current_span("query"):
        info = errors.handle_error(OSError("disk"), ErrorContext.DATABASE)
    assert after == [info]
    events = [e.name for e in spanhooks_capture.span("query").events]
    assert events == ["exception", "spanhooks.callback.error"]
    assert "handler bug" in spanhooks_logs.text


async def test_handle_error_async_awaits_async_handlers_in_priority_order(
    errors: ErrorHandler,
) -> None:
    order: list[str] = []

    async def notify(info: ErrorInfo) -> None:
        order.append("async-first")

    errors.register_error_handler(lambda info: order.append("sync-second"), "llm", priority=1)
    errors.register_error_handler(notify, "llm", priority=2)
    await errors.handle_error_async(RuntimeError("rate limited"), ErrorContext.LLM)
    assert order == ["async-first", "sync-second"]


def test_the_sync_handle_error_runs_an_async_handler_to_completion(errors: ErrorHandler) -> None:
    finished: list[str] = []

    async def notify(info: ErrorInfo) -> None:
        finished.append(info.severity.value)

    errors.register_error_handler(notify, ErrorContext.TOOL)
    errors.handle_error(RuntimeError("tool failed"), ErrorContext.TOOL, ErrorSeverity.LOW)
    assert finished == ["low"]


def test_an_unregistered_handler_no_longer_runs(errors: ErrorHandler) -> None:
    seen: list[Any] = []
    handler_id = errors.register_error_handler(seen.append)
    assert errors.unregister_error_handler(handler_id) is True
    assert errors.unregister_error_handler(handler_id) is False
    errors.handle_error(ValueError("x"))
    assert seen == []


def test_bad_registrations_and_calls_are_refused_at_once(errors: ErrorHandler) -> None:
    with pytest.raises(ValueError, match="lowercase identifier"):
        errors.register_error_handler(print, "not valid")
    with pytest.raises(TypeError, match="not callable"):
        errors.register_error_handler("print")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exception"):
        errors.handle_error("not an exception")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ErrorSeverity"):
        errors.handle_error(ValueError("x"), severity="catastrophic")
    assert errors.get_error_stats()["total_errors"] == 0


def test_contexts_are_shared_validated_values() -> None:
    billing = ErrorContext.define("billing")
    assert ErrorContext("billing") is billing
    assert ErrorContext.of("BILLING") is billing
    assert pickle.loads(pickle.dumps(billing)) is billing
    assert ErrorContext.WEBSOCKET.value == "websocket"
    assert repr(ErrorContext.UNKNOWN) == "ErrorContext('unknown')"
    for bad in ("Not Valid", "", "9lives", "*"):
        with pytest.raises(ValueError, match="lowercase identifier"):
            ErrorContext.define(bad)


def test_a_given_logger_logs_each_error_at_its_severity_level(
    spanhooks_capture: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="app.errors")
    errors = ErrorHandler(
        tracer_provider=spanhooks_capture.provider, logger=logging.getLogger("app.errors")
    )
    errors.handle_error(ValueError("minor"), ErrorContext.AUDIO, ErrorSeverity.LOW)
    errors.handle_error(ValueError("fatal"), ErrorContext.AUDIO, ErrorSeverity.CRITICAL, "decode")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "low error in audio"),
        (logging.CRITICAL, "critical error in audio (decode)"),
    ]
    assert caplog.records[1].exc_info is not None


def test_the_stack_trace_and_metadata_are_content_recorded_only_on_opt_in(
    spanhooks_capture: Capture,
) -> None:
    def fail() -> None:
        raise ConnectionError("closed")

    errors = ErrorHandler(tracer_provider=spanhooks_capture.provider)
    previous = set_active_policy(AttributePolicy())
    try:
        try:
            fail()
        except ConnectionError as error:
            info = errors.handle_error(error, "websocket", metadata={"frame": "hello"})
        set_active_policy(AttributePolicy(capture_content=True))
        try:
            fail()
        except ConnectionError as error:
            errors.handle_error(error, "websocket", metadata={"frame": "hi", "token": "t0k"})
    finally:
        set_active_policy(previous)
    hidden, shown = (
        dict(s.events[0].attributes or {})
        for s in spanhooks_capture.spans("handle_error websocket")
    )
    assert "in fail" in info.traceback  # handlers still get the whole traceback
    assert "exception.stacktrace" not in hidden
    assert "error.metadata" not in hidden
    assert hidden["exception.message"] == "closed"  # messages and ids are not content
    assert "in fail" in shown["exception.stacktrace"]
    assert json.loads(shown["error.metadata"]) == {"frame": "hi", "token": "[REDACTED]"}
