"""Which version of the GenAI conventions' names spanhooks emits: ``OTEL_SEMCONV_STABILITY_OPT_IN``.

OpenTelemetry's instrumentations read this comma-separated variable once, at instrumentation
time; for GenAI the only value they define is ``gen_ai_latest_experimental`` (emit the latest
experimental GenAI conventions, and not the older ones). Their default, the variable unset, is
to keep emitting whatever the instrumentation emitted before. spanhooks has emitted the latest
names from the start (``gen_ai.provider.name``, ``gen_ai.usage.cache_read.input_tokens``...),
so its default is :attr:`GenAINames.LATEST`, and ``gen_ai_latest_experimental`` selects the
same. (opentelemetry-util-genai 1.1b0, and so opentelemetry-instrumentation-openai-v2 2.4b0,
report the latest names whatever the variable says: ``is_experimental_mode()`` returns True.)

``gen_ai/dup`` is spanhooks' own value, after ``http/dup`` and ``database/dup``: emit the latest
names and the older ones beside them, for dashboards and queries written against the older
conventions. It applies to the only rename that reaches what spanhooks emits from the metrics
processor: ``gen_ai.system`` next to ``gen_ai.provider.name`` on the GenAI client metrics
(``gen_ai_system`` next to ``gen_ai_provider_name`` on ``/metrics``). The cache-token
attributes have had one name in every released convention (the dotted
``gen_ai.usage.cache_read.input_tokens`` and ``gen_ai.usage.cache_creation.input_tokens``), so
there is no older name to duplicate. As in the OpenTelemetry instrumentations, a ``/dup``
value wins over the plain one when both are given.

Read the variable once, when a component is set up (:class:`~spanhooks.GenAIMetricsProcessor`
reads it in its constructor), never per span: changing it later affects components created
later. :func:`genai_names` is a pure read of the environment, safe from any thread.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import Enum

from spanhooks.util.log import logger

__all__ = [
    "GEN_AI_DUP",
    "GEN_AI_LATEST_EXPERIMENTAL",
    "OPT_IN_ENV",
    "RENAMED",
    "GenAINames",
    "genai_names",
]

OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
GEN_AI_LATEST_EXPERIMENTAL = "gen_ai_latest_experimental"
"""OpenTelemetry's value: the latest experimental GenAI conventions only (spanhooks' default)."""
GEN_AI_DUP = "gen_ai/dup"
"""spanhooks' value: the latest names and, beside them, the older ones (see :data:`RENAMED`)."""

RENAMED = (("gen_ai.provider.name", "gen_ai.system"),)
"""``(latest name, older name)`` of every renamed attribute spanhooks emits both of in
:attr:`GenAINames.DUP` mode."""


class GenAINames(str, Enum):
    """The GenAI attribute names to emit."""

    LATEST = "latest"
    """The latest experimental conventions only (``gen_ai_latest_experimental``, or unset)."""
    DUP = "dup"
    """The latest names and the older names of :data:`RENAMED` (``gen_ai/dup``)."""


def genai_names(environ: Mapping[str, str] | None = None) -> GenAINames:
    """The mode ``OTEL_SEMCONV_STABILITY_OPT_IN`` selects (in ``environ``, default the process
    environment); values for other signals (``http``, ``database/dup``...) are ignored, and an
    unknown ``gen_ai`` value is logged and ignored."""
    raw = (os.environ if environ is None else environ).get(OPT_IN_ENV, "")
    values = {value.strip() for value in raw.split(",") if value.strip()}
    for value in values - {GEN_AI_DUP, GEN_AI_LATEST_EXPERIMENTAL}:
        if value.startswith("gen_ai"):
            logger.warning(
                "ignoring %s value %r: expected %s or %s",
                OPT_IN_ENV,
                value,
                GEN_AI_LATEST_EXPERIMENTAL,
                GEN_AI_DUP,
            )
    return GenAINames.DUP if GEN_AI_DUP in values else GenAINames.LATEST
