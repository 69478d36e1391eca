"""LogiLLM's callback documentation, run on spanhooks with the real LogiLLM: every code block of
the seed document, with only its callback import lines changed (``tests/seeds/import_maps.py``'s
``LOGILLM``: ``logillm.core.callbacks``, ``.jsonl_callback``, ``.jsonl_logger``), and the trace a
LogiLLM user should see for it.

``Predict``, ``MockProvider``, ``register_provider`` and the optimizers are LogiLLM 0.2.x itself
(``MockProvider`` needs no network). Its events reach the blocks' callbacks because
``spanhooks.compat.logillm`` routes LogiLLM's ``callback_manager`` into spanhooks
(``spanhooks.integrations.logillm.instrument()``) at the first ``CallbackManager()`` call: no
block calls a spanhooks function.

How a block runs: its text, after ``rewrite_imports`` and the completion the table below states
(prepended, written with the seed's own import lines, so the rewrite applies to it too), is
compiled as an asyncio program with top-level ``await`` allowed (as ``python -m asyncio`` or a
notebook runs the document's snippets, which await at top level) and run in a fresh namespace.
The process-wide manager, which ``CallbackManager()`` is, is captured on an in-memory SDK
pipeline (the ``spanhooks_capture`` fixture); the complete example runs as a script in a
child process under ``python -m spanhooks run`` and its JSONL trace file is read back.

Each test leaves LogiLLM as it found it: uninstrumented, its ``callback_manager`` with the
registrations it had, its provider registry restored (the ``real_logillm`` fixture checks).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("logillm", reason="logillm not installed: pip install 'spanhooks[logillm]'")

from logillm.core import callbacks as logillm_callbacks
from logillm.core.modules import Module
from logillm.core.predict import Predict
from logillm.core.types import Prediction
from logillm.providers import register_provider, registry
from logillm.providers.mock import MockProvider
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from tests.seeds.blocks import document, fenced_blocks
from tests.seeds.import_maps import LOGILLM, rewrite_imports

import spanhooks
import spanhooks.compat.logillm as compat
from spanhooks import read_spans
from spanhooks.compat.logillm import (
    ENABLED_ENV,
    AbstractCallback,
    CallbackManager,
    CallbackType,
    ModuleEndEvent,
    ModuleStartEvent,
    Priority,
)
from spanhooks.integrations import logillm as integration
from spanhooks.testing import Capture, capture

BLOCKS = fenced_blocks(document("logillm"))
BLOCK = {block.line: block for block in BLOCKS}

AS_IS = "runnable as is"
COMPLETED = "runnable after a stated completion"
NOT_CODE = "not code to run"

# -- the completions, in the seed's own import lines ------------------------------------------

IMPORT_MANAGER = "from logillm.core.callbacks import CallbackManager\n"
IMPORT_BASE = "from logillm.core.callbacks import AbstractCallback\n"

DEFAULT_PROVIDER = """\
# Completion: the real Predict needs a provider and the quick start registers none; this is
# the complete example's own setup (LogiLLM's MockProvider, registered as the default).
from logillm.providers.mock import MockProvider
from logillm.providers import register_provider
register_provider(MockProvider(), set_default=True)
"""

OPTIMIZER = """\
# Completion: the document leaves optimizer, module and dataset undefined. They are LogiLLM's
# own: the LabeledFewShot optimizer with an exact-match metric, a Predict module over a
# MockProvider registered as the default, and a one-example dataset.
from logillm.core.predict import Predict
from logillm.optimizers.labeled_fewshot import LabeledFewShot
from logillm.providers import register_provider
from logillm.providers.mock import MockProvider

def exact(outputs, expected):
    return float(outputs.get("answer") == expected.get("answer"))

register_provider(MockProvider(responses=["answer: 4", "answer: 5"]), set_default=True)
optimizer = LabeledFewShot(metric=exact, max_demos=1)
module = Predict("question -> answer")
dataset = [{"inputs": {"question": "2+2?"}, "outputs": {"answer": "4"}}]
"""

MY_CALLBACK = """\
# Completion: the document leaves MyCallback and manager undefined; MyCallback notes what it gets.
from logillm.core.callbacks import AbstractCallback, CallbackManager

