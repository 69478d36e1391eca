"""The benchmark's workloads run and lose no span (correctness only: no timing in tests)."""

from __future__ import annotations

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
    assert ran >= 20  # spanhooks and every installed peer, W0 to W5


@pytest.mark.slow
def test_the_rss_workload_reports_peak_memory_and_exports() -> None:
    rss = BENCH.parent / "rss.py"
    done = subprocess.run(
        [sys.executable, str(rss), "spanhooks", "2000"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert '"exported": 1000' in done.stdout
