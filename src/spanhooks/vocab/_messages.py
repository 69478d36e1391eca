"""Prompts, completions, system instructions and tool definitions in the GenAI conventions'
JSON shapes, read from the payloads callers pass around.

The conventions (``gen_ai.input.messages``, ``gen_ai.output.messages``,
``gen_ai.system_instructions``, ``gen_ai.tool.definitions``; semantic conventions 1.37 and
later) record a message as ``{"role", "parts": [...]}``, each part typed: ``text`` (with
``content``), ``tool_call`` (``id``, ``name``, ``arguments``), ``tool_call_response`` (``id``,
``response``), ``uri`` or ``blob``; an output message adds ``finish_reason``. The readers here
accept the shapes the seeds and frameworks use: OpenAI chat messages and completions, the
Responses API, Anthropic messages and content blocks, LangChain and LlamaIndex message objects
(by their ``type``/``role`` and ``content``), plain strings, and any other value (as a text part
holding its JSON). What they cannot read becomes text, never an error.

Pure functions, safe from any thread; they run only when content capture is on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Any, TypeGuard

from spanhooks.tracing.content_events import (
    INPUT_MESSAGES,
    OUTPUT_MESSAGES,
    SYSTEM_INSTRUCTIONS,
    TOOL_DEFINITIONS,
    structured,
)
from spanhooks.vocab._genai import field

__all__ = [
    "chunk_text",
    "input_content",
    "input_messages",
    "output_content",
    "output_messages",
    "streamed_text",
    "text_messages",
]


_MESSAGE_TYPES = frozenset(
    {"human", "ai", "system", "tool", "function", "chat", "AIMessageChunk", "HumanMessageChunk"}
)
_ROLES = {"human": "user", "ai": "assistant", "AIMessageChunk": "assistant", "model": "assistant"}
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_call",
    "tool_calls": "tool_call",
    "function_call": "tool_call",
    "max_tokens": "length",
}
"""Providers' stop reasons as the conventions' finish reasons (the span's
``gen_ai.response.finish_reasons`` keeps the provider's own)."""
_MESSAGE_KEYS = ("messages", "input", "contents", "prompt", "prompts", "query", "question")
_SYSTEM_KEYS = ("system", "instructions", "system_prompt", "system_instruction")
_SETTINGS = frozenset(
    {
        "model",
        "model_name",
        "temperature",
        "max_tokens",
        "max_output_tokens",
        "max_completion_tokens",
        "top_p",
        "top_k",
        "seed",
        "stop",
        "stream",
        "n",
        "tools",
        "tool_choice",
        "functions",
        "response_format",
        *_SYSTEM_KEYS,
    }
)


streamed_text: ContextVar[str | None] = ContextVar("spanhooks_streamed_text", default=None)
"""A stream's text, joined from its chunks, while the decorator emits the stream's end: the
output message then holds the whole text, where the end's ``output`` (what callbacks get) is
the last chunk."""

_METADATA_KEYS = frozenset(
    {"id", "model", "usage", "created", "object", "system_fingerprint", "type", "service_tier"}
)


def chunk_text(chunk: object) -> str | None:
    """The text a streamed chunk adds: itself if a string, an OpenAI chunk's delta content, an
    Anthropic ``content_block_delta``'s text, a ``delta`` string; None for a chunk without
    text."""
    if isinstance(chunk, str):
        return chunk
    choices = field(chunk, "choices")
    if isinstance(choices, Sequence) and not isinstance(choices, str) and choices:
        content = field(field(choices[0], "delta"), "content")
        return content if isinstance(content, str) else None
    delta = field(chunk, "delta")
    text = delta if isinstance(delta, str) else field(delta, "text")
    return text if isinstance(text, str) else None


def input_content(inputs: object) -> dict[str, Any]:
    """A model or agent call's input messages, system instructions and tool definitions from
    its arguments (by name, or a request payload), as attributes; what is absent is left out."""
    attrs: dict[str, Any] = {}
    params = _first(inputs, ("params",))  # a request object with OpenAI-style ``params``
    if isinstance(params, Mapping) and _first(inputs, _MESSAGE_KEYS) is None:
        inputs = params
    system = _first(inputs, _SYSTEM_KEYS)
    if system is not None:
        attrs[SYSTEM_INSTRUCTIONS] = _content_parts(system)
    messages = input_messages(inputs)
    if messages:
        attrs[INPUT_MESSAGES] = messages
    tools = field(inputs, "tools", "functions") if _is_mapping_like(inputs) else None
    if isinstance(tools, Sequence) and not isinstance(tools, str | bytes) and tools:
        attrs[TOOL_DEFINITIONS] = [_tool_definition(tool) for tool in tools]
    return attrs


def output_content(output: object) -> dict[str, Any]:
    """A call's output messages as attributes (none for a call that returned nothing); for a
    stream whose end is being emitted, its whole text (:data:`streamed_text`)."""
    streamed = streamed_text.get()
    if streamed is not None:
        reason = field(output, "stop_reason", "finish_reason") if _is_mapping_like(output) else None
        reasons = _finish_reasons(output)
        finish = str(reason) if reason is not None else (reasons[0] if reasons else "stop")
        return {
            OUTPUT_MESSAGES: text_messages(
                "assistant", streamed, finish_reason=_FINISH_REASONS.get(finish, finish)
            )
        }
    messages = output_messages(output)
    return {OUTPUT_MESSAGES: messages} if messages else {}


def input_messages(inputs: object) -> list[dict[str, Any]]:
    """The messages sent: a chat history, a prompt, or a function's arguments as one user
    message (the one string argument as text, several as their JSON)."""
    if inputs is None:
        return []
    if isinstance(inputs, str):
        return text_messages("user", inputs)
    if _is_message_list(inputs):
        return [_message(item, "user") for item in inputs]
    if not _is_mapping_like(inputs):
        return text_messages("user", inputs)
    found = _first(inputs, _MESSAGE_KEYS)
    if found is not None:
        return input_messages(found)
    if not isinstance(inputs, Mapping):  # one message object (a LangChain message, say)
        return [_message(inputs, "user")] if _has_role(inputs) else text_messages("user", inputs)
    rest = {k: v for k, v in inputs.items() if k not in _SETTINGS and v is not None}
    if not rest:
        return []
    if len(rest) == 1:
        (only,) = rest.values()
        return input_messages(only) if _is_message_list(only) else text_messages("user", only)
    return text_messages("user", rest)


def output_messages(output: object) -> list[dict[str, Any]]:
    """The messages a call returned: a completion's choices, a message, an Anthropic or
    Responses API result, a string, or any value as one assistant text message."""
    if output is None:
        return []
    if isinstance(output, str):
        return text_messages("assistant", output, finish_reason="stop")
    if _is_message_list(output):
        return [_output_message(item, None) for item in output]
    if isinstance(output, list | tuple) and output and _has_type(output):  # content blocks
        parts = _content_parts(output)
        return [{"role": "assistant", "parts": parts, "finish_reason": "stop"}]
    if not _is_mapping_like(output):
        return text_messages("assistant", output, finish_reason="stop")
    if isinstance(output, Mapping) and output and _METADATA_KEYS.issuperset(output):
        return []  # a response's metadata only (a stream's last chunk, say): no message
    reason = field(output, "stop_reason", "finish_reason")
    choices = field(output, "choices")
    if isinstance(choices, Sequence) and not isinstance(choices, str) and choices:
        message = field(output, "message")
        found = []
        for choice in choices:
            inner = field(choice, "message", "delta") or message
            if inner is None:
                continue
            found.append(_output_message(inner, field(choice, "finish_reason")))
        if found:
            return found
    message = field(output, "message")
    if message is not None:
        return [_output_message(message, reason)]
    items = field(output, "output")
    if isinstance(items, Sequence) and not isinstance(items, str) and _has_type(items):
        return [_responses_output(items, reason)]
    if field(output, "content") is not None and (_has_role(output) or reason is not None):
        return [_output_message(output, reason)]
    text = field(output, "text", "content", "output_text")
    if text is not None:
        return text_messages("assistant", text, finish_reason=reason or "stop")
    return text_messages("assistant", output, finish_reason="stop")


def text_messages(
    role: str, value: object, *, finish_reason: str | None = None
) -> list[dict[str, Any]]:
    """One message of ``role`` holding ``value`` as a text part (its JSON if not a string)."""
    message: dict[str, Any] = {"role": role, "parts": [_text(value)]}
    if finish_reason is not None:
        message["finish_reason"] = finish_reason
    return [message]


def _finish_reasons(output: object) -> list[str]:
    choices = field(output, "choices") if _is_mapping_like(output) else None
    if not isinstance(choices, Sequence) or isinstance(choices, str):
        return []
    found = (field(choice, "finish_reason") for choice in choices)
    return [str(reason) for reason in found if reason is not None]


def _message(message: object, default_role: str) -> dict[str, Any]:
    """One input message: role, parts (text, tool calls, tool results), and name if any."""
    if isinstance(message, str):
        return {"role": default_role, "parts": [_text(message)]}
    role = _role(message, default_role)
    parts = _content_parts(field(message, "content", "blocks", "text"))
    parts.extend(_tool_calls(field(message, "tool_calls", "function_call")))
    call_id = field(message, "tool_call_id", "call_id")
    if role == "tool" and call_id is not None:
        response = parts[0].get("content") if len(parts) == 1 and "content" in parts[0] else parts
        parts = [{"type": "tool_call_response", "id": str(call_id), "response": response}]
    found: dict[str, Any] = {"role": role, "parts": parts}
    name = field(message, "name")
    if isinstance(name, str) and name and role != "tool":
        found["name"] = name
    return found


def _output_message(message: object, finish_reason: object) -> dict[str, Any]:
    found = _message(message, "assistant")
    reason = finish_reason if finish_reason is not None else field(message, "finish_reason")
    reason = str(reason) if reason is not None else "stop"
    found["finish_reason"] = _FINISH_REASONS.get(reason, reason)
    return found


def _responses_output(items: Sequence[Any], reason: object) -> dict[str, Any]:
    """The Responses API's output items (messages, function calls) as one assistant message."""
    parts: list[dict[str, Any]] = []
    for item in items:
        kind = field(item, "type")
        if kind == "function_call":
            parts.append(_tool_call(item))
        elif kind == "reasoning":
            summary = field(item, "summary")
            if summary:
                parts.append({"type": "reasoning", "content": _plain_text(summary)})
        else:
            parts.extend(_content_parts(field(item, "content")))
    reason = str(reason or "stop")
    return {
        "role": "assistant",
        "parts": parts,
        "finish_reason": _FINISH_REASONS.get(reason, reason),
    }


def _content_parts(content: object) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [_text(content)] if content else []
    if isinstance(content, Sequence) and not isinstance(content, bytes | bytearray):
        return [_part(block) for block in content]
    return [_part(content)]


def _part(block: object) -> dict[str, Any]:
    """One content block (OpenAI, Anthropic, LlamaIndex) as a conventions part."""
    if isinstance(block, str):
        return _text(block)
    kind = field(block, "type", "block_type")
    text = field(block, "text")
    if kind in (None, "text", "input_text", "output_text") and isinstance(text, str):
        return _text(text)
    if kind == "tool_use":
        return {
            "type": "tool_call",
            "id": _str_or_none(field(block, "id")),
            "name": str(field(block, "name") or ""),
            "arguments": field(block, "input"),
        }
    if kind == "tool_result":
        content = field(block, "content")
        return {
            "type": "tool_call_response",
            "id": _str_or_none(field(block, "tool_use_id")),
            "response": _plain_text(content) if isinstance(content, list) else content,
        }
    if kind in ("thinking", "reasoning"):
        return {"type": "reasoning", "content": str(field(block, "thinking", "text") or "")}
    if kind == "image_url":
        url = field(field(block, "image_url"), "url")
        return _media(url, "image")
    if kind in ("image", "input_image", "audio", "input_audio", "file", "input_file"):
        url = field(block, "url", "image_url", "file_url")
        return _media(url, kind.removeprefix("input_"))
    if isinstance(block, Mapping):
        return {"type": str(kind or "text"), **{k: v for k, v in block.items() if k != "type"}}
    return _text(block)


def _media(url: object, modality: str) -> dict[str, Any]:
    """A media part: its URI, never inline data (``data:`` URIs are left out, they are bulk)."""
    if isinstance(url, str) and url and not url.startswith("data:"):
        return {"type": "uri", "modality": modality, "uri": url}
    return {"type": "blob", "modality": modality, "content": None}


def _tool_calls(calls: object) -> list[dict[str, Any]]:
    if calls is None:
        return []
    if isinstance(calls, Sequence) and not isinstance(calls, str):
        return [_tool_call(call) for call in calls]
    return [_tool_call(calls)]


def _tool_call(call: object) -> dict[str, Any]:
    """An OpenAI (``function`` with JSON arguments), LangChain (``args``) or Responses API
    (``call_id``) tool call as a ``tool_call`` part, its arguments parsed when they are JSON."""
    function = field(call, "function")
    source = function if function is not None else call
    arguments = structured(field(source, "arguments", "args", "input"))
    return {
        "type": "tool_call",
        "id": _str_or_none(field(call, "id", "call_id", "tool_call_id")),
        "name": str(field(source, "name") or ""),
        "arguments": arguments,
    }


def _tool_definition(tool: object) -> dict[str, Any]:
    """An OpenAI, Anthropic or Responses API tool, or a Python function, as the conventions'
    ``{"type", "name", "description", "parameters"}``."""
    if callable(tool) and not isinstance(tool, Mapping):
        name = getattr(tool, "__name__", None) or type(tool).__name__
        definition: dict[str, Any] = {"type": "function", "name": str(name)}
        doc = getattr(tool, "__doc__", None)
        if isinstance(doc, str) and doc.strip():
            definition["description"] = doc.strip().splitlines()[0]
        return definition
    function = field(tool, "function")
    source = function if function is not None else tool
    definition = {"type": str(field(tool, "type") or "function")}
    for key, names in (
        ("name", ("name",)),
        ("description", ("description",)),
        ("parameters", ("parameters", "input_schema", "args_schema")),
    ):
        value = field(source, *names)
        if value is not None:
            definition[key] = value
    return definition


def _role(message: object, default: str) -> str:
    role = field(message, "role", "type")
    role = getattr(role, "value", role)  # LlamaIndex's MessageRole
    if not isinstance(role, str) or not role:
        return default
    return _ROLES.get(role, role)


def _text(value: object) -> dict[str, Any]:
    return {"type": "text", "content": value if isinstance(value, str) else _dumps(value)}


def _plain_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        texts = [field(item, "text") if not isinstance(item, str) else item for item in value]
        if all(isinstance(text, str) for text in texts):
            return "".join(texts)
    return _dumps(value)


def _dumps(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_fallback)
    except (TypeError, ValueError, RecursionError):
        return str(_fallback(value))


def _fallback(value: object) -> Any:
    for method in ("model_dump", "dict", "to_dict"):
        dump = getattr(value, method, None)
        if callable(dump):
            try:
                return dump()
            except Exception:  # a model whose dump raises: its text instead
                break
    try:
        return str(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _first(container: object, keys: tuple[str, ...]) -> Any:
    if not _is_mapping_like(container):
        return None
    return field(container, *keys)


def _is_mapping_like(value: object) -> bool:
    return not isinstance(value, str | bytes | int | float | bool | list | tuple)


def _is_message_list(value: object) -> TypeGuard[Sequence[Any]]:
    """A list whose items are all strings or message-like objects (a chat history)."""
    if not isinstance(value, list | tuple) or not value:
        return False
    return all(
        isinstance(item, str) or (_is_mapping_like(item) and _has_role(item)) for item in value
    )


def _has_role(value: object) -> bool:
    """Whether ``value`` is a message (it has a role, or a LangChain message type), not a
    content block."""
    return field(value, "role") is not None or field(value, "type") in _MESSAGE_TYPES


def _has_type(items: Sequence[Any]) -> bool:
    return bool(items) and field(items[0], "type") is not None
