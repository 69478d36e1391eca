"""The local JSONL file never drops a span for lack of room, and accounts for every one.

The burst test is ``bench/burst.py`` run as users run ``setup()``: 16 threads emitting start/end
pairs as fast as they can, every span then looked for in the file. The processor's own bounds
(backpressure that gives up on a writer that makes no progress, shutdown, flush) are tested on
a real TracerProvider with the real JSONL exporter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from spanhooks.export.accounting import AccountedExporter
from spanhooks.export.jsonl import JsonlSpanExporter
from spanhooks.export.local_file import LocalFileProcessor
from spanhooks.export.reader import read_spans
from spanhooks.util.deadline import SharedDeadline

ROOT = Path(__file__).resolve().parents[2]
BURST_SPANS = int(os.environ.get("SPANHOOKS_BURST_SPANS", "1000000"))
RSS_BOUND_MB = 100


@pytest.mark.slow
def test_sixteen_threads_flat_out_lose_no_span_to_the_file() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "burst.py"),
            "--mode",
            "local",
            "--threads",
            "16",
            "--spans",
            str(BURST_SPANS),
        ],
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.splitlines()[0])
    assert result["produced"] == BURST_SPANS
    assert result["lost"] == 0
    assert result["distinct_ids"] == BURST_SPANS
    assert result["torn_tail_bytes"] == 0
    assert result["counts"]["dropped"] == 0
    assert result["counts"]["exported"] == BURST_SPANS
    assert result["peak_rss_mb"] < RSS_BOUND_MB


class _HeldDisk(SpanExporter):
    """The real JSONL exporter behind a gate: ``export`` waits until the test opens it, as a
    write to a hung disk would."""

    def __init__(self, path: Path) -> None:
        self.inner = JsonlSpanExporter(path)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.gate.wait(30)
        return self.inner.export(spans)

    def shutdown(self) -> None:
        self.gate.set()
        self.inner.shutdown()


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[_HeldDisk, AccountedExporter, TracerProvider]]:
    disk = _HeldDisk(tmp_path / "held.jsonl")
    accounted = AccountedExporter(disk, "held")
    provider = TracerProvider(shutdown_on_exit=False)
    processor = LocalFileProcessor(
        accounted, SharedDeadline(5.0), max_pending=8, max_batch=4, max_block=0.2
    )
    provider.add_span_processor(processor)
    yield disk, accounted, provider
    disk.gate.set()
    provider.shutdown()


def _spans(provider: TracerProvider, count: int) -> None:
    tracer = provider.get_tracer("test")
    for index in range(count):
        tracer.start_span(f"span{index}").end()


def test_emitters_give_up_on_a_writer_that_makes_no_progress_and_count_what_they_dropped(
    held: tuple[_HeldDisk, AccountedExporter, TracerProvider],
) -> None:
    disk, accounted, provider = held
    _spans(provider, 1)
    assert disk.entered.wait(5)  # the writer now holds one span and waits on the disk
    began = time.monotonic()
    _spans(provider, 12)  # 8 fit while waiting; then each of the rest waits 0.2 s and drops
    waited = time.monotonic() - began
    counts = accounted.counts()
    assert counts["handed"] == 13
    assert counts["queue_full"] == 13 - 1 - counts["queued"]
    assert 0.2 <= waited < 30
    disk.gate.set()
    assert provider.force_flush(5_000)
    counts = accounted.counts()
    assert counts["exported"] + counts["queue_full"] == 13
    assert counts["queued"] == 0


def test_emitters_wait_for_a_slow_writer_instead_of_dropping(tmp_path: Path) -> None:
    path = tmp_path / "slow.jsonl"

    class SlowDisk(JsonlSpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            time.sleep(0.05)  # slow but moving: 20 batches a second
            return super().export(spans)

    accounted = AccountedExporter(SlowDisk(path), "slow")
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(
        LocalFileProcessor(accounted, max_pending=8, max_batch=4, max_block=0.2)
    )
    _spans(provider, 60)  # far more than fit, for longer than max_block in all
    provider.shutdown()
    assert accounted.counts()["dropped"] == 0
    assert len(read_spans(path).spans) == 60


def test_spans_that_end_after_shutdown_are_counted_as_dropped_at_shutdown(
    tmp_path: Path,
) -> None:
    accounted = AccountedExporter(JsonlSpanExporter(tmp_path / "late.jsonl"), "late")
    provider = TracerProvider(shutdown_on_exit=False)
    processor = LocalFileProcessor(accounted)
    provider.add_span_processor(processor)
    _spans(provider, 3)
    processor.shutdown()
    tracer = provider.get_tracer("test")
    tracer.start_span("late").end()
    counts = accounted.counts()
    assert (counts["exported"], counts["shutdown"], counts["dropped"]) == (3, 1, 1)
    assert len(read_spans(tmp_path / "late.jsonl").spans) == 3


def test_force_flush_returns_false_within_its_timeout_while_the_disk_hangs(
    held: tuple[_HeldDisk, AccountedExporter, TracerProvider],
) -> None:
    disk, _, provider = held
    _spans(provider, 2)
    assert disk.entered.wait(5)
    began = time.monotonic()
    assert provider.force_flush(200) is False
    assert time.monotonic() - began < 5


@pytest.mark.parametrize(
    "options",
    [{"max_pending": 0}, {"max_batch": -1}, {"max_block": 0}, {"max_block": float("inf")}],
)
def test_bad_bounds_are_refused_when_the_processor_is_made(
    tmp_path: Path, options: dict[str, float]
) -> None:
    accounted = AccountedExporter(JsonlSpanExporter(tmp_path / "x.jsonl"), "x")
    with pytest.raises(ValueError, match=next(iter(options))):
        LocalFileProcessor(accounted, **options)  # type: ignore[arg-type]


def _mount_tmpfs(where: Path, options: str) -> None:
    """Mount a small tmpfs at ``where`` (root only): a disk that fills up, or is read-only."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "disk"
    _mount_tmpfs(where, "size=64k")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "ro"
    _mount_tmpfs(where, "ro,size=64k")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def _pipeline(path: Path) -> tuple[AccountedExporter, TracerProvider]:
    accounted = AccountedExporter(JsonlSpanExporter(path), "disk")
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(LocalFileProcessor(accounted))
    return accounted, provider


