"""The JSONL exporter: both formats, append-only files, torn tails, odd values, filters, threads
and fork, each checked on a real file written through a real OpenTelemetry SDK pipeline."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from spanhooks.export.jsonl import JsonlSpanExporter, dumps, json_safe

RECORD_KEYS = {
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_time_unix_nano",
    "end_time_unix_nano",
    "start_time",
    "end_time",
    "duration_ms",
    "status",
    "attributes",
    "events",
    "links",
    "resource",
    "scope",
    "dropped",
}


def _reject_constant(name: str) -> None:
    raise AssertionError(f"{name} is not valid JSON")


def strict_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path`` as strict JSON; the file must end with a complete line."""
    text = path.read_bytes().decode("utf-8")
    assert text == "" or text.endswith("\n"), "the last line is incomplete"
    return [json.loads(line, parse_constant=_reject_constant) for line in text.split("\n")[:-1]]


def names(path: Path) -> list[str]:
    return [record["name"] for record in strict_lines(path)]


def otlp_spans(line: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        span
        for resource_spans in line["resourceSpans"]
        for scope_spans in resource_spans["scopeSpans"]
        for span in scope_spans["spans"]
    ]


def hex_id(value: int, digits: int) -> str:
    return format(value, f"0{digits}x")


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "shop", "deployment.environment": "test"}),
        shutdown_on_exit=False,
    )
    yield provider
    provider.shutdown()


def attach(provider: TracerProvider, *exporters: SpanExporter) -> None:
    for exporter in exporters:
        provider.add_span_processor(SimpleSpanProcessor(exporter))


def run_agent_turn(provider: TracerProvider) -> None:
    """Nested spans with attributes, events, a link, a CLIENT span and a failed one."""
    tracer = provider.get_tracer("spanhooks.llmproc", "0.3")
    with tracer.start_as_current_span(
        "invoke_agent", attributes={"gen_ai.agent.name": "bot", "turn": 1}
    ) as agent:
        agent.add_event("user_message", {"length": 12})
        with tracer.start_as_current_span(
            "chat", kind=SpanKind.CLIENT, attributes={"tags": ("a", "b"), "temperature": 0.5}
        ):
            pass
        link = Link(agent.get_span_context(), {"reason": "retry"})
        with tracer.start_as_current_span("execute_tool", links=[link]) as tool:
            tool.set_status(Status(StatusCode.ERROR, "tool failed"))


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


# The spanhooks format


def test_each_spanhooks_line_is_one_span_with_exactly_the_documented_keys(
    provider: TracerProvider, tmp_path: Path
) -> None:
    exporter = JsonlSpanExporter(tmp_path / "spans.jsonl")
    attach(provider, exporter)
    run_agent_turn(provider)
    records = strict_lines(exporter.path)
    assert [record["name"] for record in records] == ["chat", "execute_tool", "invoke_agent"]
    assert all(set(record) == RECORD_KEYS for record in records)


def test_a_spanhooks_line_describes_its_span_completely(
    provider: TracerProvider, tmp_path: Path
) -> None:
    exporter, memory = JsonlSpanExporter(tmp_path / "spans.jsonl"), InMemorySpanExporter()
    attach(provider, exporter, memory)
    run_agent_turn(provider)
    spans = by_name(memory.get_finished_spans())
    agent, chat, tool = spans["invoke_agent"], spans["chat"], spans["execute_tool"]
    assert agent.context is not None and agent.start_time and agent.end_time
    records = {record["name"]: record for record in strict_lines(exporter.path)}

    assert records["invoke_agent"]["trace_id"] == hex_id(agent.context.trace_id, 32)
    assert records["invoke_agent"]["span_id"] == hex_id(agent.context.span_id, 16)
    assert records["invoke_agent"]["parent_span_id"] is None
    assert records["chat"]["parent_span_id"] == records["invoke_agent"]["span_id"]
    assert records["chat"]["kind"] == "CLIENT"
    assert records["invoke_agent"]["kind"] == "INTERNAL"
    assert records["invoke_agent"]["start_time_unix_nano"] == agent.start_time
    assert records["invoke_agent"]["end_time_unix_nano"] == agent.end_time
    assert records["invoke_agent"]["duration_ms"] == (agent.end_time - agent.start_time) / 1e6
    assert records["chat"]["attributes"] == {"tags": ["a", "b"], "temperature": 0.5}
    assert records["execute_tool"]["status"] == {"code": "ERROR", "description": "tool failed"}
    assert records["chat"]["status"] == {"code": "UNSET", "description": None}
    [event] = records["invoke_agent"]["events"]
    assert event["name"] == "user_message"
    assert event["attributes"] == {"length": 12}
    assert event["time_unix_nano"] == agent.events[0].timestamp
    assert records["execute_tool"]["links"] == [
        {
            "trace_id": records["invoke_agent"]["trace_id"],
            "span_id": records["invoke_agent"]["span_id"],
            "attributes": {"reason": "retry"},
        }
    ]
    assert records["chat"]["resource"] == dict(chat.resource.attributes)
    assert records["chat"]["resource"]["service.name"] == "shop"
    assert records["chat"]["scope"] == {"name": "spanhooks.llmproc", "version": "0.3"}
    assert records["execute_tool"]["dropped"] == {
        "attributes": tool.dropped_attributes,
        "events": 0,
        "links": 0,
    }


