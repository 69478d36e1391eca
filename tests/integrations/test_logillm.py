"""LogiLLM 0.2.17, run for real with its MockProvider, traced by one instrument() call.

A ``Predict`` module over a ``MockProvider``, the same module over a provider that always
fails (LogiLLM retries it, then the module raises), and a ``LabeledFewShot`` optimizer run
with a validation set (it evaluates the optimized and the baseline module). No network.
"""

from __future__ import annotations

import asyncio
import copy
import subprocess
import sys
from typing import Any

import pytest

pytest.importorskip("logillm", reason="logillm not installed: pip install 'spanhooks[logillm]'")

from logillm.core.callbacks import callback_manager
from logillm.core.predict import Predict
from logillm.optimizers.labeled_fewshot import LabeledFewShot
from logillm.providers.mock import MockProvider
from opentelemetry.trace import SpanKind, StatusCode

from spanhooks.integrations import logillm as traced
from spanhooks.testing import Capture, capture
from spanhooks.vocab.logillm import LogiLLMCallback

DATASET = [{"inputs": {"question": "2+2?"}, "outputs": {"answer": "4"}}]


def _module(**provider: Any) -> Predict:
    return Predict(
        "question -> answer", provider=MockProvider(response_text="answer: 4", **provider)
    )


def _exact(outputs: dict[str, Any], expected: dict[str, Any]) -> float:
    return float(outputs.get("answer") == expected.get("answer"))


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


