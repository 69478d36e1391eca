"""Every framework example runs as the README says (``python examples/<name>.py``), offline, in
a child process, and prints the trace it wrote: the span at its root and a model call under it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

CASES = [
    ("llmproc_agent.py", "llmproc", "chat "),
    ("logillm_module.py", "logillm", "module Predict"),
    ("langchain_agent.py", "langchain", "invoke_agent calculator"),
    ("llamaindex_query.py", "llama_index.core", "workflow RetrieverQueryEngine.query"),
    ("openai_agents_handoff.py", "agents", "workflow Agent workflow"),
    ("dspy_program.py", "dspy", "chat "),
    ("mcp_tool_call.py", "mcp", "tools/call add"),
]


@pytest.mark.parametrize(("example", "framework", "root"), CASES, ids=[c[0] for c in CASES])
def test_example_runs_offline_and_prints_its_trace(
    example: str, framework: str, root: str | None, tmp_path: Path
) -> None:
    if importlib.util.find_spec(framework.partition(".")[0]) is None:
        pytest.skip(f"{framework} not installed")
    if not (EXAMPLES / example).exists():
        pytest.fail(f"examples/{example} is missing")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / example)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert "trace " in done.stdout
    if root is not None:
        assert root in done.stdout
    assert (tmp_path / "spanhooks-traces.jsonl").stat().st_size > 0
