"""Zero-code start: an OpenTelemetry ``BaseInstrumentor`` that runs :func:`spanhooks.setup`.

Installed with spanhooks, it is found through the ``opentelemetry_instrumentor`` entry point, so
``opentelemetry-instrument python app.py`` (from the ``opentelemetry-instrumentation`` package)
configures spanhooks from the environment: the standard ``OTEL_*`` variables plus
``SPANHOOKS_*`` (see :func:`spanhooks.setup`). It attaches to a TracerProvider that a distro or
configurator set up first, and builds one otherwise. ``python -m spanhooks run app.py`` does
the same without that package.

One more instrumentor per framework integration (entry points ``spanhooks-langchain``,
``spanhooks-dspy``..., see :mod:`spanhooks.integrations.installed`) traces that framework when
it is installed; ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=spanhooks-langchain`` turns one off.

This module needs ``opentelemetry-instrumentation`` (``pip install 'spanhooks[instrument]'``);
``import spanhooks`` does not.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from spanhooks.integrations.installed import instrument_integration, uninstrument_integration
from spanhooks.lifecycle.setup import Telemetry, setup, uninstall

__all__ = [
    "DSPyInstrumentor",
    "LangChainInstrumentor",
    "LlamaIndexInstrumentor",
    "LlmprocInstrumentor",
    "LogillmInstrumentor",
    "McpInstrumentor",
    "OpenAIAgentsInstrumentor",
    "SpanhooksInstrumentor",
]

_SETUP_OPTIONS = frozenset(inspect.signature(setup).parameters)


class SpanhooksInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """``instrument(**options)`` calls ``setup(**options)``; ``uninstrument()`` undoes it.

    Options are :func:`spanhooks.setup`'s keyword arguments; others (such as
    ``skip_dep_check`` from ``opentelemetry-instrument``) are ignored. A singleton, like every
    ``BaseInstrumentor``: instrumenting twice is a no-op. Call from the main thread, so that
    the SIGTERM flush handler can be installed.
    """

    telemetry: Telemetry | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()  # spanhooks instruments no third-party library: it is the pipeline

    def _instrument(self, **kwargs: Any) -> None:
        options = {key: value for key, value in kwargs.items() if key in _SETUP_OPTIONS}
        self.telemetry = setup(**options)
        if self.telemetry.jsonl_path is not None:
            print(
                f"spanhooks: writing spans to {self.telemetry.jsonl_path.resolve()}",
                file=sys.stderr,
            )

    def _uninstrument(self, **kwargs: Any) -> None:
        telemetry, self.telemetry = self.telemetry, None
        if telemetry is not None:
            uninstall(telemetry)


class _IntegrationInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Turns one :mod:`spanhooks.integrations` module on, if its framework is installed and
    ``SPANHOOKS_DISABLED_INTEGRATIONS`` does not name it. A framework that is missing or of an
    unsupported version is skipped with one log line: ``opentelemetry-instrument`` goes on.
    Subclasses only name their integration (each is its own singleton)."""

    integration = ""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()  # checked in _instrument, so that a missing framework is skipped, not an error

    def _instrument(self, **kwargs: Any) -> None:
        instrument_integration(self.integration, on_import=True)

    def _uninstrument(self, **kwargs: Any) -> None:
        uninstrument_integration(self.integration)


class LlmprocInstrumentor(_IntegrationInstrumentor):
    """``spanhooks-llmproc``: :mod:`spanhooks.integrations.llmproc`."""

    integration = "llmproc"


class LogillmInstrumentor(_IntegrationInstrumentor):
    """``spanhooks-logillm``: :mod:`spanhooks.integrations.logillm`."""

    integration = "logillm"


class LangChainInstrumentor(_IntegrationInstrumentor):
    """``spanhooks-langchain``: :mod:`spanhooks.integrations.langchain`."""

    integration = "langchain"


class LlamaIndexInstrumentor(_IntegrationInstrumentor):
    """``spanhooks-llamaindex``: :mod:`spanhooks.integrations.llamaindex`."""

    integration = "llamaindex"


class OpenAIAgentsInstrumentor(_IntegrationInstrumentor):
    """``spanhooks-openai-agents``: :mod:`spanhooks.integrations.openai_agents`."""

    integration = "openai_agents"


class DSPyInstrumentor(_IntegrationInstrumentor):
    """``spanhooks-dspy``: :mod:`spanhooks.integrations.dspy`."""

    integration = "dspy"


class McpInstrumentor(_IntegrationInstrumentor):
    """``spanhooks-mcp``: :mod:`spanhooks.integrations.mcp`."""

    integration = "mcp"
