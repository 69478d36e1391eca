"""Evaluations: ``spanhooks.evaluate(...)`` records the conventions' evaluation result on the
call it judges, while its span records or after it ended (in another process too), and counts
it on /metrics by name and label."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import spanhooks
from spanhooks import read_spans
from spanhooks.metrics.families import install_collector
from spanhooks.testing import Capture, capture

VERDICT = {
    "gen_ai.evaluation.name": "relevance",
    "gen_ai.evaluation.score.value": 0.8,
    "gen_ai.evaluation.score.label": "relevant",
    "gen_ai.evaluation.explanation": "cites the retrieved document",
}


@pytest.fixture
def cap() -> Any:
    with capture() as cap:
        yield cap


def _verdict(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "relevance",
        "score": 0.8,
        "label": "relevant",
        "explanation": "cites the retrieved document",
        **overrides,
    }


def test_a_recording_span_gets_the_evaluation_result_event(cap: Capture) -> None:
    with cap.tracer.start_as_current_span("chat gpt-4o-mini"):
        spanhooks.evaluate(**_verdict())

    (event,) = cap.span("chat gpt-4o-mini").events
    assert event.name == "gen_ai.evaluation.result"
    assert dict(event.attributes or {}) == VERDICT


def test_an_ended_span_gets_a_child_evaluation_span(cap: Capture) -> None:
    with cap.tracer.start_as_current_span("chat gpt-4o-mini") as judged:
        pass
    spanhooks.evaluate(judged, tracer_provider=cap.provider, **_verdict(score=1))

    child = cap.span("evaluation relevance")
    assert child.parent is not None
    assert child.parent.span_id == judged.get_span_context().span_id
    assert child.context.trace_id == judged.get_span_context().trace_id
    assert [event.name for event in child.events] == ["gen_ai.evaluation.result"]
    assert dict(child.attributes or {})["gen_ai.evaluation.score.value"] == 1.0


def test_another_process_can_evaluate_a_call_by_its_ids(tmp_path: Path) -> None:
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    path = tmp_path / "feedback.jsonl"
    code = textwrap.dedent(
        f"""
        import spanhooks
        spanhooks.setup(jsonl_path={str(path)!r})
        spanhooks.evaluate(({trace_id!r}, {span_id!r}), name="thumbs", label="up")
        spanhooks.shutdown()
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    (span,) = read_spans(path).spans
    assert (span["name"], span["trace_id"], span["parent_span_id"]) == (
        "evaluation thumbs",
        trace_id,
        span_id,
    )
    assert span["events"][0]["attributes"] == {
        "gen_ai.evaluation.name": "thumbs",
        "gen_ai.evaluation.score.label": "up",
    }


def test_each_result_is_counted_by_name_and_label(cap: Capture) -> None:
    registry = CollectorRegistry()
    install_collector(registry)
    labels = {"name": "helpfulness", "label": "none"}
    before = registry.get_sample_value("spanhooks_evaluations_total", labels) or 0.0

    with cap.tracer.start_as_current_span("answer"):
        spanhooks.evaluate(name="helpfulness", score=0.4)
        spanhooks.evaluate(name="helpfulness", score=0.9)

    assert registry.get_sample_value("spanhooks_evaluations_total", labels) == before + 2


@pytest.mark.parametrize(
    ("target", "kwargs", "error"),
    [
        (None, {"name": "relevance"}, ValueError),  # neither score nor label
        (None, {"name": "", "score": 1}, ValueError),
        (None, {"name": 3, "score": 1}, TypeError),
        (None, {"name": "relevance", "score": True}, TypeError),
        (None, {"name": "relevance", "score": float("nan")}, ValueError),
        (("xyz", "00f067aa0ba902b7"), {"name": "relevance", "score": 1}, ValueError),
        ((("0" * 32), ("0" * 16)), {"name": "relevance", "score": 1}, ValueError),
        ("not a span", {"name": "relevance", "score": 1}, TypeError),
    ],
)
def test_bad_arguments_are_refused_and_record_nothing(
    cap: Capture, target: Any, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with cap.tracer.start_as_current_span("answer"), pytest.raises(error):
        spanhooks.evaluate(target, tracer_provider=cap.provider, **kwargs)

    assert cap.span("answer").events == ()
    assert [span.name for span in cap.spans()] == ["answer"]


def test_no_current_span_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no span is current"):
        spanhooks.evaluate(name="relevance", score=1)
