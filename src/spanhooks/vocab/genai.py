"""spanhooks' own GenAI vocabulary: the events the decorators fire (``@agent``, ``@tool``...).

Each kind of call is a start/end pair shaped by the OpenTelemetry GenAI conventions: workflows
and plain functions (``task``), agents (``invoke_agent {name}``), tool calls
(``execute_tool {name}``), model calls (``chat {model}``, a CLIENT span with token usage read
from the response), retrievals (``retrieval {data_source}``) and embeddings calls
(``embeddings {model}``, CLIENT). ``first_chunk`` marks the first item a streaming call
yields. Inputs, outputs, tool arguments, results, queries and documents are content, recorded
only on opt-in and under the conventions' names: a model call's ``gen_ai.input.messages``,
``gen_ai.output.messages``, ``gen_ai.system_instructions`` and ``gen_ai.tool.definitions`` in
their JSON shapes (:mod:`spanhooks.vocab._messages`), as are an agent's, workflow's or task's
inputs and output; an embeddings call's texts are not recorded (the conventions name no
attribute for them). Callbacks always receive every argument. The framework integrations emit
these same events, so one callback serves every framework. Users may emit these events
themselves too: ``emit(GenAIEvent.TOOL_CALL_START, "search", {"q": "otel"})``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import SpanKind

from spanhooks.events.spec import Bound, EventSet, FailureIn, end, point, start
from spanhooks.vocab._genai import request_attributes, response_attributes
from spanhooks.vocab._messages import input_content, output_content

__all__ = ["GENAI", "TIME_PER_OUTPUT_CHUNK", "TIME_TO_FIRST_CHUNK", "GenAICallback", "GenAIEvent"]

TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
"""Seconds from the start of a streaming call to its first chunk (GenAI conventions)."""
TIME_PER_OUTPUT_CHUNK = "spanhooks.stream.time_per_output_chunk"
"""Seconds per item after the first, a stream's mean (streams of two or more items); the
conventions name the metric (``gen_ai.client.operation.time_per_output_chunk``), not an
attribute."""


class GenAIEvent(str, Enum):
    """The events of the ``genai`` set; the values are the method names class callbacks use."""

    WORKFLOW_START = "workflow_start"
    WORKFLOW_END = "workflow_end"
    AGENT_START = "agent_start"
    AGENT_END = "agent_end"
    TASK_START = "task_start"
    TASK_END = "task_end"
    TOOL_CALL_START = "tool_call_start"
    TOOL_CALL_END = "tool_call_end"
    LLM_START = "llm_start"
    LLM_END = "llm_end"
    FIRST_CHUNK = "first_chunk"
    RETRIEVAL_START = "retrieval_start"
    RETRIEVAL_END = "retrieval_end"
    EMBEDDING_START = "embedding_start"
    EMBEDDING_END = "embedding_end"


def _error(error: Any) -> BaseException | str | None:
    if error is None or isinstance(error, BaseException):
        return error
    return str(error)


def _llm_name(bound: Bound) -> str:
    operation = bound.get("operation") or "chat"
    model = bound.get("model")
    return f"{operation} {model}" if model else str(operation)


def _model_call(bound: Bound, operation: str) -> dict[str, Any]:
    """A model call's operation, request model and provider, as far as ``bound`` names them."""
    attrs: dict[str, Any] = {gen_ai.GEN_AI_OPERATION_NAME: operation}
    model = bound.get("model")
    if isinstance(model, str):
        attrs[gen_ai.GEN_AI_REQUEST_MODEL] = model
    provider = bound.get("provider")
    if isinstance(provider, str):
        attrs[gen_ai.GEN_AI_PROVIDER_NAME] = provider
    return attrs


def _llm_start(bound: Bound) -> dict[str, Any]:
    attrs = request_attributes(bound.get("inputs"))
    attrs.update(_model_call(bound, str(bound.get("operation") or "chat")))
    return attrs


def _retrieval_name(bound: Bound) -> str:
    source = bound.get("data_source")
    return f"retrieval {source}" if source else "retrieval"


def _embedding_name(bound: Bound) -> str:
    model = bound.get("model")
    return f"embeddings {model}" if model else "embeddings"


def _embedding_start(bound: Bound) -> dict[str, Any]:
    return _model_call(bound, "embeddings")


