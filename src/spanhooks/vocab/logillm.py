"""LogiLLM's typed callback events: module, optimization, evaluation and provider events.

Each event is a dataclass passed whole (``emit(ModuleStartEvent(module=m, inputs=...))``), and
callbacks receive it (``on_module_start(self, event)``). spanhooks fills ``event.context`` with
the call's ``call_id`` and ``parent_call_id``, taken from the span ids, and an end event's
``duration``, when its emitter left it None, with the seconds since its call's start event.
Messages, inputs, outputs and responses are content, recorded only on opt-in; ids (module,
optimizer and provider class names, model, call ids), scores, counts and durations always.
Code written against LogiLLM's own import paths finds these at :mod:`spanhooks.compat.logillm`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.trace import SpanKind

from spanhooks.events.spec import Bound, EventSet, end, point, start
from spanhooks.tracing.context import CallContext
from spanhooks.vocab import _genai
from spanhooks.vocab._messages import input_content, output_content

__all__ = [
    "LOGILLM",
    "CallbackType",
    "EvaluationEndEvent",
    "EvaluationStartEvent",
    "HyperparameterUpdateEvent",
    "LogiLLMCallback",
    "ModuleEndEvent",
    "ModuleStartEvent",
    "OptimizationEndEvent",
    "OptimizationStartEvent",
    "ProviderErrorEvent",
    "ProviderRequestEvent",
    "ProviderResponseEvent",
]


class CallbackType(str, Enum):
    """LogiLLM's event types, for ``register(..., callback_types=[...])`` filtering."""

    MODULE_START = "module_start"
    MODULE_END = "module_end"
    OPTIMIZATION_START = "optimization_start"
    OPTIMIZATION_END = "optimization_end"
    EVALUATION_START = "evaluation_start"
    EVALUATION_END = "evaluation_end"
    HYPERPARAMETER_UPDATE = "hyperparameter_update"
    PROVIDER_REQUEST = "provider_request"
    PROVIDER_RESPONSE = "provider_response"
    PROVIDER_ERROR = "provider_error"


@dataclass(eq=False)
class _Event:
    context: CallContext | None = field(default=None, kw_only=True)
    timestamp: float = field(default_factory=time.time, kw_only=True)


@dataclass(eq=False)
class ModuleStartEvent(_Event):
    """A module begins execution."""

    module: Any = None
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class ModuleEndEvent(_Event):
    """A module completed; ``success=False`` marks its span ERROR (with ``error``, if given).

    ``duration`` is in seconds; left None, it is measured from the module's start event.
    """

    module: Any = None
    outputs: dict[str, Any] = field(default_factory=dict)
    prediction: Any = None
    duration: float | None = None
    success: bool = True
    error: BaseException | None = None


@dataclass(eq=False)
class OptimizationStartEvent(_Event):
    """Optimization begins."""

    optimizer: Any = None
    module: Any = None
    dataset: Any = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class OptimizationEndEvent(_Event):
    """Optimization completed."""

    optimizer: Any = None
    result: Any = None
    duration: float | None = None
    success: bool = True


@dataclass(eq=False)
class EvaluationStartEvent(_Event):
    """An evaluation begins."""

    optimizer: Any = None
    module: Any = None
    dataset: Any = None


@dataclass(eq=False)
class EvaluationEndEvent(_Event):
    """An evaluation completed with ``score``."""

    optimizer: Any = None
    module: Any = None
    score: float | None = None
    duration: float | None = None


@dataclass(eq=False)
class HyperparameterUpdateEvent(_Event):
    """An optimizer changed hyperparameters (a span event on the optimization span)."""

    optimizer: Any = None
    module: Any = None
    parameters: dict[str, Any] = field(default_factory=dict)
    iteration: int | None = None


@dataclass(eq=False)
class ProviderRequestEvent(_Event):
    """An LLM request is about to be made."""

    provider: Any = None
    messages: list[Any] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class ProviderResponseEvent(_Event):
    """An LLM response arrived."""

    provider: Any = None
    response: Any = None
    usage: Any = None
    duration: float | None = None


@dataclass(eq=False)
class ProviderErrorEvent(_Event):
    """An LLM request failed: ends the provider span with ERROR."""

    provider: Any = None
    error: BaseException | None = None
    messages: list[Any] = field(default_factory=list)


def _ev(bound: Bound) -> Any:
    return bound.get("event")


def _class_name(obj: object) -> str:
    return type(obj).__name__ if obj is not None else "unknown"


def _model(event: Any) -> str | None:
    model = _genai.field(event.parameters, "model") or _genai.field(event.provider, "model")
    return str(model) if model else None


def _module_start(bound: Bound) -> dict[str, Any]:
    return {"logillm.module": _class_name(_ev(bound).module)}


def _module_end(bound: Bound) -> dict[str, Any]:
    event = _ev(bound)
    attrs: dict[str, Any] = {"logillm.success": bool(event.success)}
    if isinstance(event.duration, int | float):
        attrs["logillm.duration_s"] = float(event.duration)
    return attrs


