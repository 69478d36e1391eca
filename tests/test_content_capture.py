"""Where content goes: ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (or
``setup(capture_content=...)``) takes opentelemetry-util-genai's modes. ``EVENT_ONLY`` and
``SPAN_AND_EVENT`` send each model call's content as the conventions'
``gen_ai.client.inference.operation.details`` log event, to the JSONL file beside the spans and
over OTLP to ``/v1/logs``; each program runs in a child process with a real setup()."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from otlp_http import OtlpRequests, log_records, posted_logs, posted_spans
from spanhooks import ContentCapture
from spanhooks.export.reader import read_spans
from spanhooks.tracing.attributes import CAPTURE_CONTENT_ENV, content_capture

EVENT = "gen_ai.client.inference.operation.details"
PROGRAM = """
import spanhooks
from spanhooks import GenAIEvent

spanhooks.setup({arguments})
with spanhooks.session("s-1"):
    spanhooks.emit(GenAIEvent.TOOL_CALL_START, "add", {{"a": 2}})
    spanhooks.emit(GenAIEvent.TOOL_CALL_END, "add", 5, None)
    spanhooks.emit(
        GenAIEvent.LLM_START,
        "gpt-4o-mini",
        {{"messages": [{{"role": "user", "content": "2+3? my key is sk-live-123"}}]}},
        "openai",
        "chat",
    )
    spanhooks.emit(
        GenAIEvent.LLM_END,
        "gpt-4o-mini",
        {{"id": "r-1", "choices": [{{"message": {{"role": "assistant", "content": "5"}},
          "finish_reason": "stop"}}], "usage": {{"prompt_tokens": 4, "completion_tokens": 1}}}},
        None,
    )
"""


def run(tmp_path: Path, arguments: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(PROGRAM.format(arguments=arguments)))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**clean, "SPANHOOKS_REDACT_PATTERN": r"sk-live-\d+", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def _file(tmp_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    result = read_spans(tmp_path / "spanhooks-traces.jsonl")
    spans = {span["name"]: span for span in result.spans}
    return spans, result.logs


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        ("", ContentCapture.NO_CONTENT),
        ("NO_CONTENT", ContentCapture.NO_CONTENT),
        ("false", ContentCapture.NO_CONTENT),
        ("SPAN_ONLY", ContentCapture.SPAN_ONLY),
        ("true", ContentCapture.SPAN_ONLY),
        ("event_only", ContentCapture.EVENT_ONLY),
        (" Span_And_Event ", ContentCapture.SPAN_AND_EVENT),
    ],
)
def test_the_variable_takes_util_genais_mode_names_in_any_case(
    monkeypatch: pytest.MonkeyPatch, raw: str, mode: ContentCapture
) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, raw)
    assert content_capture(None) is mode


def test_an_unknown_value_of_the_variable_captures_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "EVERYTHING")
    assert content_capture(None) is ContentCapture.NO_CONTENT


def test_setup_refuses_an_unknown_mode_before_setting_anything_up() -> None:
    import spanhooks

    with pytest.raises(ValueError, match="SPAN_AND_EVENT"):
        spanhooks.setup(capture_content="everything")
    assert spanhooks.lifecycle.setup._active is None


def test_span_only_records_content_on_spans_and_sends_no_event(tmp_path: Path) -> None:
    run(tmp_path, **{CAPTURE_CONTENT_ENV: "SPAN_ONLY"})
    spans, logs = _file(tmp_path)
    assert "gen_ai.input.messages" in spans["chat gpt-4o-mini"]["attributes"]
    assert logs == []


def test_span_and_event_writes_the_event_beside_its_span_in_the_jsonl_file(tmp_path: Path) -> None:
    run(tmp_path, **{CAPTURE_CONTENT_ENV: "SPAN_AND_EVENT"})
    spans, logs = _file(tmp_path)
    chat = spans["chat gpt-4o-mini"]
    [event] = logs
    assert event["event_name"] == EVENT
    assert (event["trace_id"], event["span_id"]) == (chat["trace_id"], chat["span_id"])
    attributes = event["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.response.id"] == "r-1"
    assert attributes["gen_ai.usage.input_tokens"] == 4
    # structured in the event, a JSON string on the span
    assert attributes["gen_ai.output.messages"] == [
        {"role": "assistant", "parts": [{"type": "text", "content": "5"}], "finish_reason": "stop"}
    ]
    assert (
        json.loads(chat["attributes"]["gen_ai.output.messages"])
        == (attributes["gen_ai.output.messages"])
    )


def test_event_only_leaves_every_piece_of_content_off_the_spans(tmp_path: Path) -> None:
    run(tmp_path, **{CAPTURE_CONTENT_ENV: "EVENT_ONLY"})
    spans, [event] = _file(tmp_path)
    for span in spans.values():
        assert not {
            "gen_ai.input.messages",
            "gen_ai.output.messages",
            "gen_ai.tool.call.arguments",
            "gen_ai.tool.call.result",
        } & set(span["attributes"])
    assert spans["chat gpt-4o-mini"]["attributes"]["session.id"] == "s-1"  # the rest stays
    [message] = event["attributes"]["gen_ai.input.messages"]
    assert message["parts"][0]["content"].startswith("2+3?")


def test_redaction_applies_to_the_event_content(tmp_path: Path) -> None:
    run(tmp_path, **{CAPTURE_CONTENT_ENV: "EVENT_ONLY"})
    text = (tmp_path / "spanhooks-traces.jsonl").read_text()
    assert "sk-live-123" not in text
    assert "my key is [REDACTED]" in text


def test_events_go_over_otlp_to_v1_logs_tied_to_their_span(
    tmp_path: Path, otlp_http: tuple[str, OtlpRequests]
) -> None:
    endpoint, received = otlp_http
    run(
        tmp_path,
        "capture_content='span_and_event'",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_SERVICE_NAME="content-events",
    )
    [(scope, record)] = log_records(posted_logs(received))
    assert scope == "spanhooks.genai"
    assert record.event_name == EVENT
    attributes = {a.key: a.value for a in record.attributes}
    [message] = attributes["gen_ai.output.messages"].array_value.values
    fields = {kv.key: kv.value for kv in message.kvlist_value.values}
    assert fields["role"].string_value == "assistant"
    [chat] = [
        span
        for request in posted_spans(received)
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
        if span.name == "chat gpt-4o-mini"
    ]
    assert (record.trace_id, record.span_id) == (chat.trace_id, chat.span_id)


def test_no_content_mode_sends_nothing_and_records_no_content(tmp_path: Path) -> None:
    run(tmp_path)
    spans, logs = _file(tmp_path)
    assert logs == []
    assert "gen_ai.input.messages" not in spans["chat gpt-4o-mini"]["attributes"]