def test_a_full_disk_counts_every_span_as_written_or_failed_and_leaves_no_torn_line(
    small_disk: Path,
) -> None:
    path = small_disk / "full.jsonl"
    accounted, provider = _pipeline(path)
    tracer = provider.get_tracer("test")
    for index in range(1_000):  # about 500 bytes a line: far more than 64 KiB
        tracer.start_span(f"span{index}", attributes={"padding": "x" * 200}).end()
    assert provider.force_flush(10_000)
    counts = accounted.counts()
    content = path.read_bytes()
    assert content.endswith(b"\n")
    assert counts["exported"] == content.count(b"\n") == len(read_spans(path).spans)
    assert counts["failed"] > 0
    assert counts["exported"] + counts["failed"] == 1_000
    assert counts["dropped"] == counts["export_failed"] == counts["failed"]
    provider.shutdown()


def test_a_read_only_disk_fails_every_span_counted_and_the_emitter_sees_nothing(
    read_only_disk: Path,
) -> None:
    accounted, provider = _pipeline(read_only_disk / "spans.jsonl")
    tracer = provider.get_tracer("test")
    for index in range(50):
        tracer.start_span(f"span{index}").end()
    assert provider.force_flush(10_000)
    counts = accounted.counts()
    assert (counts["exported"], counts["failed"], counts["dropped"]) == (0, 50, 50)
    provider.shutdown()


def test_a_torn_last_line_is_cut_when_the_exporter_starts_not_at_its_first_write(
    tmp_path: Path,
) -> None:
    path = tmp_path / "torn.jsonl"
    path.write_bytes(b'{"complete": 1}\n{"torn": ')  # what a process killed mid-write leaves
    JsonlSpanExporter(path)
    assert path.read_bytes() == b'{"complete": 1}\n'


def _write_spans(provider: TracerProvider, names: list[str]) -> None:
    tracer = provider.get_tracer("test")
    for name in names:
        tracer.start_span(name).end()
    assert provider.force_flush(10_000)


def _names(path: Path) -> list[str]:
    return [span["name"] for span in read_spans(path).spans]


def test_a_file_renamed_by_log_rotation_is_written_anew_at_its_path(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jsonl"
    accounted, provider = _pipeline(path)
    _write_spans(provider, ["before"])
    path.rename(tmp_path / "rotated.jsonl.1")
    _write_spans(provider, ["after"])
    assert _names(tmp_path / "rotated.jsonl.1") == ["before"]
    assert _names(path) == ["after"]
    assert accounted.counts()["exported"] == 2
    provider.shutdown()


def test_a_file_deleted_while_open_is_created_again(tmp_path: Path) -> None:
    path = tmp_path / "deleted.jsonl"
    _, provider = _pipeline(path)
    _write_spans(provider, ["before"])
    path.unlink()
    _write_spans(provider, ["after"])
    assert _names(path) == ["after"]
    provider.shutdown()


def test_a_file_truncated_in_place_by_copytruncate_gets_the_next_spans_from_its_start(
    tmp_path: Path,
) -> None:
    path = tmp_path / "copied.jsonl"
    _, provider = _pipeline(path)
    _write_spans(provider, ["before"])
    (tmp_path / "copied.jsonl.1").write_bytes(path.read_bytes())  # logrotate's copy ...
    os.truncate(path, 0)  # ... then truncate
    _write_spans(provider, ["after"])
    assert path.read_bytes().startswith(b"{")  # no hole of zero bytes where the old lines were
    assert _names(path) == ["after"]
    assert _names(tmp_path / "copied.jsonl.1") == ["before"]
    provider.shutdown()
