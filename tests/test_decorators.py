"""Decorators: a decorated function's calls are GenAI-shaped spans and fire the genai events,
while the function itself behaves exactly as before (values, exceptions, metadata)."""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import spanhooks
from spanhooks import GenAIEvent
from spanhooks.testing import Capture, capture


@pytest.fixture
def cap() -> Any:
    with capture(capture_content=True) as c:
        yield c


def test_a_decorated_function_returns_its_value_untouched(cap: Capture) -> None:
    sentinel = object()

    @spanhooks.instrument(manager=cap.manager)
    def make() -> object:
        return sentinel

    assert make() is sentinel
    assert cap.span("test_a_decorated_function_returns_its_value_untouched.<locals>.make")


def test_an_exception_is_recorded_and_reraised_unchanged(cap: Capture) -> None:
    error = KeyError("missing")

    @spanhooks.tool(manager=cap.manager)
    def lookup(key: str) -> str:
        raise error

    with pytest.raises(KeyError) as raised:
        lookup("k")
    assert raised.value is error
    span = cap.span("execute_tool lookup")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == "KeyError"
    assert [event.name for event in span.events] == ["exception"]


def test_metadata_and_signature_are_preserved() -> None:
    def search(query: str, limit: int = 3) -> list[str]:
        """Search the index."""
        return []

    async def chat(model: str, messages: list[Any]) -> str:
        return ""

    def stream(n: int) -> Any:
        yield n

    async def astream(n: int) -> Any:
        yield n

    wrapped = spanhooks.tool(search)
    assert wrapped.__name__ == "search" and wrapped.__doc__ == "Search the index."
    assert inspect.signature(wrapped) == inspect.signature(search)
    assert wrapped.__wrapped__ is search  # type: ignore[attr-defined]
    assert inspect.iscoroutinefunction(spanhooks.llm(chat))
    assert inspect.isgeneratorfunction(spanhooks.instrument(stream))
    assert inspect.isasyncgenfunction(spanhooks.instrument(astream))


async def test_an_async_function_is_a_span_and_its_value_passes_through(cap: Capture) -> None:
    @spanhooks.agent(name="planner", manager=cap.manager)
    async def plan(goal: str) -> str:
        await asyncio.sleep(0)
        return f"plan for {goal}"

    assert await plan("ship") == "plan for ship"
    span = cap.span("invoke_agent planner")
    assert span.attributes is not None
    assert span.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert span.attributes["gen_ai.agent.name"] == "planner"


def test_nested_decorated_calls_nest_their_spans(cap: Capture) -> None:
    @spanhooks.tool(manager=cap.manager)
    def search(query: str) -> str:
        return "hit"

    @spanhooks.agent(name="bot", manager=cap.manager)
    def turn(question: str) -> str:
        return search(question) + search(question)

    @spanhooks.workflow(name="support", manager=cap.manager)
    def run() -> str:
        return turn("why?")

    run()
    assert cap.tree() == [
        {
            "name": "workflow support",
            "status": "UNSET",
            "events": [],
            "children": [
                {
                    "name": "invoke_agent bot",
                    "status": "UNSET",
                    "events": [],
                    "children": [
                        {
                            "name": "execute_tool search",
                            "status": "UNSET",
                            "events": [],
                            "children": [],
                        },
                        {
                            "name": "execute_tool search",
                            "status": "UNSET",
                            "events": [],
                            "children": [],
                        },
                    ],
                }
            ],
        }
    ]


def test_the_callers_context_is_restored_after_a_call(cap: Capture) -> None:
    from opentelemetry import trace

    @spanhooks.instrument(manager=cap.manager)
    def work() -> None:
        assert trace.get_current_span().is_recording()

    with cap.tracer.start_as_current_span("outer") as outer:
        work()
        assert trace.get_current_span() is outer
    assert not trace.get_current_span().is_recording()


def test_tool_spans_carry_the_tool_name_arguments_and_result_when_content_is_captured(
    cap: Capture,
) -> None:
    @spanhooks.tool(manager=cap.manager)
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, b=3) == 5
    attributes = cap.span("execute_tool add").attributes or {}
    assert attributes["gen_ai.tool.name"] == "add"
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["gen_ai.tool.call.arguments"] == '{"a":2,"b":3}'
    assert attributes["gen_ai.tool.call.result"] == 5


def test_content_is_left_out_unless_capture_is_on() -> None:
    with capture() as cap:

        @spanhooks.tool(manager=cap.manager)
        def secret(password_hint: str) -> str:
            return "the answer"

        secret("hunter2")
        attributes = cap.span("execute_tool secret").attributes or {}
    assert "gen_ai.tool.call.arguments" not in attributes
    assert "gen_ai.tool.call.result" not in attributes
    assert attributes["gen_ai.tool.name"] == "secret"