def test_times_are_written_as_nanoseconds_and_as_iso_8601_utc(
    provider: TracerProvider, tmp_path: Path
) -> None:
    exporter = JsonlSpanExporter(tmp_path / "spans.jsonl")
    attach(provider, exporter)
    start = 1_700_000_000_123_456_789
    span = provider.get_tracer("t").start_span("timed", start_time=start)
    span.add_event("halfway", timestamp=start + 750_000)
    span.end(end_time=start + 1_500_000)
    [record] = strict_lines(exporter.path)
    assert record["start_time_unix_nano"] == start
    assert record["start_time"] == "2023-11-14T22:13:20.123456Z"
    assert record["end_time"] == "2023-11-14T22:13:20.124956Z"
    assert record["events"][0]["time"] == "2023-11-14T22:13:20.124206Z"
    assert record["duration_ms"] == 1.5


def test_the_dropped_counts_report_what_the_sdk_limits_cut(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import SpanLimits

    exporter = JsonlSpanExporter(tmp_path / "spans.jsonl")
    provider = TracerProvider(
        span_limits=SpanLimits(max_span_attributes=2, max_events=1), shutdown_on_exit=False
    )
    attach(provider, exporter)
    with provider.get_tracer("t").start_as_current_span(
        "limited", attributes={"a": 1, "b": 2, "c": 3}
    ) as span:
        span.add_event("one")
        span.add_event("two")
    provider.shutdown()
    [record] = strict_lines(exporter.path)
    assert record["dropped"] == {"attributes": 1, "events": 1, "links": 0}


# The otlp format


def test_an_otlp_line_is_one_export_request_for_the_whole_batch(
    provider: TracerProvider, tmp_path: Path
) -> None:
    memory = InMemorySpanExporter()
    attach(provider, memory)
    run_agent_turn(provider)
    exporter = JsonlSpanExporter(tmp_path / "otlp.jsonl", format="otlp")
    batch = memory.get_finished_spans()

    assert exporter.export(batch) is SpanExportResult.SUCCESS
    assert exporter.export(batch[:1]) is SpanExportResult.SUCCESS
    exporter.shutdown()

    first, second = strict_lines(exporter.path)
    assert set(first) == {"resourceSpans"}
    assert [span["name"] for span in otlp_spans(first)] == [span.name for span in batch]
    assert [span["name"] for span in otlp_spans(second)] == [batch[0].name]


def test_otlp_ids_are_lowercase_hex_matching_the_spans(
    provider: TracerProvider, tmp_path: Path
) -> None:
    exporter, memory = (
        JsonlSpanExporter(tmp_path / "otlp.jsonl", format="otlp"),
        InMemorySpanExporter(),
    )
    attach(provider, exporter, memory)
    run_agent_turn(provider)
    written = {
        span["name"]: span for line in strict_lines(exporter.path) for span in otlp_spans(line)
    }
    for span in memory.get_finished_spans():
        assert span.context is not None
        assert written[span.name]["traceId"] == hex_id(span.context.trace_id, 32)
        assert written[span.name]["spanId"] == hex_id(span.context.span_id, 16)
        if span.parent is not None:
            assert written[span.name]["parentSpanId"] == hex_id(span.parent.span_id, 16)
        else:
            assert "parentSpanId" not in written[span.name]
    [link] = written["execute_tool"]["links"]
    assert (link["traceId"], link["spanId"]) == (
        written["invoke_agent"]["traceId"],
        written["invoke_agent"]["spanId"],
    )
    assert re.fullmatch("[0-9a-f]{32}", link["traceId"])


def test_otlp_lines_use_the_collectors_json_encoding(
    provider: TracerProvider, tmp_path: Path
) -> None:
    exporter = JsonlSpanExporter(tmp_path / "otlp.jsonl", format="otlp")
    attach(provider, exporter)
    run_agent_turn(provider)
    lines = strict_lines(exporter.path)
    spans = {span["name"]: span for line in lines for span in otlp_spans(line)}
    assert spans["chat"]["kind"] == 3  # enums as integers: SPAN_KIND_CLIENT
    assert spans["execute_tool"]["status"] == {"code": 2, "message": "tool failed"}
    assert isinstance(spans["chat"]["startTimeUnixNano"], str)  # int64 as a string
    assert {"key": "turn", "value": {"intValue": "1"}} in spans["invoke_agent"]["attributes"]
    assert spans["invoke_agent"]["events"][0]["name"] == "user_message"
    resource = lines[0]["resourceSpans"][0]["resource"]["attributes"]
    assert {"key": "service.name", "value": {"stringValue": "shop"}} in resource
    scope = lines[0]["resourceSpans"][0]["scopeSpans"][0]["scope"]
    assert scope == {"name": "spanhooks.llmproc", "version": "0.3"}


def test_an_export_whose_spans_are_all_filtered_out_writes_no_line(
    provider: TracerProvider, tmp_path: Path
) -> None:
    exporter = JsonlSpanExporter(tmp_path / "otlp.jsonl", format="otlp", predicate=lambda s: False)
    attach(provider, exporter)
    run_agent_turn(provider)
    assert not exporter.path.exists()


# Construction


def test_an_unknown_format_is_rejected_naming_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"'csv'.*'spanhooks' or 'otlp'"):
        JsonlSpanExporter("x.jsonl", format="csv")