def _module_failure(bound: Bound) -> BaseException | str | None:
    event = _ev(bound)
    if event.success:
        return None
    return event.error if event.error is not None else "module failed"


def _optimization_start(bound: Bound) -> dict[str, Any]:
    event = _ev(bound)
    attrs: dict[str, Any] = {
        "logillm.optimizer": _class_name(event.optimizer),
        "logillm.module": _class_name(event.module),
    }
    if hasattr(event.dataset, "__len__"):
        attrs["logillm.dataset_size"] = len(event.dataset)
    return attrs


def _optimization_end(bound: Bound) -> dict[str, Any]:
    event = _ev(bound)
    attrs: dict[str, Any] = {"logillm.success": bool(event.success)}
    for name in ("best_score", "improvement"):
        value = _genai.field(event.result, name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attrs[f"logillm.{name}"] = float(value)
    return attrs


def _evaluation_end(bound: Bound) -> dict[str, Any]:
    score = _ev(bound).score
    return {"logillm.score": float(score)} if isinstance(score, int | float) else {}


def _hyperparameters(bound: Bound) -> dict[str, Any]:
    event = _ev(bound)
    attrs: dict[str, Any] = {"logillm.parameters": event.parameters}
    if event.iteration is not None:
        attrs["logillm.iteration"] = event.iteration
    return attrs


def _provider_request(bound: Bound) -> dict[str, Any]:
    event = _ev(bound)
    attrs = _genai.request_attributes(event.parameters)
    model = _model(event)
    if model:
        attrs.setdefault(gen_ai.GEN_AI_REQUEST_MODEL, model)
    name = _genai.field(event.provider, "name", "provider")
    if isinstance(name, str):
        attrs[gen_ai.GEN_AI_PROVIDER_NAME] = name
    return attrs


def _provider_response(bound: Bound) -> dict[str, Any]:
    event = _ev(bound)
    attrs = _genai.response_attributes(event.response)
    attrs.update(_genai.usage_attributes(event.usage))
    return attrs


def _provider_failure(bound: Bound) -> BaseException | str | None:
    error = _ev(bound).error
    return error if error is not None else "provider error"


def _chat_name(bound: Bound) -> str:
    model = _model(_ev(bound))
    return f"chat {model}" if model else "chat"


def _typed(cls: type, **options: Any) -> dict[str, Any]:
    return {"payload_type": cls, "record_args": False, **options}


LOGILLM = EventSet(
    "logillm",
    [
        start(
            "module_start",
            "event",
            **_typed(ModuleStartEvent, extract=_module_start),
            span_name=lambda b: f"module {_class_name(_ev(b).module)}",
            extract_content=lambda b: input_content(_ev(b).inputs),
        ),
        end(
            "module_end",
            "event",
            **_typed(ModuleEndEvent, extract=_module_end, error=_module_failure),
            extract_content=lambda b: output_content(_ev(b).outputs),
        ),
        start(
            "optimization_start",
            "event",
            **_typed(OptimizationStartEvent, extract=_optimization_start),
            span_name=lambda b: f"optimize {_class_name(_ev(b).optimizer)}",
        ),
        end(
            "optimization_end",
            "event",
            **_typed(OptimizationEndEvent, extract=_optimization_end),
            error=lambda b: None if _ev(b).success else "optimization failed",
        ),
        start(
            "evaluation_start",
            "event",
            **_typed(EvaluationStartEvent, extract=_optimization_start),
            span_name=lambda b: f"evaluate {_class_name(_ev(b).module)}",
        ),
        end("evaluation_end", "event", **_typed(EvaluationEndEvent, extract=_evaluation_end)),
        point(
            "hyperparameter_update",
            "event",
            **_typed(HyperparameterUpdateEvent, extract=_hyperparameters),
        ),
        start(
            "provider_request",
            "event",
            **_typed(ProviderRequestEvent, extract=_provider_request),
            span_name=_chat_name,
            kind=SpanKind.CLIENT,
            operation="chat",
            extract_content=lambda b: input_content(_ev(b).messages),
        ),
        end(
            "provider_response",
            "event",
            **_typed(ProviderResponseEvent, extract=_provider_response),
            extract_content=lambda b: output_content(_ev(b).response),
        ),
        end(
            "provider_error",
            "event",
            pair="provider",
            **_typed(ProviderErrorEvent, error=_provider_failure),
        ),
    ],
    enum=CallbackType,
)


class LogiLLMCallback:
    """Base for LogiLLM's class callbacks: a no-op method per event, each given the typed event."""

    def on_module_start(self, event: Any) -> Any: ...
    def on_module_end(self, event: Any) -> Any: ...
    def on_optimization_start(self, event: Any) -> Any: ...
    def on_optimization_end(self, event: Any) -> Any: ...
    def on_evaluation_start(self, event: Any) -> Any: ...
    def on_evaluation_end(self, event: Any) -> Any: ...
    def on_hyperparameter_update(self, event: Any) -> Any: ...
    def on_provider_request(self, event: Any) -> Any: ...
    def on_provider_response(self, event: Any) -> Any: ...
    def on_provider_error(self, event: Any) -> Any: ...
