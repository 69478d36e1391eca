"""Instrumentation scopes: an event set's spans come from the tracer ``spanhooks.<set>``.

Downstream stages (exporters, metrics, the foreign-span bridge) tell spanhooks' spans apart
from other instrumentations' by this scope alone, so it lives beside the declarations.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["SCOPE_PREFIX", "event_set_of", "scope_name"]

SCOPE_PREFIX = "spanhooks."
"""An event set's spans come from the tracer ``spanhooks.<set>``: the scope names the set."""


def scope_name(event_set: str) -> str:
    """The instrumentation scope of ``event_set``'s spans."""
    return SCOPE_PREFIX + event_set


def event_set_of(span: ReadableSpan) -> str | None:
    """The spanhooks event set a finished span belongs to, or None for other instrumentations."""
    scope = span.instrumentation_scope
    name = scope.name if scope is not None else ""
    return name[len(SCOPE_PREFIX) :] if name.startswith(SCOPE_PREFIX) else None