def test_event_sets_must_be_a_collection_of_names_not_one_string() -> None:
    with pytest.raises(TypeError, match="not the string 'llmproc'"):
        JsonlSpanExporter("x.jsonl", event_sets="llmproc")


def test_the_path_comes_from_the_argument_then_the_environment_then_a_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPANHOOKS_JSONL_PATH", str(tmp_path / "env.jsonl"))
    assert JsonlSpanExporter(tmp_path / "arg.jsonl").path == tmp_path / "arg.jsonl"
    assert JsonlSpanExporter().path == tmp_path / "env.jsonl"
    monkeypatch.delenv("SPANHOOKS_JSONL_PATH")
    default = JsonlSpanExporter()
    assert default.path == Path("spanhooks-traces.jsonl")
    assert default.format == "spanhooks"


def test_no_file_is_created_before_the_first_export(tmp_path: Path) -> None:
    exporter = JsonlSpanExporter(tmp_path / "logs" / "spans.jsonl")
    assert not exporter.path.parent.exists()
    exporter.shutdown()
    assert not exporter.path.parent.exists()


# Appending and torn tails


def test_each_export_is_on_disk_as_soon_as_export_returns(
    provider: TracerProvider, tmp_path: Path
) -> None:
    exporter = JsonlSpanExporter(tmp_path / "nested" / "spans.jsonl")
    attach(provider, exporter)
    tracer = provider.get_tracer("t")
    for expected in (["first"], ["first", "second"]):
        with tracer.start_as_current_span(expected[-1]):
            pass
        assert names(exporter.path) == expected  # read while the exporter is still open


