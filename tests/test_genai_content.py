"""Prompts, completions, system instructions and tool definitions are recorded, on opt-in, under
the GenAI conventions' attribute names and JSON shapes (roles and typed parts)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import spanhooks
from spanhooks import AttributePolicy, GenAIEvent
from spanhooks.testing import Capture, capture

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Adds two numbers.",
            "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
        },
    }
]
COMPLETION = {
    "id": "chatcmpl-1",
    "model": "gpt-4o-mini-2024",
    "choices": [
        {
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 7},
}


def _json(cap: Capture, span: str, key: str) -> Any:
    return json.loads(str((cap.span(span).attributes or {})[key]))


def _chat(cap: Capture, output: Any, **inputs: Any) -> None:
    cap.manager.emit(GenAIEvent.LLM_START, "gpt-4o-mini", inputs, "openai", "chat")
    cap.manager.emit(GenAIEvent.LLM_END, "gpt-4o-mini", output, None)


def test_a_chat_call_records_input_messages_with_roles_and_parts() -> None:
    history = [
        {"role": "system", "content": "You add numbers."},
        {"role": "user", "content": "2+3?"},
    ]
    with capture(capture_content=True) as cap:
        _chat(cap, COMPLETION, messages=history, temperature=0)
        assert _json(cap, "chat gpt-4o-mini", "gen_ai.input.messages") == [
            {"role": "system", "parts": [{"type": "text", "content": "You add numbers."}]},
            {"role": "user", "parts": [{"type": "text", "content": "2+3?"}]},
        ]


def test_a_completion_becomes_output_messages_with_tool_calls_and_finish_reason() -> None:
    with capture(capture_content=True) as cap:
        _chat(cap, COMPLETION, messages=[{"role": "user", "content": "2+3?"}])
        assert _json(cap, "chat gpt-4o-mini", "gen_ai.output.messages") == [
            {
                "role": "assistant",
                "parts": [
                    {
                        "type": "tool_call",
                        "id": "call_1",
                        "name": "add",
                        "arguments": {"a": 2, "b": 3},
                    }
                ],
                "finish_reason": "tool_call",
            }
        ]
        # the span attribute keeps the provider's own reason
        attributes = cap.span("chat gpt-4o-mini").attributes or {}
        assert attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)


def test_tool_results_in_the_history_are_tool_call_responses() -> None:
    history = [
        {"role": "user", "content": "2+3?"},
        COMPLETION["choices"][0]["message"],
        {"role": "tool", "tool_call_id": "call_1", "content": "5"},
    ]
    with capture(capture_content=True) as cap:
        _chat(cap, "5", messages=history)
        messages = _json(cap, "chat gpt-4o-mini", "gen_ai.input.messages")
    assert messages[1]["parts"][0]["type"] == "tool_call"
    assert messages[2] == {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "call_1", "response": "5"}],
    }


def test_tool_definitions_and_system_instructions_have_their_own_attributes() -> None:
    with capture(capture_content=True) as cap:
        _chat(cap, "ok", messages=["hi"], tools=TOOLS, system="Be brief.")
        assert _json(cap, "chat gpt-4o-mini", "gen_ai.tool.definitions") == [
            {
                "type": "function",
                "name": "add",
                "description": "Adds two numbers.",
                "parameters": TOOLS[0]["function"]["parameters"],  # type: ignore[index]
            }
        ]
        assert _json(cap, "chat gpt-4o-mini", "gen_ai.system_instructions") == [
            {"type": "text", "content": "Be brief."}
        ]


def test_anthropic_content_blocks_become_parts() -> None:
    message = {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me add."},
            {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 2}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 2},
    }
    with capture(capture_content=True) as cap:
        _chat(cap, message, messages=[{"role": "user", "content": [{"type": "text", "text": "?"}]}])
        assert _json(cap, "chat gpt-4o-mini", "gen_ai.output.messages") == [
            {
                "role": "assistant",
                "parts": [
                    {"type": "text", "content": "Let me add."},
                    {"type": "tool_call", "id": "toolu_1", "name": "add", "arguments": {"a": 2}},
                ],
                "finish_reason": "tool_call",
            }
        ]


def test_the_decorators_record_a_functions_one_argument_as_a_user_message() -> None:
    with capture(capture_content=True) as cap:

        @spanhooks.agent(name="helper", manager=cap.manager)
        def helper(question: str) -> dict[str, str]:
            return {"answer": "5"}

        helper("2+3?")
        assert _json(cap, "invoke_agent helper", "gen_ai.input.messages") == [
            {"role": "user", "parts": [{"type": "text", "content": "2+3?"}]}
        ]
        assert _json(cap, "invoke_agent helper", "gen_ai.output.messages") == [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": '{"answer":"5"}'}],
                "finish_reason": "stop",
            }
        ]


def test_content_stays_out_unless_captured() -> None:
    with capture() as cap:
        _chat(cap, COMPLETION, messages=["2+3?"], tools=TOOLS, system="Be brief.")
        attributes = cap.span("chat gpt-4o-mini").attributes or {}
    assert attributes["gen_ai.usage.input_tokens"] == 12  # metadata is always recorded
    for key in ("input", "output", "system_instructions", "tool.definitions"):
        assert not any(name.endswith(key) or "messages" in name for name in attributes)


def test_a_long_prompt_keeps_its_message_shape_within_the_length_limit() -> None:
    with capture(capture_content=True, max_attribute_length=200) as cap:
        _chat(cap, "ok", messages=[{"role": "user", "content": "x" * 5000}])
        recorded = str((cap.span("chat gpt-4o-mini").attributes or {})["gen_ai.input.messages"])
    assert len(recorded) <= 200
    [message] = json.loads(recorded)
    assert message["role"] == "user"
    assert message["parts"][0]["content"].endswith("...[truncated]")


def test_redaction_applies_to_message_content() -> None:
    with capture() as cap:
        cap.manager.set_attribute_policy(
            AttributePolicy(capture_content=True, redact_patterns=(r"sk-\w+",))
        )
        _chat(cap, "done", messages=["my key is sk-abc123"])
        assert _json(cap, "chat gpt-4o-mini", "gen_ai.input.messages") == [
            {"role": "user", "parts": [{"type": "text", "content": "my key is [REDACTED]"}]}
        ]


def test_the_old_spanhooks_content_names_are_gone() -> None:
    with capture(capture_content=True) as cap:
        _chat(cap, "ok", messages=["hi"])
        cap.manager.emit(GenAIEvent.TASK_START, "step", {"x": 1})
        cap.manager.emit(GenAIEvent.TASK_END, "step", 2, None)
        names = {key for span in cap.spans() for key in (span.attributes or {})}
    assert not {"spanhooks.input", "spanhooks.output"} & names
    assert "gen_ai.input.messages" in names and "gen_ai.output.messages" in names


def test_a_streamed_replys_output_message_holds_the_whole_text() -> None:
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]},
        {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
    ]
    with capture(capture_content=True) as cap:

        @spanhooks.llm(model="gpt-4o-mini", manager=cap.manager)
        def reply(prompt: str) -> Any:
            yield from chunks

        assert list(reply("hi")) == chunks
        assert _json(cap, "chat gpt-4o-mini", "gen_ai.output.messages") == [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "Hello"}],
                "finish_reason": "stop",
            }
        ]
        attributes = cap.span("chat gpt-4o-mini").attributes or {}
        assert attributes["gen_ai.usage.output_tokens"] == 2  # read from the last chunk


def test_callbacks_still_get_a_streams_last_chunk_as_its_output() -> None:
    seen: list[Any] = []
    with capture(capture_content=True) as cap:
        cap.manager.register(GenAIEvent.LLM_END, lambda model, output, error: seen.append(output))

        @spanhooks.llm(model="m", manager=cap.manager)
        async def reply(prompt: str) -> Any:
            for word in ("a ", "b"):
                yield word

        async def consume() -> list[str]:
            return [word async for word in reply("hi")]

        assert asyncio.run(consume()) == ["a ", "b"]
        assert seen == ["b"]
        [message] = _json(cap, "chat m", "gen_ai.output.messages")
        assert message["parts"] == [{"type": "text", "content": "a b"}]