class MyCallback(AbstractCallback):
    seen = []
    async def on_module_start(self, event):
        MyCallback.seen.append("module_start")
    async def on_module_end(self, event):
        MyCallback.seen.append("module_end")
    async def on_provider_request(self, event):
        MyCallback.seen.append("provider_request")

manager = CallbackManager()
"""


def definition(line: int, name: str) -> str:
    """The source of class ``name`` as the block at ``line`` defines it."""
    text = BLOCK[line].text
    for node in ast.parse(text).body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            segment = ast.get_source_segment(text, node)
            assert segment is not None
            return segment + "\n"
    raise LookupError(f"no class {name} in the block at line {line}")


def multiple_callbacks_completion() -> str:
    return (
        "# Completion: the imports, and SimpleLogger and OptimizationMonitor as the document\n"
        "# defines them earlier (lines 21 and 134).\n"
        "from logillm.core.callbacks import AbstractCallback, CallbackManager, ModuleEndEvent\n"
        "from logillm.core.jsonl_callback import JSONLCallback\n"
        + definition(21, "SimpleLogger")
        + definition(134, "OptimizationMonitor")
    )


# Every block, by the line it starts on: how it runs and, when completed, exactly what is added.
TABLE: dict[int, tuple[str, str]] = {
    21: (COMPLETED, "awaits at top level; the real Predict needs a provider: DEFAULT_PROVIDER"),
    43: (COMPLETED, "uses CallbackManager without importing it: the import is added"),
    100: (AS_IS, "defines CustomCallback; the test registers it and runs a real Predict"),
    119: (AS_IS, "defines HighPriorityCallback; the test registers it beside a normal one"),
    134: (COMPLETED, "no import line: `from ... import AbstractCallback` is added"),
    168: (COMPLETED, "uses CallbackManager without importing it: the import is added"),
    186: (COMPLETED, "legacy wrapper over undefined optimizer, module, dataset: OPTIMIZER added"),
    194: (COMPLETED, "awaits an undefined optimizer over module, dataset: OPTIMIZER added"),
    212: (COMPLETED, "no import line: `from ... import AbstractCallback` is added"),
    222: (
        COMPLETED,
        "undefined names from earlier blocks: imports, SimpleLogger, OptimizationMonitor",
    ),
    235: (COMPLETED, "undefined manager and MyCallback: MY_CALLBACK (a noting callback) added"),
    247: (AS_IS, "the complete example, as a script (python -m spanhooks run main.py)"),
    354: (COMPLETED, "uses CallbackManager without importing it: the import is added"),
    360: (COMPLETED, "uses manager undefined: the import and `manager = CallbackManager()` added"),
    365: (AS_IS, "prints the environment switch"),
}

COMPLETION: dict[int, str] = {
    21: DEFAULT_PROVIDER,
    43: IMPORT_MANAGER,
    134: IMPORT_BASE,
    168: IMPORT_MANAGER,
    186: OPTIMIZER,
    194: OPTIMIZER,
    212: IMPORT_BASE,
    222: multiple_callbacks_completion(),
    235: MY_CALLBACK,
    354: IMPORT_MANAGER,
    360: IMPORT_MANAGER + "manager = CallbackManager()\n",
}


def source(line: int) -> str:
    """What runs for the block at ``line``: its completion and text, imports rewritten."""
    return rewrite_imports(COMPLETION.get(line, "") + BLOCK[line].text, LOGILLM)


def run_block(line: int, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the block at ``line`` in a fresh namespace (or ``namespace``) and return it."""
    namespace = {"__name__": f"logillm_block_line{line}"} if namespace is None else namespace
    code = compile(
        source(line), f"<logillm.txt:{line}>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    )
    result = eval(code, namespace)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
    return namespace


def printed(line: int, namespace: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """Run the block at ``line``; its namespace and what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ns = run_block(line, namespace)
    return ns, out.getvalue()


def ask(module: Any, question: str = "What is AI?") -> Prediction:
    """One call of ``module``, as a LogiLLM user's code makes it."""
    result: Prediction = asyncio.run(module(question=question))
    return result


def default_mock(**options: Any) -> MockProvider:
    """LogiLLM's MockProvider, registered as the default provider (as the document does)."""
    provider = MockProvider(**options)
    register_provider(provider, set_default=True)
    return provider


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


CHAT = {"name": "chat mock-model", "status": "UNSET", "events": [], "children": []}
MODULE_TREE = [{"name": "module Predict", "status": "UNSET", "events": [], "children": [CHAT]}]
"""What one ``Predict`` call looks like in the trace: its module span and the provider's chat."""


@pytest.fixture(autouse=True)
def real_logillm(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The real LogiLLM, not yet routed into spanhooks (the blocks' first ``CallbackManager()``
    does it), and left as found: uninstrumented, its callback_manager's registrations and
    switch unchanged, its provider registry restored."""
    manager = logillm_callbacks.callback_manager
    registered, enabled = manager.get_registered_callbacks(), manager.is_enabled()
    providers, default = dict(registry._provider_registry), registry._default_provider
    assert not integration.is_instrumented()
    monkeypatch.setattr(compat, "_auto", compat._AutoInstrument())  # this test's first call
    monkeypatch.setattr(compat, "_switch", compat._EnvSwitch())
    yield
    integration.uninstrument()
    registry._provider_registry.clear()
    registry._provider_registry.update(providers)
    registry._default_provider = default
    (manager.enable if enabled else manager.disable)()
    assert manager.get_registered_callbacks() == registered


@pytest.fixture(autouse=True)
def seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spanhooks_capture: Capture
) -> Iterator[Capture]:
    """Each block in an empty working directory, with the switch unset, on a captured
    process-wide manager that gets back only the registrations it had."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENABLED_ENV, raising=False)
    manager = spanhooks.get_callback_manager()  # not CallbackManager(): that would instrument
    manager.enable()
    before = {entry["id"] for entry in manager.get_registered_callbacks()}
    yield spanhooks_capture
    for entry in manager.get_registered_callbacks():
        if entry["id"] not in before:
            manager.unregister(entry["id"])
    os.environ.pop(ENABLED_ENV, None)
    manager.enable()


# -- (a) the blocks, counted and classified ---------------------------------------------------


def test_the_document_has_fifteen_code_blocks_each_classified() -> None:
    assert len(BLOCKS) == 15
    assert sorted(TABLE) == [block.line for block in BLOCKS]
    assert all(block.language == "python" for block in BLOCKS)
    completed = {line for line, (kind, _) in TABLE.items() if kind == COMPLETED}
    assert completed == set(COMPLETION)
    assert {kind for kind, _ in TABLE.values()} == {AS_IS, COMPLETED}  # every block runs


def test_only_the_callback_imports_are_rewritten_the_rest_is_the_real_logillm() -> None:
    callback_modules = {"logillm.core.callbacks", "logillm.core.jsonl_callback"}
    callback_modules.add("logillm.core.jsonl_logger")
    assert set(LOGILLM) == callback_modules
    real = set()
    for block in BLOCKS:
        for statement in ast.parse(source(block.line)).body:
            if isinstance(statement, ast.ImportFrom) and statement.module:
                assert statement.module not in callback_modules, block.id
                if statement.module.startswith("logillm"):
                    real.add(statement.module)
        assert source(block.line).endswith(rewrite_imports(block.text, LOGILLM)), block.id
    assert real == {
        "logillm.core.predict",
        "logillm.providers",
        "logillm.providers.mock",
        "logillm.optimizers.labeled_fewshot",
    }


# -- (b) one test per block -------------------------------------------------------------------


def test_line21_quick_start_logger_prints_the_measured_duration(seed: Capture) -> None:
    ns, out = printed(21)
    assert integration.is_instrumented()  # by the block's CallbackManager(), nothing else
    assert isinstance(ns["module"], Predict) and isinstance(ns["result"], Prediction)
    assert re.fullmatch(r"Module Predict completed in \d+\.\d\ds\n", out)
    assert ns["result"].outputs == {"answer": "Mock response"}
    assert seed.tree() == MODULE_TREE
    module = seed.span("module Predict")
    assert module.attributes is not None
    assert module.attributes["logillm.module"] == "Predict"
    assert module.attributes["logillm.success"] is True
    assert isinstance(module.attributes["logillm.duration_s"], float)
    chat = seed.span("chat mock-model")
    assert chat.attributes is not None
    assert chat.attributes["gen_ai.provider.name"] == "mock"
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.usage.output_tokens"] == 5  # MockProvider's own count
    assert chat.attributes["logillm.parent_call_id"] == module.attributes["logillm.call_id"]
    assert "gen_ai.input.messages" not in module.attributes  # the question is content: opt-in
    assert "gen_ai.input.messages" not in chat.attributes


def test_line43_jsonl_loggers_write_the_chosen_categories_with_span_ids(seed: Capture) -> None:
    ns = run_block(43)
    assert isinstance(ns["callback_id"], int)
    assert integration.is_instrumented()  # register_jsonl_logger routed LogiLLM here
    default_mock()
    ask(Predict("question -> answer"))
    execution, detailed = lines(Path("execution.jsonl")), lines(Path("detailed.jsonl"))
    assert [r["event"] for r in execution] == [
        "module_start",
        "provider_request",
        "provider_response",
        "module_end",
    ]
    assert [r["event"] for r in detailed] == ["module_start", "module_end"]
    module, chat = seed.span("module Predict"), seed.span("chat mock-model")
    assert execution[0]["call_id"] == execution[3]["call_id"] == f"{span_id(module):016x}"
    assert execution[1]["call_id"] == f"{span_id(chat):016x}"
    assert execution[1]["parent_call_id"] == execution[0]["call_id"]
    assert "What is AI" not in Path("execution.jsonl").read_text()  # content stays out
    assert seed.tree() == MODULE_TREE


def test_line100_custom_callback_gets_the_three_events_it_defines(seed: Capture) -> None:
    ns = run_block(100)
    seen: list[str] = []

    class Noted(ns["CustomCallback"]):  # type: ignore[misc]
        """The block's callback, noting each method it runs (the block's bodies are pass)."""

        async def on_module_start(self, event: Any) -> None:
            seen.append("module_start")
            await super().on_module_start(event)

        async def on_module_end(self, event: Any) -> None:
            seen.append("module_end")
            await super().on_module_end(event)

        async def on_provider_request(self, event: Any) -> None:
            seen.append("provider_request")
            await super().on_provider_request(event)

    CallbackManager().register(Noted())
    default_mock()
    ask(Predict("question -> answer"))
    assert seen == ["module_start", "provider_request", "module_end"]
    assert seed.tree() == MODULE_TREE


def test_line119_high_priority_callback_runs_before_a_normal_one(seed: Capture) -> None:
    ns = run_block(119)
    order: list[str] = []

    class Normal(AbstractCallback):
        async def on_module_end(self, event: Any) -> None:
            order.append("normal")

    class High(ns["HighPriorityCallback"]):  # type: ignore[misc]
        async def on_module_end(self, event: Any) -> None:
            order.append("high")

    manager = CallbackManager()
    manager.register(Normal())  # registered first, runs second
    manager.register(High())
    default_mock()
    ask(Predict("question -> answer"))
    assert order == ["high", "normal"]
    assert seed.tree() == MODULE_TREE


def test_line134_optimization_monitor_prints_scores_and_the_result(seed: Capture) -> None:
    ns: dict[str, Any] = {"__name__": "line134"}
    exec(rewrite_imports(OPTIMIZER, LOGILLM), ns)
    run_block(134, ns)
    monitor = ns["OptimizationMonitor"]()
    CallbackManager().register(monitor)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # evaluated: the optimized module, then the baseline
        result = asyncio.run(
            ns["optimizer"].optimize(ns["module"], ns["dataset"], validation_set=ns["dataset"])
        )
    assert (result.best_score, result.improvement) == (1.0, 1.0)
    assert monitor.scores == [1.0, 0.0]
    assert out.getvalue().splitlines() == [
        "Evaluation score: 1.000",
        "Evaluation score: 0.000",
        "Optimization complete!",
        "Best score: 1.000",
        "Improvement: 100.0%",
    ]
    optimize = seed.span("optimize LabeledFewShot")
    assert optimize.attributes is not None
    assert optimize.attributes["logillm.best_score"] == 1.0
    assert optimize.attributes["logillm.improvement"] == 1.0
    evaluations = seed.children(optimize, "evaluate Predict")
    assert [e.attributes["logillm.score"] for e in evaluations if e.attributes] == [1.0, 0.0]
    for evaluation in evaluations:
        [module] = seed.children(evaluation, "module Predict")
        assert len(seed.children(module, "chat mock-model")) == 1


def test_line168_disabling_then_the_environment_switch_silences_every_callback(
    seed: Capture,
) -> None:
    heard: list[str] = []
    CallbackManager().register(lambda event, *args, **kwargs: heard.append(str(event)))
    default_mock()
    ns = run_block(168)
    assert os.environ[ENABLED_ENV] == "0"
    assert ns["manager"].is_enabled() is False  # the variable set after enable() switches off
    ask(Predict("question -> answer"))  # built while it is 0: LogiLLM itself emits nothing
    assert heard == []
    assert seed.spans() == []
    assert spanhooks.get_callback_manager().enabled is False  # "globally": one manager


def test_line186_legacy_optimization_logger_logs_the_run_and_returns_its_result(
    seed: Capture,
) -> None:
    ns = run_block(186)
    # LabeledFewShot only evaluates with a validation_set, which the document does not pass
    assert (ns["result"].best_score, ns["result"].improvement) == (0.0, 0.0)
    records = lines(Path("optimization.jsonl"))
    assert [r["event"] for r in records] == ["optimization_start", "optimization_end"]
    optimize = seed.span("optimize LabeledFewShot")
    assert records[0]["call_id"] == records[-1]["call_id"] == f"{span_id(optimize):016x}"
    names = [e["name"] for e in CallbackManager().get_registered_callbacks()]
    assert not any(name.endswith("OptimizationJSONLCallback") for name in names)  # gone after
    assert_optimization_trace(seed)


def test_line194_optimization_jsonl_callback_on_the_singleton_logs_the_run(seed: Capture) -> None:
    ns = run_block(194)
    assert ns["result"].optimized_module is not ns["module"]  # LogiLLM's own result
    records = lines(Path("optimization.jsonl"))
    assert [r["event"] for r in records] == ["optimization_start", "optimization_end"]
    optimize = seed.span("optimize LabeledFewShot")
    assert records[0]["call_id"] == records[-1]["call_id"] == f"{span_id(optimize):016x}"
    assert records[-1]["attributes"] == {
        "logillm.success": True,
        "logillm.best_score": 0.0,
        "logillm.improvement": 0.0,
    }
    assert_optimization_trace(seed)


def assert_optimization_trace(seed: Capture) -> None:
    """A LabeledFewShot run without a validation set: one span, no evaluation under it."""
    assert seed.tree() == [
        {"name": "optimize LabeledFewShot", "status": "UNSET", "events": [], "children": []}
    ]
    optimize = seed.span("optimize LabeledFewShot")
    assert optimize.attributes is not None
    assert optimize.attributes["logillm.optimizer"] == "LabeledFewShot"
    assert optimize.attributes["logillm.dataset_size"] == 1


def test_line212_context_tracker_prints_call_and_parent_ids_of_the_spans(seed: Capture) -> None:
    ns = run_block(212)
    CallbackManager().register(ns["ContextTracker"]())
    default_mock()

    class Pipeline(Module):
        """A LogiLLM module calling another: LogiLLM gives the inner call a parent_call_id."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = Predict("question -> answer")

        async def forward(self, **inputs: Any) -> Prediction:
            result: Prediction = await self.inner(**inputs)
            return result

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ask(Pipeline())
    outer, inner = seed.span("module Pipeline"), seed.span("module Predict")
    assert parent_of(inner) == span_id(outer)
    assert outer.attributes is not None and inner.attributes is not None
    assert inner.attributes["logillm.parent_call_id"] == outer.attributes["logillm.call_id"]
    assert out.getvalue().splitlines() == [
        f"Call ID: {span_id(outer):016x}",
        f"Call ID: {span_id(inner):016x}",
        f"Parent: {span_id(outer):016x}",
    ]


def test_line222_multiple_callbacks_all_fire_for_each_event(seed: Capture) -> None:
    ns, _ = printed(222)
    registered = {e["name"].rsplit(".", 1)[-1] for e in ns["manager"].get_registered_callbacks()}
    assert {"SimpleLogger", "JSONLCallback", "OptimizationMonitor"} <= registered
    default_mock()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ask(Predict("question -> answer"))
    assert out.getvalue().startswith("Module Predict completed in ")
    assert [r["event"] for r in lines(Path("execution.jsonl"))][::3] == [
        "module_start",
        "module_end",
    ]
    assert seed.tree() == MODULE_TREE


def test_line235_filtered_callback_gets_only_the_module_events(seed: Capture) -> None:
    ns = run_block(235)
    default_mock()
    ask(Predict("question -> answer"))
    assert ns["MyCallback"].seen == ["module_start", "module_end"]
    assert seed.tree() == MODULE_TREE  # filtering chooses callbacks, not what is traced


def run_complete_example(tmp_path: Path) -> tuple[list[str], Path]:
    """The complete example as a script under ``python -m spanhooks run``: its output lines
    and its trace file."""
    script, trace = tmp_path / "main.py", tmp_path / "traces.jsonl"
    script.write_text(source(247))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    done = subprocess.run(
        [sys.executable, "-m", "spanhooks", "run", str(script)],
        cwd=tmp_path,
        env={**env, "SPANHOOKS_JSONL_PATH": str(trace)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines(), trace


def test_line247_complete_example_runs_as_a_script_with_three_sibling_module_spans(
    tmp_path: Path,
) -> None:
    out, trace = run_complete_example(tmp_path)
    assert out[:9] == [
        "Q: What is AI?",
        "A: AI is artificial intelligence",
        "",
        "Q: What is ML?",
        "A: AI is artificial intelligence",
        "",
        "Q: What is DL?",
        "A: AI is artificial intelligence",
        "",
    ]
    assert out[-1].startswith("Execution stats: {'calls': ")
    spans = read_spans(trace).spans
    modules = [s for s in spans if s["name"] == "module Predict"]
    chats = [s for s in spans if s["name"] == "chat mock-model"]
    assert len(modules) == len(chats) == 3 and len(spans) == 6
    assert all(m["parent_span_id"] is None for m in modules)  # one after another: siblings
    assert sorted(c["parent_span_id"] for c in chats) == sorted(m["span_id"] for m in modules)
    assert all(m["attributes"]["logillm.success"] is True for m in modules)
    logged = lines(tmp_path / "execution.jsonl")
    assert len(logged) == 12
    assert {r["call_id"] for r in logged if r["event"] == "module_end"} == {
        m["span_id"] for m in modules
    }


def test_line247_complete_example_monitor_counts_the_three_calls(tmp_path: Path) -> None:
    out, _ = run_complete_example(tmp_path)
    assert out[-1].startswith("Execution stats: {'calls': 3, ")


def test_line354_troubleshooting_manager_reports_enabled(seed: Capture) -> None:
    _, out = printed(354)
    assert out == "True\n"
    assert seed.spans() == []  # asking emits nothing


def test_line360_troubleshooting_lists_the_registered_callbacks(seed: Capture) -> None:
    CallbackManager().register(tracker(), callback_types=[CallbackType.MODULE_END])
    _, out = printed(360)
    assert "Tracker'" in out  # its name
    assert "'keys': ['module_end']" in out
    assert seed.spans() == []


def tracker() -> AbstractCallback:
    class Tracker(AbstractCallback):
        def on_module_end(self, event: Any) -> None: ...

    return Tracker()


def test_line365_troubleshooting_prints_the_environment_switch(seed: Capture) -> None:
    _, out = printed(365)
    assert out == "1\n"
    assert seed.spans() == []


# -- the seed's semantics, one behaviour each --------------------------------------------------


def test_callback_manager_is_the_one_process_wide_manager(seed: Capture) -> None:
    assert CallbackManager() is CallbackManager()
    heard: list[Any] = []
    CallbackManager().register(lambda event, payload: heard.append(payload))
    started, ended = ModuleStartEvent(module=SimpleNamespace()), ModuleEndEvent()
    spanhooks.emit(started)  # the process-wide manager's emit
    spanhooks.emit(ended)
    assert heard == [started, ended]
    assert isinstance(CallbackManager(), spanhooks.CallbackManager)
    assert CallbackManager().__dict__ is spanhooks.get_callback_manager().__dict__  # Borg


def test_environment_switch_is_read_at_each_manager_call_and_explicit_switches_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENABLED_ENV, "0")
    assert CallbackManager().enabled is False  # read at the call
    CallbackManager().enable()
    assert CallbackManager().is_enabled() is True  # the same value again: enable() wins
    monkeypatch.setenv(ENABLED_ENV, "1")
    CallbackManager().disable()
    assert CallbackManager().is_enabled() is False  # disable() wins over "1" in place
    monkeypatch.setenv(ENABLED_ENV, "true")
    assert CallbackManager().is_enabled() is True  # a change of the variable wins again
    monkeypatch.delenv(ENABLED_ENV)
    monkeypatch.setenv(ENABLED_ENV, "off")
    assert CallbackManager().is_enabled() is False


def test_module_end_duration_is_measured_when_the_emitter_leaves_it_none() -> None:
    seen: list[float | None] = []
    with capture() as cap:
        cap.manager.register(
            lambda event, payload: seen.append(payload.duration), events=["module_end"]
        )
        cap.manager.emit(ModuleStartEvent(module=SimpleNamespace()))
        cap.manager.emit(ModuleEndEvent(module=SimpleNamespace()))
        asyncio.run(cap.manager.emit_async(ModuleStartEvent(module=SimpleNamespace())))
        asyncio.run(cap.manager.emit_async(ModuleEndEvent(duration=1.5)))
        [first, _] = cap.spans("module SimpleNamespace")
    assert isinstance(seen[0], float) and seen[0] >= 0.0
    assert seen[1] == 1.5  # a duration the emitter gave is kept
    assert first.attributes is not None
    assert first.attributes["logillm.duration_s"] == seen[0]


def test_priority_levels_run_highest_first_and_ties_in_registration_order(seed: Capture) -> None:
    order: list[str] = []
    manager = CallbackManager()
    for label, level in [("low", Priority.LOW), ("normal", None), ("highest", Priority.HIGHEST)]:
        manager.register(
            lambda event, payload, label=label: order.append(label),
            callback_types=[CallbackType.MODULE_END],
            priority=level,
        )
    manager.register(lambda event, payload: order.append("normal 2"), callback_types=["module_end"])
    default_mock()
    ask(Predict("question -> answer"))
    assert order == ["highest", "normal", "normal 2", "low"]


def test_register_returns_an_id_that_unregisters_and_clear_removes_all() -> None:
    manager = spanhooks.CallbackManager()  # a private one: clear() must not empty the singleton
    first = manager.register(tracker())
    second = manager.register(tracker())
    assert isinstance(first, int) and first != second
    assert manager.unregister(first) is True
    assert manager.unregister(first) is False
    manager.clear()
    assert manager.get_registered_callbacks() == []


def test_a_failed_provider_call_is_an_error_in_the_trace_and_the_log(seed: Capture) -> None:
    compat.register_jsonl_logger("errors.jsonl")
    failing = Predict("question -> answer", provider=MockProvider(error_rate=1.0))
    with pytest.raises(Exception, match="Module execution failed"):  # LogiLLM's ModuleError
        ask(failing)
    module = seed.span("module Predict")
    chats = seed.children(module, "chat mock-model")
    assert len(chats) == 3  # LogiLLM retries the provider twice
    for span in [module, *chats]:
        assert span.status.status_code is StatusCode.ERROR
        assert [e.name for e in span.events] == ["exception"]
    records = lines(Path("errors.jsonl"))
    assert [r["event"] for r in records] == [
        "module_start",
        *["provider_request", "provider_error"] * 3,
        "module_end",
    ]
    assert records[2]["error"]["type"] == "Exception"
    assert "Mock error" in records[2]["error"]["message"]
    assert records[-1]["attributes"]["logillm.success"] is False


def test_content_follows_the_installed_policy_in_spans_and_lines(seed: Capture) -> None:
    manager = CallbackManager()
    policy = manager.attribute_policy
    compat.register_jsonl_logger("content.jsonl")
    default_mock()
    manager.set_attribute_policy(type(policy)(capture_content=True))
    previous = spanhooks.tracing.attributes.set_active_policy(manager.attribute_policy)
    try:
        ask(Predict("question -> answer"), "What is a secret?")
    finally:
        spanhooks.tracing.attributes.set_active_policy(previous)
        manager.set_attribute_policy(policy)
    module, chat = seed.span("module Predict"), seed.span("chat mock-model")
    assert module.attributes is not None and chat.attributes is not None
    assert "What is a secret?" in str(module.attributes["gen_ai.input.messages"])
    assert "What is a secret?" in str(chat.attributes["gen_ai.input.messages"])
    assert "What is a secret?" in Path("content.jsonl").read_text()


# -- the wiring to the real package ------------------------------------------------------------


def test_importing_compat_neither_imports_nor_instruments_logillm() -> None:
    code = (
        "import sys\n"
        "import spanhooks.compat.logillm as compat\n"
        "assert 'logillm' not in sys.modules, 'imported logillm'\n"
        "compat.CallbackManager()\n"
        "from spanhooks.integrations import logillm as integration\n"
        "assert integration.is_instrumented() and 'logillm' in sys.modules\n"
        "integration.uninstrument()\n"
        "compat.CallbackManager()\n"
        "assert not integration.is_instrumented(), 'uninstrument() was overruled'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


def test_without_logillm_the_callbacks_work_on_spanhooks_alone() -> None:
    code = (
        "import sys\n"
        "sys.modules['logillm'] = None\n"
        "import spanhooks\n"
        "from spanhooks.compat.logillm import CallbackManager, ModuleStartEvent\n"
        "heard = []\n"
        "CallbackManager().register(lambda event, payload: heard.append(event))\n"
        "spanhooks.emit(ModuleStartEvent(module=object()))\n"
        "from spanhooks.integrations import logillm as integration\n"
        "assert not integration.is_instrumented()\n"
        "print(len(heard))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "1\n"
    assert "not traced" not in done.stderr  # absent is not a failure: nothing is logged


# -- (c) the names ---------------------------------------------------------------------------


def test_compat_module_exports_the_callback_api_and_no_stand_in_of_logillm() -> None:
    assert compat.__all__ == [
        "ENABLED_ENV",
        "AbstractCallback",
        "CallbackManager",
        "CallbackType",
        "EvaluationEndEvent",
        "EvaluationStartEvent",
        "HyperparameterUpdateEvent",
        "JSONLCallback",
        "ModuleEndEvent",
        "ModuleStartEvent",
        "OptimizationEndEvent",
        "OptimizationJSONLCallback",
        "OptimizationLogger",
        "OptimizationStartEvent",
        "Priority",
        "ProviderErrorEvent",
        "ProviderRequestEvent",
        "ProviderResponseEvent",
        "register_jsonl_logger",
    ]
    for name in ("Module", "Predict", "Prediction", "MockProvider", "register_provider"):
        assert not hasattr(compat, name), name
    imported = {
        alias.name
        for block in BLOCKS
        for node in ast.walk(ast.parse(block.text))
        if isinstance(node, ast.ImportFrom) and (node.module or "") in LOGILLM
        for alias in node.names
    }
    assert imported <= set(compat.__all__)
    documented = set(re.findall(r"\*\*(\w+Event)\*\*", document("logillm").read_text()))
    assert len(documented) == 10 and documented <= set(compat.__all__)
