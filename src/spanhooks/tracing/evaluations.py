"""Evaluations and feedback: a score or label attached to a call, also after its span ended.

``spanhooks.evaluate(span, name="relevance", score=0.8, label="relevant")`` records the GenAI
conventions' evaluation result event (``gen_ai.evaluation.result`` with
``gen_ai.evaluation.name``, ``.score.value``, ``.score.label``, ``.explanation``). On a span
that is still recording it is an event of that span. On a span that has ended, or given only
its ids (a :class:`~opentelemetry.trace.SpanContext`, spanhooks' :class:`CallContext`, or the
trace and span id in hex, from another process a day later), it is a zero-length child span
``evaluation {name}`` of that span carrying the event, so it reaches the JSONL file and OTLP
through the usual pipeline and sits under the call it judges in any trace view.

Each result is counted by name and label in ``spanhooks_evaluations_total`` on ``/metrics``.

Threading: callable from any thread; the counts take a lock (evaluations are not on the hot
path).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags, TracerProvider
from prometheus_client.core import Metric

from spanhooks.metrics.families import EVALUATIONS, counter, register_source
from spanhooks.tracing.context import CallContext

__all__ = ["EVALUATION_EVENT", "evaluate"]

EVALUATION_EVENT = "gen_ai.evaluation.result"
NAME = "gen_ai.evaluation.name"
SCORE_VALUE = "gen_ai.evaluation.score.value"
SCORE_LABEL = "gen_ai.evaluation.score.label"
EXPLANATION = "gen_ai.evaluation.explanation"
RESPONSE_ID = "gen_ai.response.id"
MAX_TEXT = 4096
"""Longest name, label or explanation kept; longer text is cut."""

Target = Span | SpanContext | CallContext | tuple[str, str] | None


def evaluate(
    target: Target = None,
    *,
    name: str,
    score: float | None = None,
    label: str | None = None,
    explanation: str | None = None,
    response_id: str | None = None,
    tracer_provider: TracerProvider | None = None,
) -> None:
    """Record an evaluation of ``target`` (default: the current span): ``name`` says what was
    judged, ``score`` and/or ``label`` the verdict, ``explanation`` why.

    Raises TypeError or ValueError at once for a bad argument, recording nothing. The child
    span of an ended target comes from ``tracer_provider`` (default: the global one).
    """
    attributes = _attributes(name, score, label, explanation, response_id)
    span = trace.get_current_span() if target is None else target
    if isinstance(span, Span) and span.is_recording():
        span.add_event(EVALUATION_EVENT, attributes)
    else:
        parent = _span_context(span)
        tracer = trace.get_tracer("spanhooks.evaluations", tracer_provider=tracer_provider)
        child = tracer.start_span(
            f"evaluation {attributes[NAME]}",
            context=trace.set_span_in_context(NonRecordingSpan(parent)),
            attributes=attributes,
        )
        child.add_event(EVALUATION_EVENT, attributes)
        child.end()
    _counts.add(str(attributes[NAME]), str(attributes.get(SCORE_LABEL, "none")))


def _attributes(
    name: object, score: object, label: object, explanation: object, response_id: object
) -> dict[str, Any]:
    attributes: dict[str, Any] = {NAME: _text("name", name)}
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise TypeError(f"score must be a number, got {type(score).__name__}")
        if math.isnan(score):
            raise ValueError("score must be a number, got NaN")
        attributes[SCORE_VALUE] = float(score)
    if label is not None:
        attributes[SCORE_LABEL] = _text("label", label)
    if score is None and label is None:
        raise ValueError("evaluate() needs a score, a label or both")
    if explanation is not None:
        attributes[EXPLANATION] = _text("explanation", explanation)
    if response_id is not None:
        attributes[RESPONSE_ID] = _text("response_id", response_id)
    return attributes


def _text(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    return value[:MAX_TEXT]


def _span_context(target: object) -> SpanContext:
    """The span context an evaluation of ``target`` is recorded under."""
    if isinstance(target, Span):
        found = target.get_span_context()
    elif isinstance(target, SpanContext):
        found = target
    elif isinstance(target, CallContext):
        found = _from_hex(target.trace_id, target.call_id)
    elif isinstance(target, tuple) and len(target) == 2:
        found = _from_hex(*target)
    else:
        raise TypeError(
            "evaluate() takes a span, a SpanContext, a CallContext or (trace_id, span_id) in "
            f"hex, got {type(target).__name__}"
        )
    if not found.is_valid:
        raise ValueError("evaluate() needs a valid span: no span is current, or its ids are 0")
    return found


def _from_hex(trace_id: object, span_id: object) -> SpanContext:
    try:
        ids = int(str(trace_id), 16), int(str(span_id), 16)
    except ValueError:
        raise ValueError(
            f"trace and span ids must be hex, got {trace_id!r} and {span_id!r}"
        ) from None
    if len(str(trace_id)) != 32 or len(str(span_id)) != 16:
        raise ValueError("a trace id is 32 hex digits and a span id 16")
    return SpanContext(*ids, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))


class _Counts:
    """Evaluations recorded in this process, by name and label."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        register_source(self)

    def add(self, name: str, label: str) -> None:
        with self._lock:
            self._counts[name, label] = self._counts.get((name, label), 0) + 1

    def metric_families(self) -> Iterable[Metric]:
        with self._lock:
            counts = list(self._counts.items())
        yield counter(EVALUATIONS, counts)


_counts = _Counts()
