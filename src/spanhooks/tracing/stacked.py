"""One span per model or tool call when instrumentations stack.

``@spanhooks.llm`` around a call that another instrumentation also traces (the ``openai``
client under opentelemetry-instrumentation-openai-v2, say) gives two nested spans for one call:
spanhooks' ``chat gpt-4o-mini`` and, directly under it, the client's ``chat gpt-4o-mini``. The
open GenAI convention proposal on duplicate inference spans (semantic-conventions-genai #475)
says the instrumentation that owns the call keeps the span and the ones below it either stay
out or add their attributes to it, and that metrics count the call once. spanhooks follows it
from the outside, since the inner instrumentations do not yet look for the outer span:

- ``merge`` (the default): the inner span's attributes and events are added to the outer
  span when the inner one ends (the wire-level instrumentation's values win: response model,
  server address, token usage); the inner span then never reaches setup's processors or
  exporters, and its children are re-parented to the outer span. The outer span says
  ``spanhooks.stacked = "merged"`` and names the inner instrumentation in
  ``spanhooks.stacked.scope``. One span, both sets of attributes.
- ``keep``: both spans are exported; the outer says ``spanhooks.stacked = "outer"`` and the
  inner ``"inner"``, so a query can tell them apart.

Either way each call counts once: the GenAI metrics processor records a stacked outer span on
``/metrics`` but not through the OpenTelemetry metrics API (the inner instrumentation recorded
it there), cost is counted on the span that is exported as the call, and callbacks get the call
once (the foreign-span bridge leaves the inner span alone). Two spans are "the same call" when
a span of another instrumentation starts as a direct child of a spanhooks span with the same
``gen_ai.operation.name`` (chat, text_completion, generate_content, embeddings or
execute_tool). ``setup(stacked_spans="keep")`` or ``SPANHOOKS_STACKED_SPANS=keep`` chooses.

Threading: ``on_start`` and ``on_end`` run in the threads that start and end spans; the table
of stacked pairs is a dict written and popped once per pair (atomic under the GIL), read only
for spans whose parent is in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span

from spanhooks.events.scope import event_set_of
from spanhooks.tracing.spans import FRAME_KEY, Frame
from spanhooks.util.readable import replaced

__all__ = ["STACKED_ATTRIBUTE", "STACKED_MODES", "STACKED_SCOPE_ATTRIBUTE", "StackedSpans"]

STACKED_ATTRIBUTE = "spanhooks.stacked"
"""``merged`` or ``outer`` on spanhooks' span of a stacked call, ``inner`` on the other."""
STACKED_SCOPE_ATTRIBUTE = "spanhooks.stacked.scope"
"""The instrumentation scope of the span merged into this one."""
STACKED_MODES = ("merge", "keep")

_CALLS = frozenset({"chat", "text_completion", "generate_content", "embeddings", "execute_tool"})
_KEEP_OUTER = frozenset({"gen_ai.operation.name", STACKED_ATTRIBUTE, STACKED_SCOPE_ATTRIBUTE})


class StackedSpans:
    """Finds the stacked pairs as spans start and, in ``merge`` mode, folds the inner span
    into the outer one as it ends (see the module docstring)."""

    def __init__(self, mode: str = "merge") -> None:
        if mode not in STACKED_MODES:
            raise ValueError(f"stacked_spans must be one of {', '.join(STACKED_MODES)}: {mode!r}")
        self.mode = mode
        self.merging = mode == "merge"
        # inner span id -> the outer span it merges into, until the outer ends (the inner's
        # children, which end before it, are re-parented through it too)
        self._outer: dict[int, Span] = {}

    def on_start(self, span: Span, parent_context: Context | None) -> bool:
        """Note ``span`` if it stacks on a spanhooks span; True if it is to be merged (setup's
        processors then never see it)."""
        # Cheapest first: most spans start outside any spanhooks model or tool call, and that
        # is one context read each (the open call's frame sits in its context).
        context = parent_context if parent_context is not None else otel_context.get_current()
        frame = context.get(FRAME_KEY)
        if not isinstance(frame, Frame) or frame.ended or event_set_of(span) is not None:
            return False
        parent = frame.span
        if trace.get_current_span(context) is not parent or not isinstance(parent, Span):
            return False  # not a direct child (an HTTP span under the client's, say)
        operation = frame.spec.operation or (parent.attributes or {}).get("gen_ai.operation.name")
        if operation not in _CALLS or _operation(span.attributes, span.name) != operation:
            return False
        if not self.merging:
            parent.set_attribute(STACKED_ATTRIBUTE, "outer")
            span.set_attribute(STACKED_ATTRIBUTE, "inner")
            return False
        self._outer[span.context.span_id] = parent
        parent.set_attribute(STACKED_ATTRIBUTE, "merged")
        return True

    def on_end(self, span: ReadableSpan) -> ReadableSpan | None:
        """``span`` as setup's processors are to see it: None for a merged inner span (its
        attributes now on the outer one), a child of one re-parented to the outer span, else
        ``span`` itself (one emptiness check while no call is stacked)."""
        if not self._outer:
            return span
        if self._absorbs(span):
            return None
        span = self._reparented(span)
        self._forget(span)
        return span

    def _absorbs(self, span: ReadableSpan) -> bool:
        """Whether ``span`` (ended) is merged into its outer span, which it is now."""
        if not self._outer:
            return False
        context = span.context
        outer = self._outer.get(context.span_id) if context is not None else None
        if outer is None:
            return False
        if outer.is_recording():
            attributes = {
                key: value
                for key, value in (span.attributes or {}).items()
                if key not in _KEEP_OUTER
            }
            attributes[STACKED_SCOPE_ATTRIBUTE] = _scope_name(span)
            outer.set_attributes(attributes)
            for event in span.events:
                outer.add_event(event.name, event.attributes, event.timestamp)
        return True

    def _reparented(self, span: ReadableSpan) -> ReadableSpan:
        """``span`` with a merged span's place as parent taken by the outer span."""
        parent = span.parent
        if parent is None or not self._outer:
            return span
        outer = self._outer.get(parent.span_id)
        if outer is None:
            return span
        return replaced(span, parent=outer.get_span_context())

    def _forget(self, span: ReadableSpan) -> None:
        """Drop the pairs whose outer span ``span`` is, now that it ended."""
        context = span.context
        if self._outer and context and (span.attributes or {}).get(STACKED_ATTRIBUTE) == "merged":
            for inner, outer in list(self._outer.items()):
                if outer.get_span_context().span_id == context.span_id:
                    self._outer.pop(inner, None)


def _operation(attributes: Mapping[str, Any] | None, name: str) -> str | None:
    operation = (attributes or {}).get("gen_ai.operation.name")
    if operation is None:  # set after start by some instrumentations: the name's first word
        operation = name.split(" ", 1)[0]
    return operation if operation in _CALLS else None


def _scope_name(span: ReadableSpan) -> str:
    scope = span.instrumentation_scope
    return scope.name if scope is not None else "unknown"
