"""What the end-to-end tests share: running the demo as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from spanhooks import read_spans
from spanhooks.export.reader import SpanRecord

RunDemo = Callable[..., list[SpanRecord]]


@pytest.fixture
def run_demo() -> RunDemo:
    """Run ``spanhooks demo`` in a directory with extra environment; its spans from the JSONL file."""

    def run(directory: Path, **env: str) -> list[SpanRecord]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
        done = subprocess.run(
            [sys.executable, "-m", "spanhooks", "demo", "-o", "run.jsonl"],
            cwd=directory,
            env={**clean, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return read_spans(directory / "run.jsonl").spans

    return run
