"""Reading trace files back: both formats into the same trees, damage handled clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanhooks import JsonlSpanExporter, SpanNode, build_trees, format_trees, read_spans
from spanhooks._reader import SpanRecord
from spanhooks.testing import span_tree


def shape(nodes: list[SpanNode]) -> list[dict[str, object]]:
    return [
        {
            "name": node.span["name"],
            "status": node.span["status"]["code"],
            "events": [event["name"] for event in node.span["events"]],
            "children": shape(node.children),
        }
        for node in nodes
    ]


@pytest.mark.parametrize("file_format", ["spanhooks", "otlp"])
def test_a_file_reads_back_into_the_same_trees_as_the_spans_in_memory(
    tmp_path: Path, file_format: str
) -> None:
    path = tmp_path / f"{file_format}.jsonl"
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter(path, format=file_format)))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    for turn in range(2):
        with tracer.start_as_current_span(
            f"turn{turn}", attributes={"n": turn, "tags": ("a", "b")}
        ) as span:
            span.add_event("thinking", {"depth": 2})
            with tracer.start_as_current_span("tool"), tracer.start_as_current_span("http"):
                pass
            with tracer.start_as_current_span("tool2"):
                pass
    provider.shutdown()
    result = read_spans(path)
    assert result.skipped == 0 and not result.torn_tail
    assert shape(build_trees(result.spans)) == span_tree(list(memory.get_finished_spans()))
    turn0 = next(s for s in result.spans if s["name"] == "turn0")
    assert turn0["attributes"] == {"n": 0, "tags": ["a", "b"]}


def test_a_torn_last_line_is_skipped_quietly(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(_line("a", "01") + '{"name":"b","spa')
    result = read_spans(path)
    assert [s["name"] for s in result.spans] == ["a"]
    assert result.torn_tail and result.skipped == 0


def test_a_corrupt_middle_line_is_skipped_counted_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(_line("a", "01") + "not json at all\n" + _line("b", "02"))
    result = read_spans(path)
    assert [s["name"] for s in result.spans] == ["a", "b"]
    assert result.skipped == 1
    assert "line 2" in caplog.text


def test_an_empty_file_has_no_spans(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    assert read_spans(path).spans == []


def test_a_file_that_is_not_a_trace_file_is_a_clear_error(tmp_path: Path) -> None:
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\x00\xff\xfe\x80")
    with pytest.raises(ValueError, match="not a UTF-8"):
        read_spans(binary)
    prose = tmp_path / "prose.jsonl"
    prose.write_text("hello\nworld\n")
    with pytest.raises(ValueError, match="no readable span"):
        read_spans(prose)
    with pytest.raises(FileNotFoundError):
        read_spans(tmp_path / "missing.jsonl")


def test_a_span_whose_parent_is_missing_becomes_a_root(tmp_path: Path) -> None:
    orphan = _record("orphan", "02", parent="ff")
    assert [node.span["name"] for node in build_trees([orphan])] == ["orphan"]


def test_deep_trees_build_and_print_without_recursion_limits() -> None:
    spans = [
        _record(f"s{i}", format(i + 1, "016x"), parent=format(i, "016x") if i else None, start=i)
        for i in range(3000)
    ]
    [root] = build_trees(spans)
    text = format_trees([root])
    assert text.count("\n") == 3000  # a header line and one line per span


def test_format_trees_prints_names_durations_errors_and_events() -> None:
    root = _record("invoke_agent bot", "01", duration=1234.5, start=1)
    root["events"] = [{"name": "on_message", "attributes": {}}]
    ok = _record("chat m", "02", parent="01", duration=12.34, start=2)
    failed = _record("execute_tool calc", "03", parent="01", duration=0.812, start=3)
    failed["status"] = {"code": "ERROR", "description": "division by zero"}
    assert format_trees(build_trees([root, ok, failed])) == (
        "trace 00000000\n"
        "invoke_agent bot  1.23s  (1 events)\n"
        "│  · on_message\n"
        "├─ chat m  12.3ms\n"
        "└─ execute_tool calc  812µs  ERROR: division by zero"
    )


def _record(
    name: str, span_id: str, *, parent: str | None = None, duration: float = 1.0, start: int = 0
) -> SpanRecord:
    return SpanRecord(
        trace_id="0" * 32,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        start_time_unix_nano=start,
        duration_ms=duration,
        status={"code": "UNSET", "description": None},
        events=[],
    )


def _line(name: str, span_id: str) -> str:
    import json

    return json.dumps(dict(_record(name, span_id))) + "\n"
