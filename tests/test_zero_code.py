"""Zero-code start: ``python -m spanhooks run`` and ``opentelemetry-instrument`` configure
spanhooks from the environment for a program that never imports it, and the instrumentor's
``uninstrument()`` undoes ``instrument()``. Every program runs in a real child process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from spanhooks import read_spans
from spanhooks.export.reader import SpanRecord

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
VENV_BIN = Path(sys.executable).parent
# Attributes that differ between two runs of the same program.
_VARYING = {
    "gen_ai.response.time_to_first_chunk",
    "spanhooks.stream.time_per_output_chunk",
    "process.pid",
    "service.instance.id",
}


def run(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    clean["PATH"] = f"{VENV_BIN}{os.pathsep}{clean.get('PATH', '')}"
    return subprocess.run(
        list(argv), cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


def shape(spans: list[SpanRecord]) -> list[tuple[Any, ...]]:
    """Each span as (name, parent's name, kind, status, attributes), ids and times left out."""
    names = {span["span_id"]: span["name"] for span in spans}
    return sorted(
        (
            span["name"],
            names.get(span.get("parent_span_id") or ""),
            span.get("kind"),
            span.get("status", {}).get("code"),
            sorted(
                (k, repr(v)) for k, v in span.get("attributes", {}).items() if k not in _VARYING
            ),
            [event["name"] for event in span.get("events", [])],
        )
        for span in spans
    )


def test_run_exports_a_plain_opentelemetry_program_to_jsonl(tmp_path: Path) -> None:
    script = EXAMPLES / "otel_only.py"
    assert "spanhooks" not in script.read_text().split('"""')[-1]  # the code never names it
    done = run(sys.executable, "-m", "spanhooks", "run", str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"
    default = (tmp_path / "spanhooks-traces.jsonl").resolve()
    assert f"spanhooks: writing spans to {default}" in done.stderr
    spans = read_spans(default).spans
    assert shape(spans) == [
        ("handle request", None, "INTERNAL", "UNSET", [("http.route", "'/answer'")], []),
        ("load profile", "handle request", "INTERNAL", "UNSET", [], []),
        ("render", "handle request", "INTERNAL", "UNSET", [], []),
    ]


def test_opentelemetry_instrument_loads_spanhooks_through_its_entry_point(tmp_path: Path) -> None:
    path = tmp_path / "instrumented.jsonl"
    done = run(
        str(VENV_BIN / "opentelemetry-instrument"),
        sys.executable,
        str(EXAMPLES / "otel_only.py"),
        cwd=tmp_path,
        SPANHOOKS_JSONL_PATH=str(path),
    )
    assert done.returncode == 0, done.stderr
    assert f"spanhooks: writing spans to {path.resolve()}" in done.stderr
    assert [span["name"] for span in read_spans(path).spans] == [
        "load profile",
        "render",
        "handle request",
    ]


def test_run_gives_the_same_trace_as_setup_in_code(tmp_path: Path) -> None:
    zero_code, in_code = tmp_path / "zero_code.jsonl", tmp_path / "in_code.jsonl"
    first = run(
        sys.executable,
        "-m",
        "spanhooks",
        "run",
        str(EXAMPLES / "agent.py"),
        cwd=tmp_path,
        SPANHOOKS_JSONL_PATH=str(zero_code),
        OTEL_SERVICE_NAME="helpdesk",
    )
    second = run(
        sys.executable,
        str(EXAMPLES / "setup_in_code.py"),
        cwd=tmp_path,
        SPANHOOKS_JSONL_PATH=str(in_code),
        OTEL_SERVICE_NAME="helpdesk",
    )
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout
    spans = read_spans(zero_code).spans
    assert len(spans) == 8
    assert shape(spans) == shape(read_spans(in_code).spans)
    assert {span["resource"]["service.name"] for span in spans} == {"helpdesk"}


def test_run_passes_arguments_and_the_exit_status_through(tmp_path: Path) -> None:
    script = tmp_path / "exits.py"
    script.write_text("import sys\nprint(sys.argv[1:])\nsys.exit(int(sys.argv[1]))\n")
    done = run(sys.executable, "-m", "spanhooks", "run", str(script), "3", "--flag", cwd=tmp_path)
    assert done.returncode == 3
    assert done.stdout == "['3', '--flag']\n"


def test_run_runs_a_module_with_dash_m(tmp_path: Path) -> None:
    package = tmp_path / "app"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        textwrap.dedent(
            """
            from opentelemetry import trace
            with trace.get_tracer("app").start_as_current_span("module main"):
                print("ran as", __name__)
            """
        )
    )
    path = tmp_path / "module.jsonl"
    done = run(
        sys.executable,
        "-m",
        "spanhooks",
        "run",
        "-m",
        "app",
        cwd=tmp_path,
        SPANHOOKS_JSONL_PATH=str(path),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ran as __main__\n"
    assert [span["name"] for span in read_spans(path).spans] == ["module main"]


def test_run_reports_a_missing_script_in_one_line(tmp_path: Path) -> None:
    done = run(sys.executable, "-m", "spanhooks", "run", "nowhere.py", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == "spanhooks run: no such file: nowhere.py"


def test_uninstrument_undoes_instrument(tmp_path: Path) -> None:
    program = tmp_path / "toggle.py"
    program.write_text(
        textwrap.dedent(
            """
            import signal
            from opentelemetry import trace
            import spanhooks
            from spanhooks.instrumentation import SpanhooksInstrumentor

            def mine(signum, frame):
                pass

            signal.signal(signal.SIGTERM, mine)
            manager = spanhooks.get_callback_manager()
            policy = manager.attribute_policy
            instrumentor = SpanhooksInstrumentor()
            instrumentor.instrument(capture_content=True)
            instrumentor.instrument()  # a second call changes nothing
            assert signal.getsignal(signal.SIGTERM) is not mine
            assert manager.capture_content
            tracer = trace.get_tracer("toggle")
            with tracer.start_as_current_span("while instrumented"):
                spanhooks.emit("tool_start", "search", {})
                spanhooks.emit("tool_end", "search", "ok")
            instrumentor.uninstrument()
            assert signal.getsignal(signal.SIGTERM) is mine
            assert manager.attribute_policy is policy
            with tracer.start_as_current_span("after uninstrument"):
                spanhooks.emit("tool_start", "search", {})
                spanhooks.emit("tool_end", "search", "ok")
            instrumentor.instrument()
            with tracer.start_as_current_span("instrumented again"):
                pass
            print("ok")
            """
        )
    )
    path = tmp_path / "toggle.jsonl"
    done = run(sys.executable, str(program), cwd=tmp_path, SPANHOOKS_JSONL_PATH=str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"
    assert [span["name"] for span in read_spans(path).spans] == [
        "execute_tool search",
        "while instrumented",
        "instrumented again",
    ]