def test_llm_calls_are_client_spans_with_model_and_token_usage(cap: Capture) -> None:
    @spanhooks.llm(provider="openai", manager=cap.manager)
    def complete(model: str, prompt: str, temperature: float = 0.0) -> dict[str, Any]:
        return {
            "id": "resp-1",
            "model": "gpt-4o-2024",
            "choices": [{"finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7},
        }

    complete("gpt-4o", "hi", temperature=0.5)
    span = cap.span("chat gpt-4o")
    attributes = span.attributes or {}
    assert span.kind is SpanKind.CLIENT
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "gpt-4o"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.temperature"] == 0.5
    assert attributes["gen_ai.response.model"] == "gpt-4o-2024"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.usage.input_tokens"] == 11
    assert attributes["gen_ai.usage.output_tokens"] == 7


def test_a_fixed_model_and_operation_name_the_llm_span(cap: Capture) -> None:
    @spanhooks.llm(model="text-embedding-3", operation="embeddings", manager=cap.manager)
    def embed(text: str) -> list[float]:
        return [0.1]

    embed("x")
    attributes = cap.span("embeddings text-embedding-3").attributes or {}
    assert attributes["gen_ai.operation.name"] == "embeddings"


def test_the_genai_events_reach_callbacks_of_every_style(cap: Capture) -> None:
    seen: list[Any] = []

    class Recorder(spanhooks.AbstractCallback):
        def on_tool_call_start(self, tool_name: Any, arguments: Any) -> None:
            seen.append(("class start", tool_name, arguments))

        def on_tool_call_end(self, tool_name: Any, result: Any, error: Any) -> None:
            seen.append(("class end", tool_name, result, error))

    cap.manager.register(Recorder())
    cap.manager.register(
        GenAIEvent.TOOL_CALL_END, lambda tool_name, result, error: seen.append(("named", result))
    )
    cap.manager.register(lambda event, *args, **kwargs: seen.append(("generic", event)))

    @spanhooks.tool(manager=cap.manager)
    def double(x: int) -> int:
        return 2 * x

    double(4)
    assert ("class start", "double", {"x": 4}) in seen
    assert ("class end", "double", 8, None) in seen
    assert ("named", 8) in seen
    assert [s for s in seen if s[0] == "generic"] == [
        ("generic", GenAIEvent.TOOL_CALL_START),
        ("generic", GenAIEvent.TOOL_CALL_END),
    ]


def test_the_end_event_carries_the_exception_of_a_failed_call(cap: Capture) -> None:
    errors: list[Any] = []
    cap.manager.register(GenAIEvent.TASK_END, lambda name, output, error: errors.append(error))

    @spanhooks.instrument(name="fails", manager=cap.manager)
    def fails() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError):
        fails()
    assert len(errors) == 1 and isinstance(errors[0], ValueError)


def test_methods_leave_self_out_of_the_inputs(cap: Capture) -> None:
    inputs: list[Any] = []
    cap.manager.register(
        GenAIEvent.TOOL_CALL_START, lambda tool_name, arguments: inputs.append(arguments)
    )

    class Calculator:
        @spanhooks.tool(manager=cap.manager)
        def add(self, a: int, b: int) -> int:
            return a + b

        @classmethod
        @spanhooks.tool(name="zero", manager=cap.manager)
        def zero(cls) -> int:
            return 0

    assert Calculator().add(1, 2) == 3
    assert Calculator.zero() == 0
    assert inputs == [{"a": 1, "b": 2}, {}]
    assert cap.span("execute_tool add") and cap.span("execute_tool zero")


def test_a_disabled_manager_calls_the_function_and_records_nothing() -> None:
    with capture(enabled=False) as cap:

        @spanhooks.instrument(manager=cap.manager)
        def work(x: int) -> int:
            return x + 1

        assert work(1) == 2
        assert cap.spans() == []


def test_without_tracing_the_callbacks_still_run() -> None:
    manager = spanhooks.CallbackManager()
    seen: list[str] = []
    manager.register(GenAIEvent.AGENT_END, lambda agent_name, output, error: seen.append(output))

    @spanhooks.agent(manager=manager)
    def bot() -> str:
        return "done"

    assert bot() == "done"
    assert seen == ["done"]


@pytest.mark.parametrize(
    ("decorator", "kwargs", "message"),
    [
        (spanhooks.tool, {"name": ""}, "name must be a non-empty str"),
        (spanhooks.llm, {"operation": ""}, "operation must be a non-empty str"),
        (spanhooks.llm, {"model": 3}, "model must be a non-empty str"),
    ],
)
def test_bad_decorator_options_are_rejected_when_decorating(
    decorator: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        decorator(**kwargs)(lambda: None)


def test_decorating_something_not_callable_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="can only decorate a function"):
        spanhooks.instrument(name="x")(42)  # type: ignore[arg-type]


def test_a_partial_can_be_decorated() -> None:
    with capture() as cap:
        traced = spanhooks.instrument(name="max1", manager=cap.manager)(functools.partial(max, 1))
        assert traced(5) == 5
        assert cap.span("max1")