def test_appending_never_truncates_existing_records(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text('{"note":"written by someone else"}\n')
    for run in range(3):
        provider = TracerProvider(shutdown_on_exit=False)
        attach(provider, JsonlSpanExporter(path))
        with provider.get_tracer("t").start_as_current_span(f"run {run}"):
            pass
        provider.shutdown()
    first, *runs = strict_lines(path)
    assert first == {"note": "written by someone else"}
    assert [record["name"] for record in runs] == ["run 0", "run 1", "run 2"]


def test_a_torn_tail_is_cut_before_the_next_append(
    provider: TracerProvider, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spans.jsonl"
    torn = '{"name":"torn","span_id":"0000'
    path.write_text('{"name":"complete"}\n' + torn)
    attach(provider, JsonlSpanExporter(path))
    caplog.set_level(logging.WARNING, logger="spanhooks")
    with provider.get_tracer("t").start_as_current_span("next"):
        pass
    assert names(path) == ["complete", "next"]
    assert f"discarded its last {len(torn)} byte(s)" in caplog.text


def test_a_file_holding_only_a_torn_line_is_emptied_before_the_append(
    provider: TracerProvider, tmp_path: Path
) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_bytes(b'{"name":"half-wri')
    attach(provider, JsonlSpanExporter(path))
    with provider.get_tracer("t").start_as_current_span("next"):
        pass
    assert names(path) == ["next"]


def test_a_torn_tail_longer_than_the_repair_buffer_is_cut_whole(
    provider: TracerProvider, tmp_path: Path
) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text('{"name":"complete"}\n{"name":"big","pad":"' + "x" * 200_000)
    attach(provider, JsonlSpanExporter(path))
    with provider.get_tracer("t").start_as_current_span("next"):
        pass
    assert names(path) == ["complete", "next"]


def test_a_file_ending_in_a_newline_is_left_untouched(
    provider: TracerProvider, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text('{"name":"complete"}\n')
    attach(provider, JsonlSpanExporter(path))
    caplog.set_level(logging.WARNING, logger="spanhooks")
    with provider.get_tracer("t").start_as_current_span("next"):
        pass
    assert names(path) == ["complete", "next"]
    assert caplog.records == []


@pytest.mark.skipif(sys.platform == "win32", reason="advisory file locks are POSIX-only")
def test_a_line_another_process_is_still_writing_is_not_taken_for_a_torn_one(
    provider: TracerProvider, tmp_path: Path
) -> None:
    fcntl = pytest.importorskip("fcntl")
    memory = InMemorySpanExporter()
    attach(provider, memory)
    with provider.get_tracer("t").start_as_current_span("next"):
        pass
    path = tmp_path / "spans.jsonl"
    path.write_text('{"name":"complete"}\n')
    exporter = JsonlSpanExporter(path)
    with open(path, "ab", buffering=0) as other_writer:
        fcntl.flock(other_writer.fileno(), fcntl.LOCK_SH)  # as every appending exporter does
        other_writer.write(b'{"name":"in ')  # a long write, seen half done
        export = threading.Thread(target=exporter.export, args=(memory.get_finished_spans(),))
        export.start()
        export.join(timeout=0.3)
        assert export.is_alive(), "the repair must wait for the writer"
        other_writer.write(b'progress"}\n')
        fcntl.flock(other_writer.fileno(), fcntl.LOCK_UN)
    export.join()
    exporter.shutdown()
    assert names(path) == ["complete", "in progress", "next"]


# Values that JSON cannot hold as they are


@pytest.mark.parametrize("file_format", ["spanhooks", "otlp"])
def test_nan_and_infinite_attributes_stay_valid_json(
    provider: TracerProvider, tmp_path: Path, file_format: str
) -> None:
    exporter = JsonlSpanExporter(tmp_path / "spans.jsonl", format=file_format)
    attach(provider, exporter)
    odd = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "list": (1.0, math.nan)}
    with provider.get_tracer("t").start_as_current_span("odd", attributes=odd) as span:
        span.add_event("measured", {"loss": math.inf})
    [line] = strict_lines(exporter.path)  # rejects NaN and Infinity literals
    if file_format == "spanhooks":
        assert line["attributes"] == {
            "nan": "NaN",
            "inf": "Infinity",
            "ninf": "-Infinity",
            "list": [1.0, "NaN"],
        }
        assert line["events"][0]["attributes"] == {"loss": "Infinity"}
    else:
        [span_json] = otlp_spans(line)
        assert {"key": "nan", "value": {"doubleValue": "NaN"}} in span_json["attributes"]


def test_lone_surrogates_in_text_are_replaced_rather_than_failing_the_export(
    provider: TracerProvider, tmp_path: Path
) -> None:
    exporter = JsonlSpanExporter(tmp_path / "spans.jsonl")
    attach(provider, exporter)
    with provider.get_tracer("t").start_as_current_span(
        "bad \ud800 text", attributes={"k": "\udfff"}
    ):
        pass
    [record] = strict_lines(exporter.path)
    assert record["name"] == "bad ? text"
    assert record["attributes"] == {"k": "?"}


def test_text_that_json_escapes_stays_on_one_line(provider: TracerProvider, tmp_path: Path) -> None:
    exporter = JsonlSpanExporter(tmp_path / "spans.jsonl")
    attach(provider, exporter)
    name = 'line\nbreak, "quotes", tab\t, separator\u2028, emoji 🙂'
    with provider.get_tracer("t").start_as_current_span(name):
        pass
    assert names(exporter.path) == [name]


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class _Point:
    def __str__(self) -> str:
        return "Point(1, 2)"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (math.nan, "NaN"),
        (-math.inf, "-Infinity"),
        (b"caf\xc3\xa9 \xff", "café \ufffd"),
        (bytearray(b"raw"), "raw"),
        ((1, (2.5, math.inf)), [1, [2.5, "Infinity"]]),
        (frozenset({7}), [7]),
        ({1: "one", (2, 3): None}, {"1": "one", "(2, 3)": None}),
        (_Point(), "Point(1, 2)"),
        (_Unprintable(), "<unrepresentable>"),
        ([_Unprintable()], ["<unrepresentable>"]),
        (None, None),
        (True, True),
        (10**30, 10**30),
    ],
)
def test_json_safe_turns_any_value_into_plain_json_data(value: object, expected: object) -> None:
    assert json_safe(value) == expected
    json.dumps(json_safe(value), allow_nan=False)


