"""What each model call cost: from its token usage and a price table, as a span attribute and
as Prometheus counters.

:class:`Prices` looks a call up by provider and model: first in the table the user gives
(US dollars per million tokens, ``{"gpt-4o-mini": {"input": 0.15, "output": 0.6}}``, keys
``model`` or ``provider/model``), then, when it is installed, in the maintained table of
``genai-prices`` (``pip install 'spanhooks[cost]'``). :func:`priced` runs in ``setup()``'s
pipeline as each span ends, before any processor or exporter sees it: a model-call span (any
instrumentation's, with the conventions' token counts) gets ``gen_ai.usage.cost`` (USD), and
``spanhooks_genai_cost_usd_total{provider,model}`` grows by it; a call no table prices costs
nothing and counts in ``spanhooks_genai_unpriced_calls_total{provider,model}``.

Threading: :func:`priced` runs in whichever thread ends the span; lookups are cached and the
counts take a short lock, off the emit path (span end).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import threading
from collections.abc import Iterable, Mapping

from opentelemetry.sdk.trace import ReadableSpan
from prometheus_client.core import Metric

from spanhooks.metrics.families import (
    GENAI_COST_USD,
    GENAI_UNPRICED_CALLS,
    counter,
    register_source,
)
from spanhooks.util.readable import replaced

__all__ = ["COST_ATTRIBUTE", "Prices", "priced"]

COST_ATTRIBUTE = "gen_ai.usage.cost"
"""The call's cost in US dollars (the name Langfuse and OpenLLMetry read; the conventions have
none yet)."""

_MODEL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
_PER_TOKEN = 1e-6  # table prices are per million tokens
_KINDS = ("input", "output", "cache_read")


class Prices:
    """A price lookup: ``table`` first, then ``genai-prices`` if installed and
    ``use_genai_prices``. Raises ValueError at once for a table entry that is not a mapping of
    ``input`` / ``output`` / ``cache_read`` to non-negative numbers."""

    def __init__(
        self,
        table: Mapping[str, Mapping[str, float]] | None = None,
        *,
        use_genai_prices: bool = True,
    ) -> None:
        self.table: dict[str, dict[str, float]] = {}
        for key, entry in (table or {}).items():
            if not isinstance(key, str) or not key or not isinstance(entry, Mapping):
                raise ValueError(f"price table entries are 'model': {{'input': ...}}; got {key!r}")
            unknown = set(entry) - set(_KINDS)
            if unknown or not entry:
                raise ValueError(f"price of {key!r}: give input, output, cache_read; got {entry!r}")
            for kind, price in entry.items():
                if (
                    isinstance(price, bool)
                    or not isinstance(price, int | float)
                    or not math.isfinite(price)
                    or price < 0
                ):
                    raise ValueError(f"price of {key!r} {kind}: a number >= 0, got {price!r}")
            self.table[key] = {kind: float(price) for kind, price in entry.items()}
        self.use_genai_prices = (
            use_genai_prices and importlib.util.find_spec("genai_prices") is not None
        )
        self._lookup = functools.lru_cache(maxsize=1024)(self._find)

    def cost(
        self,
        provider: str | None,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
    ) -> float | None:
        """The call's cost in USD, or None if no table knows ``model``."""
        found = self._lookup(provider, model)
        if found is None:
            return None
        if isinstance(found, dict):
            uncached = max(0, input_tokens - cache_read_tokens)
            cache_price = found.get("cache_read", found.get("input", 0.0))
            return _PER_TOKEN * (
                uncached * found.get("input", 0.0)
                + cache_read_tokens * cache_price
                + output_tokens * found.get("output", 0.0)
            )
        return _genai_price(found, provider, model, input_tokens, output_tokens, cache_read_tokens)

    def _find(self, provider: str | None, model: str) -> dict[str, float] | str | None:
        for key in (f"{provider}/{model}" if provider else None, model):
            if key is not None and key in self.table:
                return self.table[key]
        if self.use_genai_prices and _genai_price(model, provider, model, 1, 1, 0) is not None:
            return model
        return None


def _genai_price(
    model_ref: str,
    provider: str | None,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int,
) -> float | None:
    from genai_prices import Usage, calc_price

    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens or None,
    )
    try:
        return float(calc_price(usage, model_ref=model_ref, provider_id=provider).total_price)
    except (LookupError, ValueError):
        try:  # a provider name the table spells otherwise ("gcp.gemini"): by model alone
            return float(calc_price(usage, model_ref=model_ref).total_price)
        except (LookupError, ValueError):
            return None


def priced(span: ReadableSpan, prices: Prices) -> ReadableSpan:
    """``span`` with its cost as ``gen_ai.usage.cost`` if it is a model call with token usage
    that ``prices`` knows (counted either way); else ``span`` itself."""
    attributes = span.attributes
    if not attributes or attributes.get("gen_ai.operation.name") not in _MODEL_OPERATIONS:
        return span
    input_tokens = attributes.get("gen_ai.usage.input_tokens")
    output_tokens = attributes.get("gen_ai.usage.output_tokens", 0)
    model = attributes.get("gen_ai.response.model") or attributes.get("gen_ai.request.model")
    if (
        not isinstance(input_tokens, int)
        or not isinstance(model, str)
        or COST_ATTRIBUTE in attributes
        or attributes.get("spanhooks.stacked") == "outer"  # the inner span is the call
    ):
        return span
    provider = attributes.get("gen_ai.provider.name") or attributes.get("gen_ai.system")
    provider = provider if isinstance(provider, str) else None
    cache_read = attributes.get("gen_ai.usage.cache_read.input_tokens") or attributes.get(
        "gen_ai.usage.cache_read_input_tokens", 0
    )
    cost = prices.cost(
        provider,
        model,
        input_tokens,
        output_tokens if isinstance(output_tokens, int) else 0,
        cache_read if isinstance(cache_read, int) else 0,
    )
    _counts.add(provider or "unknown", model, cost)
    if cost is None:
        return span
    return replaced(span, attributes={**(span.attributes or {}), COST_ATTRIBUTE: cost})


class _Counts:
    """Cost and unpriced calls in this process, by provider and model."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cost: dict[tuple[str, str], float] = {}
        self._unpriced: dict[tuple[str, str], int] = {}
        register_source(self)

    def add(self, provider: str, model: str, cost: float | None) -> None:
        key = (provider, model)
        with self._lock:
            if cost is None:
                self._unpriced[key] = self._unpriced.get(key, 0) + 1
            else:
                self._cost[key] = self._cost.get(key, 0.0) + cost

    def metric_families(self) -> Iterable[Metric]:
        with self._lock:
            cost, unpriced = list(self._cost.items()), list(self._unpriced.items())
        yield counter(GENAI_COST_USD, cost)
        yield counter(GENAI_UNPRICED_CALLS, unpriced)


_counts = _Counts()
