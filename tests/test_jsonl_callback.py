"""LogiLLM's JSONL logging callback: chosen event categories, call ids, no content by default."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from spanhooks import JSONLCallback, register_jsonl_logger
from spanhooks.testing import Capture
from spanhooks.vocab.logillm import (
    HyperparameterUpdateEvent,
    ModuleEndEvent,
    ModuleStartEvent,
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
