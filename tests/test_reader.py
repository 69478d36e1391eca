"""Reading trace files back: both formats give the same records and trees as the spans in
memory, damage is handled predictably, and trees print the same way every time."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from spanhooks.export.jsonl import JsonlSpanExporter
from spanhooks.export.reader import EventRecord, SpanRecord, read_spans
from spanhooks.export.trees import SpanNode, build_trees, format_duration, format_trees

TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_B = "00f067aa0ba902b7a3ce929d0e0e4736"


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "shop"}), shutdown_on_exit=False
    )
    yield provider
    provider.shutdown()


def write_both_formats(provider: TracerProvider, tmp_path: Path) -> InMemorySpanExporter:
    """Two traces of nested spans, exported to a file of each format and kept in memory."""
    memory = InMemorySpanExporter()
    for exporter in (
        JsonlSpanExporter(tmp_path / "spanhooks.jsonl"),
        JsonlSpanExporter(tmp_path / "otlp.jsonl", format="otlp"),
        memory,
    ):
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("spanhooks.thea", "1.0")
    for turn in range(2):
        with tracer.start_as_current_span(
            f"turn {turn}", attributes={"n": turn, "tags": ("a", "b"), "ok": True, "t": 0.25}
        ) as span:
            span.add_event("thinking", {"depth": 2})
            with (
                tracer.start_as_current_span("chat", kind=SpanKind.CLIENT) as chat,
                tracer.start_as_current_span("http", links=[Link(span.get_span_context())]),
            ):
                chat.set_status(Status(StatusCode.ERROR, "rate limited"))
            with tracer.start_as_current_span("tool", attributes={"tool": "search"}):
                pass
    provider.force_flush()
    return memory


def plain(value: Any) -> Any:
    """Tuples as lists, the way JSON holds them."""
    return json.loads(json.dumps(value))


def memory_tree(spans: Sequence[ReadableSpan]) -> list[dict[str, Any]]:
    """The expected trees, built straight from the SDK's spans."""
    ids = {span.context.span_id for span in spans if span.context}
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent and span.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(span)

    def node(span: ReadableSpan) -> dict[str, Any]:
        assert span.context is not None
        children = sorted(by_parent.get(span.context.span_id, []), key=lambda s: s.start_time or 0)
        return {
            "span_id": format(span.context.span_id, "016x"),
            "name": span.name,
            "kind": span.kind.name,
            "status": span.status.status_code.name,
            "attributes": plain(dict(span.attributes or {})),
            "events": [event.name for event in span.events],
            "children": [node(child) for child in children],
        }

    return [node(root) for root in sorted(by_parent[None], key=lambda s: s.start_time or 0)]


def file_tree(nodes: list[SpanNode]) -> list[dict[str, Any]]:
    return [
        {
            "span_id": node.span["span_id"],
            "name": node.span["name"],
            "kind": node.span["kind"],
            "status": node.span["status"]["code"],
            "attributes": node.span["attributes"],
            "events": [event["name"] for event in node.span["events"]],
            "children": file_tree(node.children),
        }
        for node in nodes
    ]


def record(
    name: str,
    span_id: str,
    *,
    trace_id: str = TRACE_A,
    parent: str | None = None,
    start: int = 0,
    duration_ms: float = 1.0,
    error: str | None = None,
    events: Sequence[str] = (),
) -> SpanRecord:
    """A hand-made record, so that durations and order are fixed."""
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        start_time_unix_nano=start,
        duration_ms=duration_ms,
        status={"code": "UNSET" if error is None else "ERROR", "description": error or None},
        events=[
            EventRecord(name=event, time_unix_nano=start, time=None, attributes={})
            for event in events
        ],
    )


def line(span: SpanRecord) -> str:
    return json.dumps(dict(span)) + "\n"


def names(spans: Sequence[SpanRecord]) -> list[str]:
    return [span["name"] for span in spans]


# Round trips