class Recorder(LogiLLMCallback):
    """The seed's own typed-event callback, registered on spanhooks."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def on_module_start(self, event: Any) -> None:
        self.seen.append(("module_start", event))

    def on_module_end(self, event: Any) -> None:
        self.seen.append(("module_end", event))

    def on_provider_request(self, event: Any) -> None:
        self.seen.append(("provider_request", event))

    def on_provider_response(self, event: Any) -> None:
        self.seen.append(("provider_response", event))

    def on_provider_error(self, event: Any) -> None:
        self.seen.append(("provider_error", event))


def test_module_call_is_a_module_span_over_a_chat_span(cap: Capture, edges: Any) -> None:
    prediction = asyncio.run(_module()(question="2+2?"))

    assert prediction.outputs == {"answer": "4"}
    assert edges(cap) == [("module Predict", None), ("chat mock-model", "module Predict")]
    chat = cap.span("chat mock-model")
    assert chat.kind is SpanKind.CLIENT
    attributes = _attrs(chat)
    assert {
        key: attributes[key]
        for key in (
            "gen_ai.operation.name",
            "gen_ai.provider.name",
            "gen_ai.request.model",
            "gen_ai.response.model",
            "gen_ai.response.finish_reasons",
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.output_tokens",
        )
    } == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "mock",
        "gen_ai.request.model": "mock-model",
        "gen_ai.response.model": "mock-model",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 5,
    }
    assert "gen_ai.input.messages" not in attributes  # content: off by default


def test_spans_carry_logillm_call_ids(cap: Capture) -> None:
    asyncio.run(_module()(question="2+2?"))

    module = _attrs(cap.span("module Predict"))
    chat = _attrs(cap.span("chat mock-model"))
    assert chat["logillm.parent_call_id"] == module["logillm.call_id"]
    assert "logillm.parent_call_id" not in module


def test_failing_provider_marks_chat_and_module_as_errors(cap: Capture, edges: Any) -> None:
    with pytest.raises(Exception, match="Module execution failed"):
        asyncio.run(_module(error_rate=1.0)(question="2+2?"))

    assert edges(cap) == [("module Predict", None)] + [("chat mock-model", "module Predict")] * 3
    for span in cap.spans():
        assert span.status.status_code is StatusCode.ERROR
        assert [event.name for event in span.events] == ["exception"]
    assert [_attrs(span)["error.type"] for span in cap.spans("chat mock-model")] == [
        "Exception"
    ] * 3
    assert _attrs(cap.span("module Predict"))["error.type"] == "logillm.exceptions.base.ModuleError"
    assert cap.manager.stats()["open_spans"] == 0


def test_optimizer_run_nests_evaluation_module_and_provider(cap: Capture, edges: Any) -> None:
    result = asyncio.run(
        LabeledFewShot(metric=_exact, max_demos=1).optimize(
            _module(), DATASET, validation_set=DATASET
        )
    )

    assert result.best_score == 1.0
    assert edges(cap) == [
        ("optimize LabeledFewShot", None),
        ("evaluate Predict", "optimize LabeledFewShot"),  # the optimized module
        ("module Predict", "evaluate Predict"),
        ("chat mock-model", "module Predict"),
        ("evaluate Predict", "optimize LabeledFewShot"),  # the baseline
        ("module Predict", "evaluate Predict"),
        ("chat mock-model", "module Predict"),
    ]
    optimize = _attrs(cap.span("optimize LabeledFewShot"))
    assert (
        optimize["logillm.optimizer"],
        optimize["logillm.dataset_size"],
        optimize["logillm.best_score"],
    ) == (
        "LabeledFewShot",
        1,
        1.0,
    )
    assert [_attrs(span)["logillm.score"] for span in cap.spans("evaluate Predict")] == [1.0, 1.0]


def test_spanhooks_callbacks_see_logillm_typed_events_with_call_ids(cap: Capture) -> None:
    recorder = Recorder()
    cap.manager.register(recorder)
    asyncio.run(_module()(question="2+2?"))
    with pytest.raises(Exception, match="Module execution failed"):
        asyncio.run(_module(error_rate=1.0)(question="2+2?"))

    names = [name for name, _ in recorder.seen]
    assert names == [
        "module_start",
        "provider_request",
        "provider_response",
        "module_end",
        "module_start",
        *["provider_request", "provider_error"] * 3,
        "module_end",
    ]
    start, request, response, end = (event for _, event in recorder.seen[:4])
    assert request.context.parent_call_id == start.context.call_id
    assert response.context.call_id == request.context.call_id
    assert end.context.call_id == start.context.call_id
    assert response.usage.tokens.input_tokens == 10
    failed = recorder.seen[-1][1]
    assert failed.success is False
    assert "Mock error (call #3)" in str(failed.error)


def test_content_is_recorded_only_when_capture_is_on() -> None:
    with capture(capture_content=True) as cap:
        traced.instrument(cap.manager)
        try:
            asyncio.run(_module()(question="2+2?"))
        finally:
            traced.uninstrument()
        chat = _attrs(cap.span("chat mock-model"))
        assert "2+2?" in chat["gen_ai.input.messages"]
        assert "answer: 4" in chat["gen_ai.output.messages"]


def test_instrument_is_idempotent_and_uninstrument_unregisters() -> None:
    before = callback_manager.get_registered_callbacks()["global"]
    with capture() as cap:
        traced.instrument(cap.manager)
        traced.instrument(cap.manager)
        assert callback_manager.get_registered_callbacks()["global"].count("spanhooks") == 1
        copy.deepcopy(_module())  # LogiLLM re-creates its registrations when a module is copied
        asyncio.run(_module()(question="2+2?"))
        traced.uninstrument()
        traced.uninstrument()
        assert callback_manager.get_registered_callbacks()["global"] == before
        asyncio.run(_module()(question="2+2?"))
        assert len(cap.spans("module Predict")) == 1


def test_handler_registered_by_hand_traces_without_instrument(edges: Any) -> None:
    with capture() as cap:
        registration = callback_manager.register_global(traced.callback(cap.manager))
        try:
            asyncio.run(_module()(question="2+2?"))
        finally:
            callback_manager.unregister(registration)
        assert edges(cap) == [("module Predict", None), ("chat mock-model", "module Predict")]


def test_importing_spanhooks_does_not_import_logillm() -> None:
    code = (
        "import sys, spanhooks\n"
        "from spanhooks.integrations import logillm as m\n"
        "assert 'logillm' not in sys.modules, 'imported logillm'\n"
        "sys.modules['logillm'] = None\n"
        "try:\n    m.instrument()\nexcept ImportError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip()
        == "spanhooks.integrations.logillm needs logillm >=0.2,<0.3: pip install 'spanhooks[logillm]'"
    )
