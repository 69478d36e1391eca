"""LogiLLM's JSONL logging callbacks: chosen event categories, call ids, errors, and the installed
content and redaction policy."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from spanhooks import JSONLCallback, register_jsonl_logger
from spanhooks.export.logillm_jsonl import OptimizationJSONLCallback
from spanhooks.testing import Capture
from spanhooks.tracing.attributes import AttributePolicy, set_active_policy
from spanhooks.util.redaction import REDACTED
from spanhooks.vocab.logillm import (
    HyperparameterUpdateEvent,
    ModuleEndEvent,
    ModuleStartEvent,
    OptimizationEndEvent,
    OptimizationStartEvent,
    ProviderErrorEvent,
    ProviderRequestEvent,
    ProviderResponseEvent,
)


def run(cap: Capture) -> None:
    cap.manager.emit(
        ModuleStartEvent(module=SimpleNamespace(), inputs={"question": "secret question"})
    )
    cap.manager.emit(
        ProviderRequestEvent(provider=SimpleNamespace(name="openai"), parameters={"model": "m"})
    )
    cap.manager.emit(ProviderResponseEvent(usage={"input_tokens": 5, "output_tokens": 2}))
    cap.manager.emit(HyperparameterUpdateEvent(parameters={"temperature": 0.3}, iteration=2))
    cap.manager.emit(ModuleEndEvent(outputs={"answer": "secret answer"}, duration=0.2))


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_chosen_event_is_one_line_with_its_call_ids(
    tmp_path: Path, spanhooks_capture: Capture
) -> None:
    path = tmp_path / "execution.jsonl"
    callback_id = register_jsonl_logger(path, manager=spanhooks_capture.manager)
    run(spanhooks_capture)
    records = lines(path)
    assert [r["event"] for r in records] == [
        "module_start",
        "provider_request",
        "provider_response",
        "hyperparameter_update",
        "module_end",
    ]
    module_start, request = records[0], records[1]
    assert request["parent_call_id"] == module_start["call_id"]
    assert records[2]["attributes"] == {
        "gen_ai.usage.input_tokens": 5,
        "gen_ai.usage.output_tokens": 2,
    }
    assert "secret" not in path.read_text()  # inputs and outputs are content
    assert spanhooks_capture.manager.unregister(callback_id)


def test_categories_can_be_left_out(tmp_path: Path, spanhooks_capture: Capture) -> None:
    callback = JSONLCallback(
        tmp_path / "modules.jsonl", include_optimization_events=False, include_provider_events=False
    )
    spanhooks_capture.manager.register(callback)
    run(spanhooks_capture)
    callback.close()
    assert [r["event"] for r in lines(callback.path)] == ["module_start", "module_end"]


def test_append_mode_false_starts_afresh_and_content_is_opt_in(
    tmp_path: Path, spanhooks_capture: Capture
) -> None:
    path = tmp_path / "fresh.jsonl"
    path.write_text('{"event": "old"}\n')
    spanhooks_capture.manager.register(JSONLCallback(path, append_mode=False, capture_content=True))
    run(spanhooks_capture)
    records = lines(path)
    assert records[0]["event"] == "module_start"
    assert "secret question" in path.read_text()


def test_optimization_callback_logs_optimization_events_only(
    tmp_path: Path, spanhooks_capture: Capture
) -> None:
    callback = OptimizationJSONLCallback(tmp_path / "optimization.jsonl")
    spanhooks_capture.manager.register(callback)
    spanhooks_capture.manager.emit(OptimizationStartEvent(optimizer=SimpleNamespace()))
    run(spanhooks_capture)
    spanhooks_capture.manager.emit(OptimizationEndEvent(result=SimpleNamespace(best_score=0.9)))
    callback.close()
    records = lines(callback.path)
    assert [r["event"] for r in records] == [
        "optimization_start",
        "hyperparameter_update",
        "optimization_end",
    ]
    assert records[2]["attributes"]["logillm.best_score"] == 0.9
    assert records[2]["call_id"] == records[0]["call_id"]


def test_a_failure_line_has_the_error_type_and_its_scrubbed_message(
    tmp_path: Path, spanhooks_capture: Capture
) -> None:
    path = tmp_path / "errors.jsonl"
    spanhooks_capture.manager.register(JSONLCallback(path))
    previous = set_active_policy(AttributePolicy(redact_patterns=(r"sk-\w+",)))
    try:
        spanhooks_capture.manager.emit(ProviderRequestEvent(parameters={"model": "m"}))
        spanhooks_capture.manager.emit(ProviderErrorEvent(error=PermissionError("bad key sk-abc")))
    finally:
        set_active_policy(previous)
    error = lines(path)[1]
    assert error["event"] == "provider_error"
    assert error["error"] == {"type": "PermissionError", "message": f"bad key {REDACTED}"}
    assert "sk-abc" not in path.read_text()


def test_lines_follow_the_installed_policy_and_capture_still_redacts(
    tmp_path: Path, spanhooks_capture: Capture
) -> None:
    default, opted_in = tmp_path / "default.jsonl", tmp_path / "opted_in.jsonl"
    spanhooks_capture.manager.register(JSONLCallback(default))
    spanhooks_capture.manager.register(JSONLCallback(opted_in, capture_content=True))
    previous = set_active_policy(AttributePolicy(redact_patterns=(r"secret \w+",)))
    try:
        run(spanhooks_capture)
    finally:
        set_active_policy(previous)
    assert "question" not in default.read_text()  # content stays out by default
    assert "gen_ai.input.messages" in opted_in.read_text()  # the opt-in keeps the field...
    assert "secret" not in opted_in.read_text()  # ...through the installed redaction


def test_a_typed_end_event_left_without_duration_gets_the_measured_one(
    tmp_path: Path, spanhooks_capture: Capture
) -> None:
    path = tmp_path / "durations.jsonl"
    spanhooks_capture.manager.register(JSONLCallback(path, include_provider_events=False))
    spanhooks_capture.manager.emit(ModuleStartEvent(module=SimpleNamespace()))
    spanhooks_capture.manager.emit(ModuleEndEvent())
    end = lines(path)[1]
    assert isinstance(end["attributes"]["logillm.duration_s"], float)
