"""The JSONL exporter: both formats, append safety, torn tails, odd values, threads and fork."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode

from spanhooks import JsonlSpanExporter


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def pipeline(
    tmp_path: Path,
) -> Iterator[tuple[TracerProvider, JsonlSpanExporter, InMemorySpanExporter]]:
    exporter = JsonlSpanExporter(tmp_path / "out.jsonl")
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "svc"}), shutdown_on_exit=False
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield provider, exporter, memory
    provider.shutdown()


def test_each_span_is_one_json_object_with_the_documented_fields(
    pipeline: tuple[TracerProvider, JsonlSpanExporter, InMemorySpanExporter],
) -> None:
    provider, exporter, memory = pipeline
    tracer = provider.get_tracer("test.scope", "1.2")
    with tracer.start_as_current_span("parent", attributes={"k": "v", "n": 3}) as parent:
        parent.add_event("checkpoint", {"step": 1})
        with tracer.start_as_current_span(
            "child", links=[Link(parent.get_span_context(), {"why": "x"})]
        ) as child:
            child.set_status(Status(StatusCode.ERROR, "broke"))
    child_record, parent_record = lines(exporter.path)
    assert set(parent_record) == {
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
    in_memory = {s.name: s for s in memory.get_finished_spans()}
    assert parent_record["span_id"] == format(in_memory["parent"].context.span_id, "016x")
    assert parent_record["trace_id"] == format(in_memory["parent"].context.trace_id, "032x")
    assert parent_record["parent_span_id"] is None
    assert child_record["parent_span_id"] == parent_record["span_id"]
    assert child_record["status"] == {"code": "ERROR", "description": "broke"}
    assert parent_record["kind"] == "INTERNAL"
    assert parent_record["attributes"] == {"k": "v", "n": 3}
    assert parent_record["events"][0]["name"] == "checkpoint"  # type: ignore[index]
    assert child_record["links"][0]["span_id"] == parent_record["span_id"]  # type: ignore[index]
    assert parent_record["resource"]["service.name"] == "svc"  # type: ignore[index]
    assert parent_record["scope"] == {"name": "test.scope", "version": "1.2"}
    assert str(parent_record["start_time"]).endswith("Z")


def test_the_otlp_format_writes_one_request_per_export_with_hex_ids(tmp_path: Path) -> None:
    exporter = JsonlSpanExporter(tmp_path / "otlp.jsonl", format="otlp")
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("outer") as outer, tracer.start_as_current_span("inner"):
        pass
    provider.shutdown()
    inner_line, outer_line = lines(exporter.path)
    [inner] = inner_line["resourceSpans"][0]["scopeSpans"][0]["spans"]  # type: ignore[index]
    [outer_span] = outer_line["resourceSpans"][0]["scopeSpans"][0]["spans"]  # type: ignore[index]
    assert outer_span["spanId"] == format(outer.get_span_context().span_id, "016x")
    assert inner["parentSpanId"] == outer_span["spanId"]
    assert inner["traceId"] == format(outer.get_span_context().trace_id, "032x")
    assert inner["kind"] == 1


def test_an_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="spanhooks"):
        JsonlSpanExporter("x.jsonl", format="csv")


def test_the_default_path_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPANHOOKS_JSONL_PATH", str(tmp_path / "env.jsonl"))
    assert JsonlSpanExporter().path == tmp_path / "env.jsonl"
    monkeypatch.delenv("SPANHOOKS_JSONL_PATH")
    assert JsonlSpanExporter().path == Path("spanhooks-traces.jsonl")


def test_appending_never_truncates_earlier_records(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    for run in range(3):
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter(path)))
        with provider.get_tracer("t").start_as_current_span(f"run{run}"):
            pass
        provider.shutdown()
    assert [record["name"] for record in lines(path)] == ["run0", "run1", "run2"]


def test_a_torn_tail_is_cut_before_the_next_append(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "torn.jsonl"
    path.write_text('{"name":"complete","span_id":"01"}\n{"name":"torn","spa')
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter(path)))
    with provider.get_tracer("t").start_as_current_span("next"):
        pass
    provider.shutdown()
    assert [record["name"] for record in lines(path)] == ["complete", "next"]
    assert "torn line" in caplog.text


def test_nan_and_infinity_stay_valid_json(
    pipeline: tuple[TracerProvider, JsonlSpanExporter, InMemorySpanExporter],
) -> None:
    provider, exporter, _ = pipeline
    with provider.get_tracer("t").start_as_current_span(
        "odd",
        attributes={
            "nan": float("nan"),
            "inf": float("inf"),
            "ninf": float("-inf"),
            "b": (True, False),
        },
    ):
        pass
    raw = exporter.path.read_text()
    record = json.loads(
        raw, parse_constant=lambda name: pytest.fail(f"invalid JSON constant {name}")
    )
    assert record["attributes"] == {
        "nan": "NaN",
        "inf": "Infinity",
        "ninf": "-Infinity",
        "b": [True, False],
    }


def test_event_set_filters_keep_only_the_chosen_spans(tmp_path: Path) -> None:
    cases = {
        "modules_only": JsonlSpanExporter(tmp_path / "m.jsonl", event_sets={"logillm"}),
        "no_foreign": JsonlSpanExporter(tmp_path / "n.jsonl", include_foreign=False),
        "predicate": JsonlSpanExporter(
            tmp_path / "p.jsonl", predicate=lambda s: s.name.startswith("keep")
        ),
    }
    provider = TracerProvider(shutdown_on_exit=False)
    for exporter in cases.values():
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    for name, scope in (
        ("keep module", "spanhooks.logillm"),  # a spanhooks span's scope names its event set
        ("tool", "spanhooks.llmproc"),
        ("keep foreign", "an.http.client"),
    ):
        with provider.get_tracer(scope).start_as_current_span(name):
            pass
    provider.shutdown()
    assert [r["name"] for r in lines(cases["modules_only"].path)] == ["keep module", "keep foreign"]
    assert [r["name"] for r in lines(cases["no_foreign"].path)] == ["keep module", "tool"]
    assert [r["name"] for r in lines(cases["predicate"].path)] == ["keep module", "keep foreign"]


def test_eight_threads_through_a_batch_processor_write_every_span_intact(tmp_path: Path) -> None:
    exporter = JsonlSpanExporter(tmp_path / "threads.jsonl")
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=100_000))
    tracer = provider.get_tracer("t")

    def work(index: int) -> None:
        for n in range(500):
            with tracer.start_as_current_span(f"t{index}-{n}"):
                pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    provider.shutdown()
    names = [record["name"] for record in lines(exporter.path)]
    assert len(names) == len(set(names)) == 4000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_a_forked_child_writes_its_own_records(tmp_path: Path) -> None:
    exporter = JsonlSpanExporter(tmp_path / "fork.jsonl")
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("before fork"):
        pass
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        with tracer.start_as_current_span("in child"):
            pass
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    with tracer.start_as_current_span("after fork"):
        pass
    provider.shutdown()
    assert status == 0
    assert sorted(record["name"] for record in lines(exporter.path)) == [
        "after fork",
        "before fork",
        "in child",
    ]


def test_shutdown_is_idempotent_and_later_exports_fail(tmp_path: Path) -> None:
    exporter = JsonlSpanExporter(tmp_path / "s.jsonl")
    exporter.shutdown()
    exporter.shutdown()
    assert exporter.export([]) is SpanExportResult.FAILURE
    assert exporter.force_flush() is True


def test_a_write_error_is_a_failed_export_not_an_exception(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    exporter = JsonlSpanExporter(blocker / "cannot" / "exist.jsonl")
    provider = TracerProvider(shutdown_on_exit=False)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("s"):
        pass
    assert exporter.export(memory.get_finished_spans()) is SpanExportResult.FAILURE
