"""``spanhooks html``: a self-contained waterfall page, drawn by a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spanhooks import read_spans

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The demo's trace file and the page drawn from it."""
    workdir = tmp_path_factory.mktemp("html")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    for args in (["demo", "-o", "run.jsonl"], ["html", "run.jsonl", "-o", "traces.html"]):
        done = subprocess.run(
            [sys.executable, "-m", "spanhooks", *args],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    return workdir / "run.jsonl", workdir / "traces.html"


def test_the_page_fetches_nothing(page: tuple[Path, Path]) -> None:
    text = page[1].read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<link" not in text and "@import" not in text and "url(" not in text


def test_the_page_embeds_every_span(page: tuple[Path, Path]) -> None:
    trace_file, html_file = page
    data = html_file.read_text().split("const TRACES = ", 1)[1].split(";\n", 1)[0]
    drawn = sorted(span["name"] for trace in json.loads(data) for span in trace["spans"])
    assert drawn == sorted(span["name"] for span in read_spans(trace_file).spans)


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None, reason="LOUD SKIP: Debian's chromium is not installed (.ci/run installs it)"
)
def test_chromium_draws_a_row_per_span_with_the_failure_in_red(
    page: tuple[Path, Path], tmp_path: Path
) -> None:
    trace_file, html_file = page
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            html_file.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = re.findall(r'<tr class="span( error)?" data-span="([^"]+)"', done.stdout)
    assert len(rows) == len(read_spans(trace_file).spans)
    assert sorted(name for error, name in rows if error) == [
        "chat claude-demo",
        "execute_tool calculator",
    ]
    assert "trace " in done.stdout and "spans ·" in done.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None, reason="LOUD SKIP: Debian's chromium is not installed (.ci/run installs it)"
)
def test_chromium_takes_a_screenshot_of_the_page(page: tuple[Path, Path], tmp_path: Path) -> None:
    assert CHROMIUM is not None
    shot = tmp_path / "page.png"
    subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,900",
            f"--screenshot={shot}",
            page[1].as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000  # a drawn page, not a blank one