@pytest.mark.parametrize("file_format", ["spanhooks", "otlp"])
def test_a_file_reads_back_into_the_trees_of_the_spans_in_memory(
    provider: TracerProvider, tmp_path: Path, file_format: str
) -> None:
    memory = write_both_formats(provider, tmp_path)
    result = read_spans(tmp_path / f"{file_format}.jsonl")
    assert (result.skipped, result.torn_tail) == (0, False)
    expected = memory_tree(memory.get_finished_spans())
    assert [tree["name"] for tree in expected] == ["turn 0", "turn 1"]
    assert file_tree(build_trees(result.spans)) == expected


def test_both_formats_read_back_into_identical_records(
    provider: TracerProvider, tmp_path: Path
) -> None:
    write_both_formats(provider, tmp_path)
    from_spanhooks = read_spans(tmp_path / "spanhooks.jsonl").spans
    from_otlp = read_spans(tmp_path / "otlp.jsonl").spans
    assert len(from_otlp) == 8
    assert from_otlp == from_spanhooks
    # Spot checks that the equal records are also right: a link, the resource and the scope.
    turn, http = (next(s for s in from_otlp if s["name"] == name) for name in ("turn 0", "http"))
    assert http["links"] == [
        {"trace_id": turn["trace_id"], "span_id": turn["span_id"], "attributes": {}}
    ]
    assert http["resource"]["service.name"] == "shop"
    assert http["scope"] == {"name": "spanhooks.thea", "version": "1.0"}


def test_an_otlp_line_from_another_writer_with_base64_ids_and_enum_names_is_read(
    tmp_path: Path,
) -> None:
    request = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "x"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "lib"},
                        "spans": [
                            {
                                "traceId": "S/kvNXezTaajzpKdDg5HNg==",
                                "spanId": "APBnqgupArc=",
                                "name": "GET",
                                "kind": "SPAN_KIND_SERVER",
                                "startTimeUnixNano": "1000000",
                                "endTimeUnixNano": "3500000",
                                "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
                                "attributes": [
                                    {
                                        "key": "list",
                                        "value": {"arrayValue": {"values": [{"intValue": "1"}]}},
                                    },
                                    {
                                        "key": "map",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [
                                                    {"key": "k", "value": {"boolValue": True}}
                                                ]
                                            }
                                        },
                                    },
                                ],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    path = tmp_path / "collector.jsonl"
    path.write_text(json.dumps(request) + "\n")
    [span] = read_spans(path).spans
    assert span["trace_id"] == TRACE_A
    assert span["span_id"] == "00f067aa0ba902b7"
    assert span["kind"] == "SERVER"
    assert span["status"] == {"code": "ERROR", "description": "boom"}
    assert span["duration_ms"] == 2.5
    assert span["start_time"] == "1970-01-01T00:00:00.001000Z"
    assert span["attributes"] == {"list": [1], "map": {"k": True}}
    assert span["resource"] == {"service.name": "x"}
    assert span["scope"] == {"name": "lib", "version": None}


# Damaged and foreign files


def test_a_torn_last_line_is_skipped_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text(line(record("a", "01")) + '{"name":"b","spa')
    caplog.set_level(logging.WARNING, logger="spanhooks")
    result = read_spans(path)
    assert names(result.spans) == ["a"]
    assert (result.skipped, result.torn_tail) == (0, True)
    assert caplog.records == []


def test_a_last_line_torn_inside_a_multibyte_character_is_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_bytes(line(record("a", "01")).encode() + '{"name":"caf\u00e9'.encode()[:-1])
    result = read_spans(path)
    assert names(result.spans) == ["a"]
    assert result.torn_tail