def test_dumps_terminates_on_self_containing_values() -> None:
    loop: list[object] = [1]
    loop.append(loop)
    text = dumps({"loop": loop})
    assert json.loads(text)["loop"][0] == 1


def test_dumps_is_compact_and_keeps_non_ascii_text() -> None:
    assert dumps({"name": "café", "n": [1, 2]}) == '{"name":"café","n":[1,2]}'


# Filters


def export_from_scopes(provider: TracerProvider) -> None:
    """One span from each kind of producer: two spanhooks event sets, a foreign library, and a
    foreign tracer whose span names its event set by attribute."""
    for scope, name in (
        ("spanhooks.logillm", "module"),
        ("spanhooks.llmproc", "tool"),
        ("opentelemetry.instrumentation.httpx", "GET"),
    ):
        with provider.get_tracer(scope).start_as_current_span(name):
            pass
    with provider.get_tracer("my.app").start_as_current_span(
        "meeting", attributes={"spanhooks.event_set": "meeting"}
    ):
        pass


def test_event_sets_keep_the_named_sets_and_foreign_spans(
    provider: TracerProvider, tmp_path: Path
) -> None:
    exporter = JsonlSpanExporter(tmp_path / "spans.jsonl", event_sets={"logillm", "meeting"})
    attach(provider, exporter)
    export_from_scopes(provider)
    assert names(exporter.path) == ["module", "GET", "meeting"]


def test_include_foreign_false_keeps_only_spanhooks_spans(
    provider: TracerProvider, tmp_path: Path
) -> None:
    exporter = JsonlSpanExporter(tmp_path / "spans.jsonl", include_foreign=False)
    attach(provider, exporter)
    export_from_scopes(provider)
    assert names(exporter.path) == ["module", "tool", "meeting"]


def test_event_sets_without_foreign_spans_keep_exactly_the_named_sets(
    provider: TracerProvider, tmp_path: Path
) -> None:
    exporter = JsonlSpanExporter(
        tmp_path / "spans.jsonl", event_sets=["llmproc"], include_foreign=False
    )
    attach(provider, exporter)
    export_from_scopes(provider)
    assert names(exporter.path) == ["tool"]


def test_a_predicate_must_also_accept_a_span(provider: TracerProvider, tmp_path: Path) -> None:
    exporter = JsonlSpanExporter(
        tmp_path / "spans.jsonl",
        include_foreign=False,
        predicate=lambda span: span.name != "module",
    )
    attach(provider, exporter)
    export_from_scopes(provider)
    assert names(exporter.path) == ["tool", "meeting"]


def test_a_predicate_that_raises_keeps_the_span_and_logs_the_error(
    provider: TracerProvider, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(span: ReadableSpan) -> bool:
        raise KeyError("oops")

    exporter = JsonlSpanExporter(tmp_path / "spans.jsonl", predicate=broken)
    attach(provider, exporter)
    caplog.set_level(logging.ERROR, logger="spanhooks")
    with provider.get_tracer("t").start_as_current_span("kept"):
        pass
    assert names(exporter.path) == ["kept"]
    assert "predicate" in caplog.text and "oops" in caplog.text


# Threads, processes and lifecycle


def test_eight_threads_through_a_batch_processor_write_every_span_once(tmp_path: Path) -> None:
    exporter = JsonlSpanExporter(tmp_path / "spans.jsonl")
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=10_000, schedule_delay_millis=5)
    )
    tracer = provider.get_tracer("t")

    def work(thread: int) -> None:
        for n in range(500):
            with tracer.start_as_current_span(f"{thread}-{n}"):
                pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    provider.shutdown()
    written = names(exporter.path)
    assert len(written) == 4000
    assert set(written) == {f"{t}-{n}" for t in range(8) for n in range(500)}


