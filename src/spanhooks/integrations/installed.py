"""Zero-code activation: every supported framework that is installed, traced at once.

``spanhooks run app.py`` calls :func:`instrument_installed`; ``opentelemetry-instrument`` finds
one ``opentelemetry_instrumentor`` entry point per integration (``spanhooks-langchain``...,
see :mod:`spanhooks.instrumentation`). Both skip what the environment turns off:
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` with the entry points' names (or ``*``), or
``SPANHOOKS_DISABLED_INTEGRATIONS`` with the integrations' short names (``langchain,dspy``).

Whether a framework is installed is read from its distribution's metadata, and an installed
framework is instrumented when the program first imports it (:mod:`spanhooks.util.post_import`),
so a program pays only for the frameworks it uses. A framework of a version the integration does
not support is skipped with one warning line; it never stops the program.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import threading
from types import ModuleType

from spanhooks.callbacks.manager import CallbackManager
from spanhooks.util.log import logger
from spanhooks.util.post_import import cancel, when_imported

__all__ = [
    "ENTRY_POINT_PREFIX",
    "FRAMEWORK_MODULES",
    "INTEGRATIONS",
    "disabled_integrations",
    "entry_point_name",
    "instrument_installed",
    "instrument_integration",
    "integration_module",
    "is_installed",
    "uninstrument_all",
    "uninstrument_integration",
]

INTEGRATIONS: dict[str, str] = {
    "llmproc": "llmproc",
    "logillm": "logillm",
    "langchain": "langchain-core",
    "llamaindex": "llama-index-core",
    "openai_agents": "openai-agents",
    "dspy": "dspy",
    "mcp": "mcp",
}
"""Each integration's short name (its module in :mod:`spanhooks.integrations`) and the
distribution whose presence turns it on."""

FRAMEWORK_MODULES: dict[str, str] = {
    "llmproc": "llmproc",
    "logillm": "logillm",
    "langchain": "langchain_core",
    "llamaindex": "llama_index.core",
    "openai_agents": "agents",
    "dspy": "dspy",
    "mcp": "mcp",
}
"""The module whose first import instruments each integration's framework (zero code)."""

ENTRY_POINT_PREFIX = "spanhooks-"
"""``opentelemetry_instrumentor`` entry point names are this prefix and the short name, with
``_`` as ``-`` (``spanhooks-openai-agents``)."""


def entry_point_name(integration: str) -> str:
    """The ``opentelemetry_instrumentor`` entry point name of ``integration``."""
    return ENTRY_POINT_PREFIX + integration.replace("_", "-")


def disabled_integrations() -> frozenset[str]:
    """The short names the environment turns off (``*`` in the OpenTelemetry variable: all)."""
    otel = _names("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS")
    if "*" in otel:
        return frozenset(INTEGRATIONS)
    own = _names("SPANHOOKS_DISABLED_INTEGRATIONS")
    return frozenset(name for name in INTEGRATIONS if name in own or entry_point_name(name) in otel)


def is_installed(integration: str) -> bool:
    """Whether ``integration``'s framework is installed (read from metadata, not imported)."""
    try:
        importlib.metadata.distribution(INTEGRATIONS[integration])
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def integration_module(integration: str) -> ModuleType:
    """The module of ``integration`` (``spanhooks.integrations.<name>``); the framework itself
    is imported only when the module's ``instrument()`` runs."""
    if integration not in INTEGRATIONS:
        known = ", ".join(INTEGRATIONS)
        raise ValueError(f"unknown integration {integration!r}; known: {known}")
    return importlib.import_module(f"spanhooks.integrations.{integration}")


def instrument_installed(manager: CallbackManager | None = None) -> dict[str, str]:
    """Trace every installed, not disabled framework, emitting on ``manager`` (default: the
    process-wide one), each from the moment the program imports it; returns each integration's
    outcome (see :func:`instrument_integration`). Never raises for a framework's sake. Call
    once at start-up."""
    if manager is not None and not isinstance(manager, CallbackManager):
        raise TypeError(f"manager must be a CallbackManager, got {manager!r}")
    return {name: instrument_integration(name, manager, on_import=True) for name in INTEGRATIONS}


def instrument_integration(
    name: str, manager: CallbackManager | None = None, *, on_import: bool = False
) -> str:
    """Instrument one framework unless disabled or absent: ``"instrumented"``, ``"disabled"``,
    ``"not installed"``, ``"on import"`` (``on_import`` and the framework not imported yet: it
    is instrumented right after its first import), or the one-line reason it was skipped (an
    unsupported version, a framework that fails to import), which is also logged as a
    warning. Raises ValueError for a name that is not one of :data:`INTEGRATIONS`."""
    module = integration_module(name)
    if name in disabled_integrations():
        return "disabled"
    if not is_installed(name):
        return "not installed"
    if on_import:
        hook = _Pending(name, manager)
        with _pending_lock:
            _pending[name] = hook
        if not when_imported(FRAMEWORK_MODULES[name], hook):
            return "on import"
        return hook.outcome
    try:
        module.instrument(manager)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        logger.warning("spanhooks: not tracing %s: %s", name, reason)
        return reason
    return "instrumented"


def uninstrument_integration(name: str) -> None:
    """Undo :func:`instrument_integration` for ``name``, waiting for its import or not."""
    module = integration_module(name)
    with _pending_lock:
        hook = _pending.pop(name, None)
    if hook is not None:
        cancel(FRAMEWORK_MODULES[name], hook)
    if module.is_instrumented():
        module.uninstrument()


def uninstrument_all() -> None:
    """Undo :func:`instrument_installed` (and any integration's own ``instrument()``)."""
    for name in INTEGRATIONS:
        uninstrument_integration(name)


class _Pending:
    """An integration waiting for its framework's first import."""

    def __init__(self, name: str, manager: CallbackManager | None) -> None:
        self.name = name
        self.manager = manager
        self.outcome = "on import"

    def __call__(self, framework: ModuleType) -> None:
        with _pending_lock:
            _pending.pop(self.name, None)
        self.outcome = instrument_integration(self.name, self.manager)


_pending_lock = threading.Lock()
_pending: dict[str, _Pending] = {}


def _names(variable: str) -> frozenset[str]:
    return frozenset(part.strip() for part in os.environ.get(variable, "").split(",") if part)
