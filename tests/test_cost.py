"""Cost: every model-call span with token usage gets its price in USD as it ends, from the
user's table or genai-prices, and /metrics counts cost and unpriced calls by provider and
model."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanhooks import read_spans
from spanhooks.lifecycle.pipeline import Pipeline
from spanhooks.metrics.cost import COST_ATTRIBUTE, Prices

TABLE = {"claude-demo": {"input": 3.0, "output": 15.0}, "acme/tiny": {"input": 1.0, "output": 2.0}}


def _call(prices: Prices, **attributes: Any) -> dict[str, Any]:
    """One model-call span, as an instrumentation would record it, through a real pipeline."""
    exporter = InMemorySpanExporter()
    pipeline = Pipeline(prices)
    pipeline.processors = (SimpleSpanProcessor(exporter),)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(pipeline)
    with provider.get_tracer("an.instrumentation").start_as_current_span("chat") as span:
        span.set_attributes({"gen_ai.operation.name": "chat", **attributes})
    (finished,) = exporter.get_finished_spans()
    return dict(finished.attributes or {})


def test_the_users_table_prices_a_call_per_million_tokens() -> None:
    attributes = _call(
        Prices(TABLE),
        **{
            "gen_ai.request.model": "claude-demo",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 200,
        },
    )
    assert attributes[COST_ATTRIBUTE] == pytest.approx(1000 * 3e-6 + 200 * 15e-6)


def test_a_provider_qualified_entry_matches_that_provider_only() -> None:
    usage = {"gen_ai.usage.input_tokens": 1_000_000, "gen_ai.usage.output_tokens": 0}
    prices = Prices(TABLE, use_genai_prices=False)
    ours = _call(
        prices, **{"gen_ai.provider.name": "acme", "gen_ai.request.model": "tiny"}, **usage
    )
    other = _call(
        prices, **{"gen_ai.provider.name": "other", "gen_ai.request.model": "tiny"}, **usage
    )
    assert ours[COST_ATTRIBUTE] == pytest.approx(1.0)
    assert COST_ATTRIBUTE not in other


def test_genai_prices_prices_what_the_table_does_not_name() -> None:
    pytest.importorskip("genai_prices")
    attributes = _call(
        Prices(TABLE),
        **{
            "gen_ai.provider.name": "openai",
            "gen_ai.response.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 100,
        },
    )
    assert attributes[COST_ATTRIBUTE] == pytest.approx(1000 * 0.15e-6 + 100 * 0.6e-6)


def test_an_unknown_model_costs_nothing_and_spans_without_usage_are_left_alone() -> None:
    prices = Prices(TABLE)
    unknown = _call(
        prices, **{"gen_ai.request.model": "made-up-model-9", "gen_ai.usage.input_tokens": 5}
    )
    no_usage = _call(prices, **{"gen_ai.request.model": "claude-demo"})
    assert COST_ATTRIBUTE not in unknown
    assert COST_ATTRIBUTE not in no_usage


@pytest.mark.parametrize(
    "table",
    [
        {"m": {"input": -1.0}},
        {"m": {"input": float("inf")}},
        {"m": {"inputs": 1.0}},
        {"m": {}},
        {"m": 3.0},
        {"": {"input": 1.0}},
        {"m": {"input": True}},
    ],
)
def test_a_bad_price_table_is_refused_at_setup(table: Any) -> None:
    import spanhooks

    with pytest.raises(ValueError, match="price"):
        spanhooks.setup(prices=table)


COST_APP = """
import spanhooks
from prometheus_client import CollectorRegistry, generate_latest
registry = CollectorRegistry()
spanhooks.setup(jsonl_path={path!r}, registry=registry, prices={table!r})
for model in ("claude-demo", "claude-demo", "nobody-prices-this"):
    call = spanhooks.emit("llm_start", model, {{}}, "anthropic", "chat")
    spanhooks.emit("llm_end", model, {{"usage": {{"input_tokens": 100, "output_tokens": 10}}}},
                   None, call_id=call)
spanhooks.force_flush()
print(generate_latest(registry).decode())
spanhooks.shutdown()
"""


def _run_app(tmp_path: Path, **env: str) -> tuple[str, list[dict[str, Any]]]:
    path = tmp_path / "calls.jsonl"
    code = textwrap.dedent(COST_APP.format(path=str(path), table=TABLE))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, read_spans(path).spans


def test_setup_prices_every_model_span_and_counts_cost_on_metrics(tmp_path: Path) -> None:
    scrape, spans = _run_app(tmp_path)

    costs = [span["attributes"].get(COST_ATTRIBUTE) for span in spans]
    assert costs == [pytest.approx(100 * 3e-6 + 10 * 15e-6)] * 2 + [None]
    assert (
        'spanhooks_genai_cost_usd_total{model="claude-demo",provider="anthropic"} 0.0009' in scrape
    )
    assert (
        'spanhooks_genai_unpriced_calls_total{model="nobody-prices-this",provider="anthropic"} 1.0'
        in scrape
    )


def test_spanhooks_cost_false_turns_pricing_off(tmp_path: Path) -> None:
    _, spans = _run_app(tmp_path, SPANHOOKS_COST="false")
    assert [COST_ATTRIBUTE in span["attributes"] for span in spans] == [False] * 3
