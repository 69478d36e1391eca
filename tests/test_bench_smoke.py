"""The benchmark's workloads run and lose no span (correctness only: no timing in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "run.py"


@pytest.mark.slow
def test_every_benchmark_workload_runs_once_and_exports_every_span() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--smoke"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 problems" in done.stdout
    ran = int(done.stdout.split("smoke: ")[1].split(" cases")[0])
    assert ran >= 20  # spanhooks and every installed peer, W0 to W5; W6's exporters too


@pytest.mark.slow
def test_the_rss_workload_reports_peak_memory_and_exports() -> None:
    rss = BENCH.parent / "rss.py"
    done = subprocess.run(
        [sys.executable, str(rss), "spanhooks", "2000"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert '"exported": 1000' in done.stdout


@pytest.mark.slow
def test_the_fault_benchmark_accounts_for_every_span_with_the_collector_up_dead_or_hanging() -> (
    None
):
    faults = BENCH.parent / "faults.py"
    done = subprocess.run(
        [sys.executable, str(faults), "--smoke"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    for mode in ("healthy", "dead", "hanging"):
        assert summary["emit"][mode]["exact"], summary
        assert summary["emit"][mode]["last_round_counts"]["handed"] == 400
    assert summary["emit"]["healthy"]["last_round_counts"]["exported"] == 400
    for case in ("spanhooks, collector dead", "spanhooks, collector hanging"):
        assert summary["exit"][case]["jsonl"] == 2000


def test_the_step_benchmark_variants_each_export_their_span_and_leave_nothing_open() -> None:
    steps = BENCH.parent / "steps.py"
    done = subprocess.run(
        [sys.executable, str(steps), "--smoke"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "smoke: 8 variants, 0 problems" in done.stdout


def test_the_burst_benchmark_runs_both_paths_and_the_local_file_loses_nothing() -> None:
    burst = BENCH.parent / "burst.py"
    done = subprocess.run(
        [sys.executable, str(burst), "--smoke"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = {r["mode"]: r for r in map(json.loads, done.stdout.splitlines()[:2])}
    assert results["local"]["lost"] == 0
    assert results["batch"]["produced"] == results["local"]["produced"] == 4000
    batch = results["batch"]
    assert batch["lines"] + batch["counts"]["dropped"] == batch["produced"]  # lost, but counted


@pytest.mark.slow
def test_the_scale_benchmark_runs_every_row_and_every_span_arrives() -> None:
    scale = BENCH.parent / "scale.py"
    done = subprocess.run(
        [sys.executable, str(scale), "--smoke"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scale: 21 rows, 0 problems" in done.stdout  # 7 shapes, to JSONL and OTLP (2 queues)
    rows = json.loads(done.stdout.splitlines()[-1])
    assert {row["path"] for row in rows} == {"jsonl", "otlp", "otlp-bigq"}
    assert {(row["threads"], row["attributes"], row["depth"]) for row in rows} >= {
        (16, 10, 1),
        (1, 100, 1),
        (1, 10, 100),
    }
    for row in rows:
        assert row["made"] > 0 and row["arrived"] == row["made"], row
        assert not any(row["dropped"].values()), row


@pytest.mark.slow
def test_the_integration_benchmark_runs_every_installed_framework_and_loses_no_span() -> None:
    integrations = BENCH.parent / "integrations.py"
    done = subprocess.run(
        [sys.executable, str(integrations), "--smoke"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 problems" in done.stdout
    ran = int(done.stdout.split("smoke: ")[1].split(" cases")[0])
    assert ran >= 2 * 2 * 4  # two calls, at least two variants, four frameworks
