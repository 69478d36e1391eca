"""OpusAgent's callback systems (seed 000) at one import path, with the seed's semantics.

The seed's code changes only its imports: every ``from opusagent.handlers.error_handler``,
``opusagent.models.session_state``, ``opusagent.handlers.polling_manager``,
``opusagent.handlers.resource_manager``, ``opusagent.handlers.event_router`` and
``opusagent.handlers.health_monitor`` import becomes ``from spanhooks.compat.opusagent import
...``. The names are spanhooks' own operations subsystems (:mod:`spanhooks.ops`), so every
callback runs through the one dispatch core and every subsystem shows up in traces and on
``/metrics``; the process-wide ``get_*()`` instances are the same ones ``spanhooks.ops`` uses.

What differs from ``spanhooks.ops``, and why:

- :func:`handle_error` is a coroutine function, as the seed's is (its usage is ``await
  handle_error(...)``): it awaits async handlers one after another by priority, and returns
  the :class:`ErrorInfo`. ``spanhooks.ops.handle_error`` is the synchronous form. Like the
  seed's, it also takes the metadata as keyword arguments (``operation=..., attempt=2``).
- Everything else already has the seed's call shapes and semantics in ``spanhooks.ops``:
  ``ResourceManager.managed_resource`` works under ``async with`` (and ``with``), the
  configuration options of the seed's constructors are accepted (``ErrorHandler(logger=)``,
  ``HealthMonitor(alert_debounce_seconds=, history_retention_hours=)``,
  ``ResourceManager(max_workers=)``), and a higher ``priority`` runs first everywhere (error
  handlers, status callbacks, router handlers and middleware), the order the seed's examples
  use (``priority=100`` "primary" before ``priority=50`` "secondary"); cleanups run CRITICAL
  first and newest first within a priority (the seed's LIFO).

Threading contract: that of each subsystem (see :mod:`spanhooks.ops`): registering is safe from
any thread; handlers, status callbacks and router handlers run in the calling thread or task;
polling tasks and health checks run on their manager's pool; cleanups run in the thread that
triggers them (at exit, on SIGTERM, when a managed block ends), and a synchronous cleanup ending
an ``async with`` runs on the resource manager's pool of ``max_workers`` threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spanhooks.ops.errors import (
    ErrorContext,
    ErrorHandler,
    ErrorInfo,
    ErrorSeverity,
    get_error_handler,
    register_error_handler,
)
from spanhooks.ops.health import (
    Alert,
    AlertSeverity,
    HealthMonitor,
    HealthStatus,
    get_health_monitor,
    register_health_check,
)
from spanhooks.ops.polling import PollingManager, get_polling_manager, register_polling_task
from spanhooks.ops.resources import (
    CleanupPriority,
    ResourceManager,
    ResourceType,
    get_resource_manager,
    register_cleanup,
)
from spanhooks.ops.router import EventRouter
from spanhooks.ops.session import SessionState, SessionStatus

__all__ = [
    "Alert",
    "AlertSeverity",
    "CleanupPriority",
    "ErrorContext",
    "ErrorHandler",
    "ErrorInfo",
    "ErrorSeverity",
    "EventRouter",
    "HealthMonitor",
    "HealthStatus",
    "PollingManager",
    "ResourceManager",
    "ResourceType",
    "SessionState",
    "SessionStatus",
    "get_error_handler",
    "get_health_monitor",
    "get_polling_manager",
    "get_resource_manager",
    "handle_error",
    "register_cleanup",
    "register_error_handler",
    "register_health_check",
    "register_polling_task",
]


async def handle_error(
    error: BaseException,
    context: ErrorContext | str = ErrorContext.UNKNOWN,
    severity: ErrorSeverity | str = ErrorSeverity.MEDIUM,
    operation: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    **more_metadata: Any,
) -> ErrorInfo:
    """The seed's ``await handle_error(...)`` on the process-wide :class:`ErrorHandler`:
    records the error on the current span (or a ``handle_error {context}`` span of its own),
    counts it and awaits the handlers for its context and the all-context ones by priority.
    Keyword arguments beyond the named ones are metadata, as in the seed."""
    merged = {**(metadata or {}), **more_metadata} if more_metadata else metadata
    handler = get_error_handler()
    return await handler.handle_error_async(error, context, severity, operation, merged)