def test_a_complete_last_line_without_a_newline_is_read(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text(line(record("a", "01")) + line(record("b", "02")).rstrip("\n"))
    result = read_spans(path)
    assert names(result.spans) == ["a", "b"]
    assert not result.torn_tail


def test_corrupt_lines_elsewhere_are_skipped_counted_and_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text(
        line(record("a", "01"))
        + "not json at all\n"
        + line(record("b", "02"))
        + '{"valid": "json", "but": "not a span"}\n'
        + line(record("c", "03"))
    )
    caplog.set_level(logging.WARNING, logger="spanhooks")
    result = read_spans(path)
    assert names(result.spans) == ["a", "b", "c"]
    assert (result.skipped, result.torn_tail) == (2, False)
    [warning] = caplog.records
    assert "skipped 2 unreadable line(s): line 2, 4" in warning.getMessage()
    assert str(path) in warning.getMessage()


def test_a_record_with_fields_of_the_wrong_type_is_a_corrupt_line(tmp_path: Path) -> None:
    bad = dict(record("bad", "02"), start_time_unix_nano="yesterday")
    path = tmp_path / "spans.jsonl"
    path.write_text(line(record("a", "01")) + json.dumps(bad) + "\n")
    result = read_spans(path)
    assert names(result.spans) == ["a"]
    assert result.skipped == 1


def test_blank_lines_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text("\n" + line(record("a", "01")) + "  \n\n")
    result = read_spans(path)
    assert names(result.spans) == ["a"]
    assert result.skipped == 0


def test_a_minimal_record_gets_the_optional_fields_filled_in(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps({"trace_id": TRACE_A, "span_id": "01", "name": "bare"}) + "\n")
    [span] = read_spans(path).spans
    assert span == {
        "trace_id": TRACE_A,
        "span_id": "01",
        "name": "bare",
        "parent_span_id": None,
        "status": {"code": "UNSET", "description": None},
        "attributes": {},
        "events": [],
        "links": [],
    }


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_an_empty_file_has_no_spans(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    assert read_spans(path) == read_spans(path).__class__(spans=[], skipped=0, torn_tail=False)


def test_binary_garbage_is_a_value_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "image.jsonl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x80")
    with pytest.raises(ValueError, match=r"image\.jsonl is not a UTF-8 text file"):
        read_spans(path)


def test_text_without_a_single_span_is_a_value_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n")
    with pytest.raises(ValueError, match=r"notes\.txt has no readable span line"):
        read_spans(path)


def test_a_file_holding_only_a_torn_line_is_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text('{"name":"half-wri')
    with pytest.raises(ValueError, match="no readable span line"):
        read_spans(path)


def test_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_spans(tmp_path / "missing.jsonl")


# Trees


def test_a_span_whose_parent_is_not_in_the_file_becomes_a_root() -> None:
    roots = build_trees(
        [record("orphan", "02", parent="ff", start=2), record("root", "01", start=1)]
    )
    assert [node.span["name"] for node in roots] == ["root", "orphan"]


def test_traces_are_grouped_and_ordered_by_their_first_span() -> None:
    spans = [
        record("b late root", "05", trace_id=TRACE_B, start=50),
        record("a root", "01", start=10),
        record("b root", "04", trace_id=TRACE_B, start=5),
        record("a orphan", "02", parent="99", start=60),
    ]
    roots = build_trees(spans)
    assert [node.span["name"] for node in roots] == ["b root", "b late root", "a root", "a orphan"]


def test_children_are_ordered_by_start_time_then_span_id() -> None:
    spans = [
        record("root", "01"),
        record("third", "04", parent="01", start=7),
        record("second", "03", parent="01", start=5),
        record("first", "02", parent="01", start=5),
    ]
    [root] = build_trees(spans)
    assert [child.span["name"] for child in root.children] == ["first", "second", "third"]


def test_the_same_span_ids_in_different_traces_stay_apart() -> None:
    spans = [
        record("a", "01", trace_id=TRACE_A),
        record("b", "01", trace_id=TRACE_B, start=1),
        record("b child", "02", trace_id=TRACE_B, parent="01", start=2),
    ]
    a, b = build_trees(spans)
    assert (a.children, [child.span["name"] for child in b.children]) == ([], ["b child"])


def test_spans_whose_parents_form_a_cycle_are_not_lost() -> None:
    spans = [
        record("x", "01", parent="02", start=1),
        record("y", "02", parent="01", start=2),
        record("z", "03", parent="03", start=3),
    ]
    roots = build_trees(spans)
    assert [node.span["name"] for node in roots] == ["x", "z"]
    assert [child.span["name"] for child in roots[0].children] == ["y"]


def test_very_deep_trees_build_and_print_without_recursion() -> None:
    depth = 5000
    spans = [
        record(f"s{i}", format(i + 1, "016x"), parent=format(i, "016x") if i else None, start=i)
        for i in range(depth)
    ]
    [root] = build_trees(spans)
    lines = format_trees([root]).split("\n")
    assert len(lines) == depth + 1  # the trace header and one line per span
    assert lines[-1] == "  " * (depth - 2) + "└─ s4999  1.0ms"


# Printing


def test_format_trees_prints_the_documented_layout() -> None:
    spans = [
        record("invoke_agent bot", "01", start=1, duration_ms=1234.5, events=["hello", "reply"]),
        record("chat gpt", "02", parent="01", start=2, duration_ms=12.34),
        record("http POST", "04", parent="02", start=3, duration_ms=0.812),
        record(
            "execute_tool calc",
            "03",
            parent="01",
            start=5,
            duration_ms=2,
            error="division by zero",
            events=["retry"],
        ),
        record("cleanup", "01", trace_id=TRACE_B, start=10, duration_ms=1500),
    ]
    assert format_trees(build_trees(spans)) == (
        "trace 4bf92f35\n"
        "invoke_agent bot  1.23s  (2 events)\n"
        "│ · hello\n"
        "│ · reply\n"
        "├─ chat gpt  12.3ms\n"
        "│ └─ http POST  812µs\n"
        "└─ execute_tool calc  2.0ms  ERROR: division by zero  (1 event)\n"
        "    · retry\n"
        "\n"
        "trace 00f067aa\n"
        "cleanup  1.50s"
    )


def test_an_error_without_a_description_is_still_marked() -> None:
    [root] = build_trees([record("failed", "01", error="")])
    assert format_trees([root]).endswith("failed  1.0ms  ERROR")


def test_color_adds_ansi_codes_only_when_asked() -> None:
    roots = build_trees([record("failed", "01", error="boom")])
    assert "\x1b[" not in format_trees(roots)
    colored = format_trees(roots, color=True)
    assert "\x1b[31mERROR: boom\x1b[0m" in colored
    assert colored.startswith("\x1b[2mtrace 4bf92f35\x1b[0m")


def test_control_characters_in_names_cannot_break_the_layout() -> None:
    [root] = build_trees([record("two\nlines \x1b[2J", "01", events=["bell\a"])])
    assert format_trees([root]).split("\n")[1:] == [
        "two\\nlines \\x1b[2J  1.0ms  (1 event)",
        "  · bell\\x07",
    ]


def test_an_empty_list_of_trees_prints_nothing() -> None:
    assert format_trees([]) == ""


@pytest.mark.parametrize(
    ("milliseconds", "text"),
    [
        (0.0004, "0µs"),
        (0.812, "812µs"),
        (0.9996, "1.0ms"),
        (12.34, "12.3ms"),
        (999.96, "1.00s"),
        (1200, "1.20s"),
        (125_300, "125.30s"),
        (None, "?"),
        (-1, "?"),
    ],
)
def test_durations_are_printed_for_people(milliseconds: float | None, text: str) -> None:
    assert format_duration(milliseconds) == text


def test_a_record_without_duration_is_timed_from_its_nanoseconds() -> None:
    span = SpanRecord(
        trace_id=TRACE_A,
        span_id="01",
        name="timed",
        start_time_unix_nano=1_000,
        end_time_unix_nano=2_501_000,
    )
    assert format_trees(build_trees([span])).endswith("timed  2.5ms")