def _embedding_end(bound: Bound) -> dict[str, Any]:
    output = bound.get("output")
    attrs = response_attributes(output)
    vectors = output if isinstance(output, list) else None
    if vectors and isinstance(vectors[0], list | tuple):
        attrs[gen_ai.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = len(vectors[0])
    return attrs


def _call_inputs(bound: Bound) -> dict[str, Any]:
    """An agent's, workflow's or task's inputs as its input messages (and an agent's
    instructions as system instructions)."""
    return input_content(bound.get("inputs"))


def _call_output(bound: Bound) -> dict[str, Any]:
    return output_content(bound.get("output"))


def _mapped(argument: str, attribute: str | None) -> dict[str, Any]:
    return {argument: attribute} if attribute else {}


def _pair(
    kind: str,
    label: str,
    *,
    span_name: str | Callable[[Bound], str],
    operation: str | None,
    label_attribute: str | None,
    input_arg: str = "inputs",
    input_attribute: str | None = None,
    output_arg: str = "output",
    output_attribute: str | None = None,
) -> list[Any]:
    """A start/end pair whose content is one argument each way: recorded under the given
    attribute, or (none given) as the conventions' input and output messages."""
    named = {label: label_attribute} if label_attribute else {}
    return [
        start(
            f"{kind}_start",
            label,
            input_arg,
            span_name=span_name,
            operation=operation,
            attributes={**named, **_mapped(input_arg, input_attribute)},
            content={input_arg},
            extract_content=None if input_attribute else _call_inputs,
            key=label,
            doc=f"A {kind.replace('_', ' ')} starts; ``{input_arg}`` are its arguments by name.",
        ),
        end(
            f"{kind}_end",
            label,
            output_arg,
            "error",
            attributes={**named, **_mapped(output_arg, output_attribute)},
            content={output_arg},
            extract_content=None if output_attribute else _call_output,
            key=label,
            error=FailureIn("error", _error),
            record_args=False,
            doc=f"A {kind.replace('_', ' ')} ends with ``{output_arg}``, or failed with ``error``.",
        ),
    ]


GENAI = EventSet(
    "genai",
    [
        *_pair(
            "workflow",
            "name",
            span_name="workflow {name}",
            operation="workflow",
            label_attribute="spanhooks.workflow.name",
        ),
        *_pair(
            "agent",
            "agent_name",
            span_name="invoke_agent {agent_name}",
            operation="invoke_agent",
            label_attribute=gen_ai.GEN_AI_AGENT_NAME,
        ),
        *_pair("task", "name", span_name="{name}", operation=None, label_attribute=None),
        *_pair(
            "tool_call",
            "tool_name",
            span_name="execute_tool {tool_name}",
            operation="execute_tool",
            label_attribute=gen_ai.GEN_AI_TOOL_NAME,
            input_arg="arguments",
            input_attribute=gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS,
            output_arg="result",
            output_attribute=gen_ai.GEN_AI_TOOL_CALL_RESULT,
        ),
        start(
            "llm_start",
            "model",
            "inputs",
            "provider",
            "operation",
            span_name=_llm_name,
            kind=SpanKind.CLIENT,
            extract=_llm_start,
            content={"inputs"},
            extract_content=lambda bound: input_content(bound.get("inputs")),
            record_args=False,
            doc="A model call starts: ``inputs`` are its arguments by name.",
        ),
        end(
            "llm_end",
            "model",
            "output",
            "error",
            extract=lambda bound: response_attributes(bound.get("output")),
            content={"output"},
            extract_content=_call_output,
            error=FailureIn("error", _error),
            record_args=False,
            doc="A model call ends; model, finish reasons and token usage are read from "
            "``output`` (a response object or dict, or a stream's last chunk).",
        ),
        *_pair(
            "retrieval",
            "data_source",
            span_name=_retrieval_name,
            operation="retrieval",
            label_attribute=gen_ai.GEN_AI_DATA_SOURCE_ID,
            input_arg="query",
            input_attribute=gen_ai.GEN_AI_RETRIEVAL_QUERY_TEXT,
            output_arg="documents",
            output_attribute=gen_ai.GEN_AI_RETRIEVAL_DOCUMENTS,
        ),
        start(
            "embedding_start",
            "model",
            "inputs",
            "provider",
            span_name=_embedding_name,
            kind=SpanKind.CLIENT,
            extract=_embedding_start,
            content={"inputs"},
            record_args=False,
            doc="An embeddings call starts: ``inputs`` are the texts to embed.",
        ),
        end(
            "embedding_end",
            "model",
            "output",
            "error",
            extract=_embedding_end,
            content={"output"},
            error=FailureIn("error", _error),
            record_args=False,
            doc="An embeddings call ends with ``output`` (the vectors, or a response object with "
            "usage), or failed with ``error``.",
        ),
        point(
            "first_chunk",
            "name",
            "seconds",
            attributes={"seconds": TIME_TO_FIRST_CHUNK},
            record_args=False,
            doc="A streaming call yielded its first chunk ``seconds`` after it started.",
        ),
    ],
    enum=GenAIEvent,
)
"""The decorators' events, declared by every :class:`~spanhooks.CallbackManager` by default."""


class GenAICallback:
    """Base for class callbacks of the events the decorators fire: one no-op method per event."""

    def on_workflow_start(self, name: Any, inputs: Any) -> Any: ...
    def on_workflow_end(self, name: Any, output: Any, error: Any) -> Any: ...
    def on_agent_start(self, agent_name: Any, inputs: Any) -> Any: ...
    def on_agent_end(self, agent_name: Any, output: Any, error: Any) -> Any: ...
    def on_task_start(self, name: Any, inputs: Any) -> Any: ...
    def on_task_end(self, name: Any, output: Any, error: Any) -> Any: ...
    def on_tool_call_start(self, tool_name: Any, arguments: Any) -> Any: ...
    def on_tool_call_end(self, tool_name: Any, result: Any, error: Any) -> Any: ...
    def on_llm_start(self, model: Any, inputs: Any, provider: Any, operation: Any) -> Any: ...
    def on_llm_end(self, model: Any, output: Any, error: Any) -> Any: ...
    def on_first_chunk(self, name: Any, seconds: Any) -> Any: ...
    def on_retrieval_start(self, data_source: Any, query: Any) -> Any: ...
    def on_retrieval_end(self, data_source: Any, documents: Any, error: Any) -> Any: ...
    def on_embedding_start(self, model: Any, inputs: Any, provider: Any) -> Any: ...
    def on_embedding_end(self, model: Any, output: Any, error: Any) -> Any: ...