def test_eight_threads_exporting_at_once_never_interleave_their_lines(tmp_path: Path) -> None:
    exporter = JsonlSpanExporter(tmp_path / "spans.jsonl")
    provider = TracerProvider(shutdown_on_exit=False)
    attach(provider, exporter)  # SimpleSpanProcessor exports on each ending thread
    tracer = provider.get_tracer("t")
    padding = "x" * 20_000  # lines longer than any I/O buffer

    def work(thread: int) -> None:
        for n in range(50):
            with tracer.start_as_current_span(f"{thread}-{n}", attributes={"pad": padding}):
                pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    provider.shutdown()
    records = strict_lines(exporter.path)
    assert len(records) == 400
    assert all(record["attributes"]["pad"] == padding for record in records)


def _fork() -> int:
    with warnings.catch_warnings():  # Python 3.12+ warns when a threaded process forks
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def _wait(pid: int, timeout: float = 20.0) -> int:
    """The child's exit code; kills it and fails the test if it hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung")


def _in_child(work: Any) -> None:  # pragma: no cover - runs in the child
    code = 1
    try:
        work()
        code = 0
    finally:
        os._exit(code)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_a_forked_child_appends_its_spans_through_its_own_handle(
    provider: TracerProvider, tmp_path: Path
) -> None:
    exporter = JsonlSpanExporter(tmp_path / "spans.jsonl")
    attach(provider, exporter)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("parent before fork"):
        pass
    pid = _fork()
    if pid == 0:  # pragma: no cover - runs in the child

        def child_work() -> None:
            with tracer.start_as_current_span("child"):
                pass

        _in_child(child_work)
    assert _wait(pid) == 0
    with tracer.start_as_current_span("parent after fork"):
        pass
    assert names(exporter.path) == ["parent before fork", "child", "parent after fork"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_a_child_forked_while_the_exporter_is_busy_can_still_export(
    provider: TracerProvider, tmp_path: Path
) -> None:
    exporter = JsonlSpanExporter(tmp_path / "spans.jsonl")
    attach(provider, exporter)
    tracer = provider.get_tracer("t")
    with exporter._lock:  # as if another thread were mid-export at the moment of the fork
        pid = _fork()
        if pid == 0:  # pragma: no cover - runs in the child

            def child_work() -> None:
                with tracer.start_as_current_span("child"):
                    pass

            _in_child(child_work)
    assert _wait(pid) == 0
    assert names(exporter.path) == ["child"]


def test_shutdown_is_idempotent_and_later_exports_fail_without_writing(
    provider: TracerProvider, tmp_path: Path
) -> None:
    memory = InMemorySpanExporter()
    attach(provider, memory)
    with provider.get_tracer("t").start_as_current_span("late"):
        pass
    exporter = JsonlSpanExporter(tmp_path / "spans.jsonl")
    assert exporter.export(memory.get_finished_spans()) is SpanExportResult.SUCCESS
    exporter.shutdown()
    exporter.shutdown()
    assert exporter.export(memory.get_finished_spans()) is SpanExportResult.FAILURE
    assert names(exporter.path) == ["late"]


def test_force_flush_reports_success(tmp_path: Path) -> None:
    exporter = JsonlSpanExporter(tmp_path / "spans.jsonl")
    assert exporter.force_flush() is True
    assert exporter.force_flush(timeout_millis=1) is True
    exporter.shutdown()


def test_a_write_error_fails_the_export_and_is_logged_not_raised(
    provider: TracerProvider, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    memory = InMemorySpanExporter()
    attach(provider, memory)
    with provider.get_tracer("t").start_as_current_span("lost"):
        pass
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    exporter = JsonlSpanExporter(blocker / "cannot" / "exist.jsonl")
    with caplog.at_level(logging.ERROR, logger="spanhooks"):
        assert exporter.export(memory.get_finished_spans()) is SpanExportResult.FAILURE
    assert "writing 1 span(s)" in caplog.text
    exporter.shutdown()
