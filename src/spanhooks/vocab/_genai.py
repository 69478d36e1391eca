"""Reading GenAI fields (model, usage, finish reasons) from the payload shapes seeds pass around.

Payloads are dicts from one codebase and SDK objects from another; these helpers read either
and return semantic-convention attributes, leaving out what is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

__all__ = ["field", "request_attributes", "response_attributes", "usage_attributes"]


def field(obj: object, *names: str) -> Any:
    """The first of ``names`` present on ``obj`` (as a key or an attribute), else None."""
    if obj is None:
        return None
    # dict first: an isinstance check against the Mapping ABC alone is slow on the emit path
    if isinstance(obj, (dict, Mapping)):
        get = obj.get
        for name in names:
            value = get(name)
            if value is not None:
                return value
        return None
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def usage_attributes(usage: object) -> dict[str, Any]:
    """Token counts from an Anthropic-, OpenAI- or LogiLLM-shaped usage object."""
    attrs: dict[str, Any] = {}
    tokens = field(usage, "tokens") or usage
    input_tokens = field(tokens, "input_tokens", "prompt_tokens")
    output_tokens = field(tokens, "output_tokens", "completion_tokens")
    if isinstance(input_tokens, int):
        attrs[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
    if isinstance(output_tokens, int):
        attrs[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
    cache_read = field(tokens, "cache_read_input_tokens", "cached_tokens") or field(
        field(tokens, "prompt_tokens_details", "input_tokens_details"), "cached_tokens"
    )  # Anthropic's, or OpenAI's (Chat Completions, Responses) details
    if isinstance(cache_read, int):
        attrs[gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cache_read
    cache_creation = field(tokens, "cache_creation_input_tokens")
    if isinstance(cache_creation, int):
        attrs[gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = cache_creation
    return attrs


def request_attributes(params: object) -> dict[str, Any]:
    """Request settings (model, max tokens, temperature, ...) from a request payload."""
    attrs: dict[str, Any] = {}
    for key, names in (
        (gen_ai.GEN_AI_REQUEST_MODEL, ("model", "model_name")),
        (gen_ai.GEN_AI_REQUEST_MAX_TOKENS, ("max_tokens", "max_output_tokens")),
        (gen_ai.GEN_AI_REQUEST_TEMPERATURE, ("temperature",)),
        (gen_ai.GEN_AI_REQUEST_TOP_P, ("top_p",)),
        (gen_ai.GEN_AI_REQUEST_TOP_K, ("top_k",)),
    ):
        value = field(params, *names)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            attrs[key] = value
    return attrs


def response_attributes(response: object) -> dict[str, Any]:
    """Response id, model, finish reasons and token usage from a response object."""
    attrs: dict[str, Any] = {}
    response_id = field(response, "id")
    if isinstance(response_id, str):
        attrs[gen_ai.GEN_AI_RESPONSE_ID] = response_id
    model = field(response, "model")
    if isinstance(model, str):
        attrs[gen_ai.GEN_AI_RESPONSE_MODEL] = model
    reasons = _finish_reasons(response)
    if reasons:
        attrs[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    attrs.update(usage_attributes(field(response, "usage")))
    return attrs


def _finish_reasons(response: object) -> tuple[str, ...]:
    single = field(response, "stop_reason", "finish_reason")
    if isinstance(single, str):
        return (single,)
    choices = field(response, "choices")
    if isinstance(choices, list | tuple):
        found = (field(choice, "finish_reason") for choice in choices)
        return tuple(reason for reason in found if isinstance(reason, str))
    return ()
