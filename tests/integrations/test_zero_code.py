"""Zero code: ``spanhooks run`` and ``opentelemetry-instrument`` trace every installed framework
for a program that never imports spanhooks, each switch turns one off, and importing spanhooks
imports no framework. Every program runs in a real child process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spanhooks import read_spans
from spanhooks.integrations.installed import (
    INTEGRATIONS,
    disabled_integrations,
    entry_point_name,
    instrument_integration,
)

VENV_BIN = Path(sys.executable).parent
FRAMEWORK_MODULES = ("llmproc", "logillm", "langchain_core", "llama_index", "agents", "dspy", "mcp")

LOGILLM_APP = """
import asyncio
from logillm.core.predict import Predict
from logillm.providers.mock import MockProvider

qa = Predict("question -> answer", provider=MockProvider(response_text="answer: 4"))
print(asyncio.run(qa(question="2+2?")).outputs["answer"])
"""


def run(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    clean["PATH"] = f"{VENV_BIN}{os.pathsep}{clean.get('PATH', '')}"
    return subprocess.run(
        list(argv), cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def app(tmp_path: Path) -> Path:
    pytest.importorskip("logillm")
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(LOGILLM_APP))
    return script


def _names(path: Path) -> list[str]:
    return [span["name"] for span in read_spans(path).spans] if path.exists() else []


def test_run_traces_an_installed_framework_the_program_never_tells_about(
    app: Path, tmp_path: Path
) -> None:
    path = tmp_path / "traces.jsonl"
    done = run(
        sys.executable,
        "-m",
        "spanhooks",
        "run",
        str(app),
        cwd=tmp_path,
        SPANHOOKS_JSONL_PATH=str(path),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "4\n"
    tracing = next(line for line in done.stderr.splitlines() if "spanhooks: tracing" in line)
    assert "logillm" in tracing
    assert "module Predict" in _names(path)


def test_run_imports_no_framework_the_program_does_not_import(tmp_path: Path) -> None:
    script = tmp_path / "plain.py"
    script.write_text(
        f"import sys\nprint(sorted(m for m in {FRAMEWORK_MODULES!r} if m in sys.modules))\n"
    )
    done = run(sys.executable, "-m", "spanhooks", "run", str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"  # instrumented at their import, which never comes


def test_spanhooks_disabled_integrations_turns_one_framework_off(app: Path, tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    done = run(
        sys.executable,
        "-m",
        "spanhooks",
        "run",
        str(app),
        cwd=tmp_path,
        SPANHOOKS_JSONL_PATH=str(path),
        SPANHOOKS_DISABLED_INTEGRATIONS="logillm",
    )
    assert done.returncode == 0, done.stderr
    assert "logillm" not in "".join(x for x in done.stderr.splitlines() if "tracing" in x)
    assert _names(path) == []


def test_opentelemetry_instrument_finds_each_integration_by_its_entry_point(
    app: Path, tmp_path: Path
) -> None:
    path = tmp_path / "traces.jsonl"
    done = run(
        str(VENV_BIN / "opentelemetry-instrument"),
        sys.executable,
        str(app),
        cwd=tmp_path,
        SPANHOOKS_JSONL_PATH=str(path),
    )
    assert done.returncode == 0, done.stderr
    assert "module Predict" in _names(path)


def test_otel_python_disabled_instrumentations_names_an_integration_s_entry_point(
    app: Path, tmp_path: Path
) -> None:
    path = tmp_path / "traces.jsonl"
    done = run(
        str(VENV_BIN / "opentelemetry-instrument"),
        sys.executable,
        str(app),
        cwd=tmp_path,
        SPANHOOKS_JSONL_PATH=str(path),
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="spanhooks-logillm",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "4\n"
    assert "module Predict" not in _names(path)


def test_every_integration_has_an_opentelemetry_instrumentor_entry_point() -> None:
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group="opentelemetry_instrumentor")}
    for name in INTEGRATIONS:
        instrumentor = found[entry_point_name(name)].load()
        assert instrumentor.integration == name


def test_importing_spanhooks_and_its_integrations_imports_no_framework() -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import spanhooks, spanhooks.instrumentation
        from spanhooks.integrations import installed
        for name in installed.INTEGRATIONS:
            installed.integration_module(name)
        print(sorted(m for m in {FRAMEWORK_MODULES!r} if m in sys.modules))
        """
    )
    done = run(sys.executable, "-c", code, cwd=Path.cwd())
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


@pytest.mark.parametrize("name", sorted(INTEGRATIONS))
def test_a_missing_framework_is_one_line_naming_the_extra(name: str) -> None:
    top = {
        "langchain": "langchain_core",
        "llamaindex": "llama_index",
        "openai_agents": "agents",
    }.get(name, name)
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules[{top!r}] = None  # what Python does for a package that is not installed
        from spanhooks.integrations import {name} as integration
        try:
            integration.instrument()
        except ImportError as exc:
            print(exc)
        """
    )
    done = run(sys.executable, "-c", code, cwd=Path.cwd())
    assert done.returncode == 0, done.stderr
    extra = name.replace("_", "-")
    assert done.stdout.endswith(f"pip install 'spanhooks[{extra}]'\n")
    assert len(done.stdout.splitlines()) == 1


def test_the_disable_switches_name_integrations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANHOOKS_DISABLED_INTEGRATIONS", "dspy, langchain")
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "requests,spanhooks-openai-agents")
    assert disabled_integrations() == {"dspy", "langchain", "openai_agents"}
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "*")
    assert disabled_integrations() == set(INTEGRATIONS)
    assert instrument_integration("logillm") == "disabled"


def test_an_unknown_integration_is_an_error_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown integration 'crewai'; known: llmproc"):
        instrument_integration("crewai")
