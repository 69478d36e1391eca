"""LLMProc's callback documentation, run on spanhooks: every code block of the seed document,
with only its import lines changed (``tests/seeds/import_maps.py``'s ``LLMPROC``: ``llmproc``
and ``llmproc.callbacks`` both become ``spanhooks.compat.llmproc``), and the trace an LLMProc
user should see for it.

How a block runs: its text, after ``rewrite_imports`` and the completion the table below states
(prepended, written with the seed's own import lines, so the rewrite applies to it too), is
compiled with top-level ``await`` allowed (the document awaits at top level, as
``python -m asyncio`` or a notebook runs it) and awaited in a fresh namespace inside a running
event loop, as LLMProc code runs. The process-wide manager, whose span pipeline every
``LLMProcess`` shares, is captured on an in-memory SDK pipeline (``spanhooks_capture``); the
fork example also runs as a script in a child process whose forked grandchild continues the
trace, and their JSONL trace file is read back.

LLMProc's runtime is the part the document does not show: a process fires its events while it
runs a turn. The compat process calls no model, so after a block the test plays that part with
:func:`one_turn`: the events LLMProc fires for a turn with one API call and one tool call, in
LLMProc's order, through ``process.trigger_event`` with each event's fixed arguments. That is the
test's driver, not a completion of the block.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from tests.seeds.blocks import document, fenced_blocks
from tests.seeds.import_maps import LLMPROC, rewrite_imports

import spanhooks.compat.llmproc as compat
from spanhooks import get_callback_manager, read_spans
from spanhooks.compat.llmproc import CallbackEvent, LLMProcess, LLMProgram
from spanhooks.testing import Capture
from spanhooks.tracing.attributes import AttributePolicy

BLOCKS = fenced_blocks(document("llmproc"))
BLOCK = {block.line: block for block in BLOCKS}

AS_IS = "runnable as is"
COMPLETED = "runnable after a stated completion"
NOT_CODE = "not code to run"

MODEL = "claude-3-5-haiku-20241022"

# -- the completions, in the seed's own import lines ------------------------------------------

CONFIG_TOML = f"""\
[model]
name = "{MODEL}"
provider = "anthropic"
display_name = "helper"

[prompt]
system_prompt = "You are a helpful assistant."
"""

NOTING_CALLBACKS = """\
# Completion: the block uses my_callback_function, MyCallbackClass and my_callback undefined;
# each notes what it gets in `heard`.
heard = []

def my_callback_function(event, *args, **kwargs):
    heard.append(("my_callback_function", event, args))

class MyCallbackClass:
    def tool_start(self, tool_name, tool_args):
        heard.append(("MyCallbackClass", "tool_start", tool_name))

def my_callback(event, *args, **kwargs):
    heard.append(("my_callback", event, args))
"""

IMPORT_EVENT = """\
# Completion: the block uses CallbackEvent without importing it (the document's first block does).
from llmproc.callbacks import CallbackEvent
"""

ASYNC_LOGGERS = """\
# Completion: the block awaits log_event and log_response, left undefined; both note what they get.
logged = []

async def log_event(event):
    logged.append(("event", event))

async def log_response(text):
    logged.append(("response", text))
"""

IMPORT_TIME = """\
# Completion: the block uses time without importing it.
import time
"""

FORK_PROGRAM = f"""\
# Completion: the block uses program and my_callback undefined: an LLMProgram, and a callback
# that notes what it gets in `heard`.
from llmproc import LLMProgram

program = LLMProgram(model_name="{MODEL}", provider="anthropic", display_name="helper")
heard = []

def my_callback(event, *args, **kwargs):
    heard.append((event, args))
"""

# Every block, by the line it starts on: how it runs and, when completed, exactly what is added.
TABLE: dict[int, tuple[str, str]] = {
    33: (
        COMPLETED,
        "registering: from_toml reads config.toml, so the test writes one ([model] name, "
        "provider, display_name; [prompt]) in the working directory; my_callback_function, "
        "MyCallbackClass and my_callback, used undefined, are added as noting callbacks",
    ),
    55: (COMPLETED, "function callback: uses CallbackEvent unimported; its import is added"),
    72: (AS_IS, "class callback: defines MyCallbacks; the test adds it to a process"),
    90: (
        COMPLETED,
        "async callbacks: awaits log_event and log_response, left undefined; both are added "
        "as async functions that note what they get",
    ),
    119: (COMPLETED, "timing callback: uses time unimported; `import time` is added"),
    156: (AS_IS, "API logging callback: defines APILogger; the test adds it to a process"),
    173: (
        COMPLETED,
        "callback inheritance: uses program and my_callback undefined; an LLMProgram and a "
        "noting callback are added; also run as a script whose child runs in an OS process",
    ),
}

COMPLETION: dict[int, str] = {
    33: NOTING_CALLBACKS,
    55: IMPORT_EVENT,
    90: ASYNC_LOGGERS,
    119: IMPORT_TIME,
    173: FORK_PROGRAM,
}


def source(line: int) -> str:
    """What runs for the block at ``line``: its completion and text, imports rewritten."""
    return rewrite_imports(COMPLETION.get(line, "") + BLOCK[line].text, LLMPROC)


async def run_block(line: int) -> dict[str, Any]:
    """Run the block at ``line`` in a fresh namespace, in the running loop; its namespace."""
    namespace: dict[str, Any] = {"__name__": f"llmproc_block_line{line}"}
    code = compile(
        source(line), f"<llmproc.txt:{line}>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    )
    result = eval(code, namespace)
    if asyncio.iscoroutine(result):
        await result
    return namespace


def printed(scenario: Callable[[], Awaitable[Any]]) -> tuple[Any, str]:
    """Run ``scenario`` in a new event loop; what it returned and what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = asyncio.run(scenario())
    return result, out.getvalue()


async def process_with(*callbacks: Any, name: str = "helper") -> LLMProcess:
    """A started process with ``callbacks`` added, as a user of the document makes one."""
    program = LLMProgram(model_name=MODEL, provider="anthropic", display_name=name)
    process = await program.start()
    for callback in callbacks:
        process.add_callback(callback)
    return process


PAYLOAD = {"model": MODEL, "max_tokens": 1024, "messages": [{"role": "user", "content": "2+2?"}]}
RESPONSE = SimpleNamespace(
    id="msg_01",
    model=MODEL,
    stop_reason="tool_use",
    usage=SimpleNamespace(input_tokens=12, output_tokens=7),
)
TEXT = "Let me work that out with the calculator for you."


async def one_turn(process: LLMProcess, tools: tuple[str, ...] = ("calculator",)) -> None:
    """LLMProc's part: the events of one turn with one API call and ``tools`` called, in the
    order LLMProc fires them, each with its fixed arguments; then the async callbacks the
    events scheduled on this loop are awaited."""
    results = []
    process.trigger_event(CallbackEvent.TURN_START, process)
    process.trigger_event(CallbackEvent.API_REQUEST, PAYLOAD)
    process.trigger_event(CallbackEvent.API_RESPONSE, RESPONSE)
    process.trigger_event(CallbackEvent.RESPONSE, TEXT)
    for tool in tools:
        process.trigger_event(CallbackEvent.TOOL_START, tool, {"expression": "2+2"})
        result = SimpleNamespace(is_error=False, content="4")
        process.trigger_event(CallbackEvent.TOOL_END, tool, result)
        results.append(result)
    process.trigger_event(CallbackEvent.TURN_END, process, RESPONSE, results)
    await process.callback_manager.drain()


def turn_tree(name: str = "helper", tools: tuple[str, ...] = ("calculator",)) -> list[Any]:
    """The trace of :func:`one_turn`: the turn, its chat call and tool calls inside it, and
    the response as an event of the turn."""
    return [
        {
            "name": f"invoke_agent {name}",
            "status": "UNSET",
            "events": ["response"],
            "children": [
                {"name": f"chat {MODEL}", "status": "UNSET", "events": [], "children": []},
                *(
                    {
                        "name": f"execute_tool {tool}",
                        "status": "UNSET",
                        "events": [],
                        "children": [],
                    }
                    for tool in tools
                ),
            ],
        }
    ]


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


@pytest.fixture(autouse=True)
def seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spanhooks_capture: Capture) -> Capture:
    """Each block in an empty working directory, on a captured process-wide pipeline (which
    every LLMProcess's manager shares)."""
    monkeypatch.chdir(tmp_path)
    return spanhooks_capture


# -- (a) the blocks, counted and classified ---------------------------------------------------


def test_the_document_has_seven_python_blocks_each_classified() -> None:
    assert len(BLOCKS) == 7
    assert sorted(TABLE) == [block.line for block in BLOCKS]
    assert all(block.language == "python" for block in BLOCKS)
    assert {kind for kind, _ in TABLE.values()} <= {AS_IS, COMPLETED, NOT_CODE}
    assert sorted(COMPLETION) == [line for line, (kind, _) in TABLE.items() if kind == COMPLETED]


def test_every_block_imports_only_from_the_compat_module_after_the_rewrite() -> None:
    for block in BLOCKS:
        for statement in ast.walk(ast.parse(source(block.line))):
            if isinstance(statement, ast.ImportFrom) and statement.module != "__future__":
                assert statement.module in {"spanhooks.compat.llmproc", None}, statement.module
            if isinstance(statement, ast.Import):
                assert all(alias.name == "time" for alias in statement.names)


# -- (b) each runnable block, run ------------------------------------------------------------


def test_line33_registering_chains_start_and_add_callback_and_reads_the_toml(
    seed: Capture, tmp_path: Path
) -> None:
    (tmp_path / "config.toml").write_text(CONFIG_TOML)

    async def scenario() -> dict[str, Any]:
        ns = await run_block(33)
        await one_turn(ns["process"])
        return ns

    ns, _ = printed(scenario)
    process, program = ns["process"], ns["program"]
    assert (program.model_name, program.provider, program.display_name) == (
        MODEL,
        "anthropic",
        "helper",
    )
    assert program.system_prompt == "You are a helpful assistant."
    # `await program.start().add_callback(my_callback)` gives a process, with that callback only
    assert isinstance(process, LLMProcess)
    assert process.callbacks == [ns["my_callback"]]
    assert [who for who, *_ in ns["heard"]] == ["my_callback"] * 7
    assert [event for _, event, _ in ns["heard"]] == [
        CallbackEvent.TURN_START,
        CallbackEvent.API_REQUEST,
        CallbackEvent.API_RESPONSE,
        CallbackEvent.RESPONSE,
        CallbackEvent.TOOL_START,
        CallbackEvent.TOOL_END,
        CallbackEvent.TURN_END,
    ]
    assert seed.tree() == turn_tree()
    turn = seed.span("invoke_agent helper")
    assert turn.instrumentation_scope is not None
    assert turn.instrumentation_scope.name == "spanhooks.llmproc"
    assert turn.attributes is not None
    assert turn.attributes["gen_ai.agent.name"] == "helper"
    assert turn.attributes["gen_ai.request.model"] == MODEL
    assert turn.attributes["gen_ai.provider.name"] == "anthropic"
    assert turn.attributes["gen_ai.operation.name"] == "invoke_agent"


def test_line33_the_first_process_keeps_its_function_and_class_callbacks(
    seed: Capture, tmp_path: Path
) -> None:
    """The block's first process (rebound by its last line) got both callbacks: started the
    same way again, each hears the turn as its style says."""
    (tmp_path / "config.toml").write_text(CONFIG_TOML)

    async def scenario() -> dict[str, Any]:
        ns = await run_block(33)
        first = await ns["program"].start()
        first.add_callback(ns["my_callback_function"])
        first.add_callback(ns["MyCallbackClass"]())
        ns["heard"].clear()
        await one_turn(first)
        return ns

    ns, _ = printed(scenario)
    heard = ns["heard"]
    assert [h for h in heard if h[0] == "MyCallbackClass"] == [
        ("MyCallbackClass", "tool_start", "calculator")
    ]
    tool_start = [
        h for h in heard if h[1] == CallbackEvent.TOOL_START and h[0] != "MyCallbackClass"
    ]
    assert tool_start == [
        ("my_callback_function", "tool_start", ("calculator", {"expression": "2+2"}))
    ]
    assert seed.tree() == turn_tree()


def test_line55_function_callback_gets_the_event_and_its_fixed_arguments(seed: Capture) -> None:
    async def scenario() -> None:
        ns = await run_block(55)
        await one_turn(await process_with(ns["my_callback"]))

    _, out = printed(scenario)
    assert out.splitlines() == [
        f"Response: {TEXT[:30]}...",
        "Tool started: calculator",
        "Tool completed: calculator",
    ]
    assert seed.tree() == turn_tree()
    tool = seed.span("execute_tool calculator")
    assert parent_of(tool) == span_id(seed.span("invoke_agent helper"))
    assert tool.attributes is not None
    assert tool.attributes["gen_ai.tool.name"] == "calculator"
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"


def test_line72_class_callback_methods_get_their_events_and_the_rest_is_ignored(
    seed: Capture,
) -> None:
    async def scenario() -> LLMProcess:
        ns = await run_block(72)
        process = await process_with(ns["MyCallbacks"]())
        await one_turn(process, tools=("calculator", "search"))
        return process

    process, out = printed(scenario)
    assert out.splitlines() == [
        f"Response: {TEXT[:30]}...",
        "Tool started: calculator",
        "Tool completed: calculator",
        "Tool started: search",
        "Tool completed: search",
    ]
    assert process.callback_manager.stats()["callback_errors"] == 0
    assert seed.tree() == turn_tree(tools=("calculator", "search"))


def test_line90_async_and_mixed_callbacks_run_on_the_process_loop(seed: Capture) -> None:
    async def scenario() -> dict[str, Any]:
        ns = await run_block(90)
        await one_turn(await process_with(ns["my_async_callback"], ns["MixedCallbacks"]()))
        return ns

    ns, out = printed(scenario)
    assert out == "sync start\n"
    events = [value for kind, value in ns["logged"] if kind == "event"]
    assert events == [
        CallbackEvent.TURN_START,
        CallbackEvent.API_REQUEST,
        CallbackEvent.API_RESPONSE,
        CallbackEvent.RESPONSE,
        CallbackEvent.TOOL_START,
        CallbackEvent.TOOL_END,
        CallbackEvent.TURN_END,
    ]
    assert [value for kind, value in ns["logged"] if kind == "response"] == [TEXT]
    assert seed.tree() == turn_tree()


def test_line119_timing_callback_counts_each_tool_and_averages_its_time(seed: Capture) -> None:
    async def scenario() -> Any:
        ns = await run_block(119)
        timing = ns["TimingCallback"]()
        process = await process_with(timing)
        await one_turn(process, tools=("calculator", "search", "calculator"))
        return timing

    timing, _ = printed(scenario)
    stats = timing.get_stats()
    assert sorted(stats) == ["calculator", "search"]
    assert stats["calculator"]["calls"] == 2 and stats["search"]["calls"] == 1
    for data in stats.values():
        assert data["total_time"] >= 0
        assert data["avg_time"] == data["total_time"] / data["calls"]
    assert timing.current_tools == {}  # every start found its end
    assert len(seed.spans("execute_tool calculator")) == 2
    assert seed.tree() == turn_tree(tools=("calculator", "search", "calculator"))


def test_line156_api_logger_pairs_each_request_with_its_response(seed: Capture) -> None:
    async def scenario() -> Any:
        ns = await run_block(156)
        logger = ns["APILogger"]()
        await one_turn(await process_with(logger))
        return logger

    logger, _ = printed(scenario)
    assert logger.calls == [{"request": PAYLOAD, "response": RESPONSE}]
    chat = seed.span(f"chat {MODEL}")
    assert chat.kind.name == "CLIENT"
    assert parent_of(chat) == span_id(seed.span("invoke_agent helper"))
    assert chat.attributes is not None
    attributes = dict(chat.attributes)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == MODEL
    assert attributes["gen_ai.request.max_tokens"] == 1024
    assert attributes["gen_ai.response.id"] == "msg_01"
    assert attributes["gen_ai.usage.input_tokens"] == 12
    assert attributes["gen_ai.usage.output_tokens"] == 7
    # the payload and the response are content: not recorded without opt-in
    assert "2+2?" not in json.dumps(attributes)
    assert not any(key in attributes for key in ("payload_dict", "response_obj"))


def test_line173_a_forked_child_inherits_the_callbacks_and_later_ones_are_not_shared(
    seed: Capture,
) -> None:
    async def scenario() -> dict[str, Any]:
        ns = await run_block(173)
        parent, child = ns["parent"], ns["child"]
        later_on_parent: list[Any] = []
        later_on_child: list[Any] = []
        parent.add_callback(lambda event, *args: later_on_parent.append(event))
        child.add_callback(lambda event, *args: later_on_child.append(event))
        parent.trigger_event(CallbackEvent.TURN_START, parent)
        parent.trigger_event(CallbackEvent.TOOL_START, "fork", {"prompts": ["summarise"]})
        await one_turn(child)
        parent.trigger_event(CallbackEvent.TOOL_END, "fork", ["summary"])
        parent.trigger_event(CallbackEvent.TURN_END, parent, RESPONSE, [["summary"]])
        ns.update(later_on_parent=later_on_parent, later_on_child=later_on_child)
        return ns

    ns, _ = printed(scenario)
    parent, child = ns["parent"], ns["child"]
    assert isinstance(child, LLMProcess) and child is not parent
    assert child.callbacks[0] is ns["my_callback"]
    # the parent's callback hears the parent's four events and the child's turn
    heard_from = [args[0] for event, args in ns["heard"] if event.value.startswith("turn_")]
    assert heard_from == [parent, child, child, parent]
    assert len(ns["heard"]) == 4 + 7
    assert len(ns["later_on_parent"]) == 4  # added to the parent after the fork
    assert len(ns["later_on_child"]) == 7  # added to the child: not on the parent
    # the child's turn runs inside the parent's fork tool call: one trace
    [outer, inner] = sorted(seed.spans("invoke_agent helper"), key=lambda s: s.start_time or 0)
    fork = seed.span("execute_tool fork")
    assert parent_of(fork) == span_id(outer)
    assert parent_of(inner) == span_id(fork)
    trace_ids = {s.context.trace_id for s in seed.spans() if s.context is not None}
    assert len(trace_ids) == 1 and len(seed.spans()) == 5  # two turns, chat, two tools


FORK_SCRIPT = """\
import ast, asyncio, multiprocessing, os, sys
import spanhooks
from spanhooks.compat.llmproc import CallbackEvent

trace_file, block_file, heard_file = sys.argv[1:4]
spanhooks.setup(jsonl_path=trace_file, service_name="llmproc-fork")

def child_turn(child):
    # runs in the forked OS process: the child's turn, then its callbacks' notes are flushed
    child.trigger_event(CallbackEvent.TURN_START, child)
    child.trigger_event(CallbackEvent.TOOL_START, "calculator", {"expression": "2+2"})
    child.trigger_event(CallbackEvent.TOOL_END, "calculator", "4")
    child.trigger_event(CallbackEvent.TURN_END, child, None, ["4"])

async def main():
    ns = {"__name__": "block"}
    code = compile(open(block_file).read(), "<llmproc.txt:173>", "exec",
                   flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, ns)
    if asyncio.iscoroutine(result):
        await result
    parent, child = ns["parent"], ns["child"]
    parent.trigger_event(CallbackEvent.TURN_START, parent)
    parent.trigger_event(CallbackEvent.TOOL_START, "fork", {"prompts": ["summarise"]})
    worker = multiprocessing.get_context("fork").Process(
        target=spanhooks.ProcessTarget(child_turn), args=(child,))
    worker.start()
    worker.join(30)
    parent.trigger_event(CallbackEvent.TOOL_END, "fork", ["summary"])
    parent.trigger_event(CallbackEvent.TURN_END, parent, None, [["summary"]])
    with open(heard_file, "a") as notes:
        for event, args in ns["heard"]:
            notes.write(f"{os.getpid()} {event.value}\\n")
    print("exit", worker.exitcode, "parent", os.getpid())

asyncio.run(main())
"""

CHILD_NOTES = """\
# Completion for the script: my_callback also writes what it hears, with the pid, to a file,
# so that the forked OS process's calls are seen.
import os, sys
_noted = my_callback

def my_callback(event, *args, **kwargs):
    _noted(event, *args, **kwargs)
    if os.getpid() != _parent_pid:
        with open(sys.argv[3], "a") as notes:
            notes.write(f"{os.getpid()} {event.value}\\n")

_parent_pid = os.getpid()
"""


def test_line173_a_child_run_in_a_forked_os_process_keeps_callbacks_and_trace(
    tmp_path: Path,
) -> None:
    trace_file, block_file, heard_file = (
        tmp_path / "trace.jsonl",
        tmp_path / "block.py",
        tmp_path / "heard.txt",
    )
    block_file.write_text(rewrite_imports(FORK_PROGRAM + CHILD_NOTES + BLOCK[173].text, LLMPROC))
    script = tmp_path / "fork_demo.py"
    script.write_text(FORK_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    done = subprocess.run(
        [sys.executable, str(script), str(trace_file), str(block_file), str(heard_file)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (exit_line,) = [line for line in done.stdout.splitlines() if line.startswith("exit")]
    _, exitcode, _, parent_pid = exit_line.split()
    assert exitcode == "0"
    notes = [line.split() for line in heard_file.read_text().splitlines()]
    in_child = [event for pid, event in notes if pid != parent_pid]
    in_parent = [event for pid, event in notes if pid == parent_pid]
    assert in_child == ["turn_start", "tool_start", "tool_end", "turn_end"]
    assert in_parent == ["turn_start", "tool_start", "tool_end", "turn_end"]

    spans = read_spans(trace_file).spans
    by_name: dict[str, list[Any]] = {}
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    turns = sorted(by_name["invoke_agent helper"], key=lambda s: s["start_time_unix_nano"])
    assert len(turns) == 2
    outer, inner = turns
    [fork] = by_name["execute_tool fork"]
    [tool] = by_name["execute_tool calculator"]
    assert outer["parent_span_id"] is None
    assert fork["parent_span_id"] == outer["span_id"]
    assert inner["parent_span_id"] == fork["span_id"]  # written by the forked OS process
    assert tool["parent_span_id"] == inner["span_id"]
    assert {span["trace_id"] for span in spans} == {outer["trace_id"]}
    assert all(span["scope"]["name"] == "spanhooks.llmproc" for span in spans)


# -- (c) the names -------------------------------------------------------------------------


def test_compat_module_exports_exactly_the_seed_names() -> None:
    assert sorted(compat.__all__) == [
        "CallbackEvent",
        "LLMProcCallback",
        "LLMProcess",
        "LLMProgram",
    ]
    assert [member.name for member in CallbackEvent] == [
        "TOOL_START",
        "TOOL_END",
        "RESPONSE",
        "API_REQUEST",
        "API_RESPONSE",
        "TURN_START",
        "TURN_END",
        "STDERR_WRITE",
    ]
    assert [member.value for member in CallbackEvent] == [
        "tool_start",
        "tool_end",
        "response",
        "api_request",
        "api_response",
        "turn_start",
        "turn_end",
        "stderr_write",
    ]


# -- the semantics the document relies on -----------------------------------------------------


def test_each_event_passes_its_fixed_arguments_to_class_callbacks(seed: Capture) -> None:
    heard: list[tuple[str, tuple[Any, ...]]] = []

    class Named:
        """A method per event, each taking that event's fixed arguments by the seed's names."""

        def tool_start(self, tool_name: Any, tool_args: Any) -> None:
            heard.append(("tool_start", (tool_name, tool_args)))

        def tool_end(self, tool_name: Any, result: Any) -> None:
            heard.append(("tool_end", (tool_name, result)))

        def response(self, text: Any) -> None:
            heard.append(("response", (text,)))

        def api_request(self, payload_dict: Any) -> None:
            heard.append(("api_request", (payload_dict,)))

        def api_response(self, response_obj: Any) -> None:
            heard.append(("api_response", (response_obj,)))

        def turn_start(self, process: Any) -> None:
            heard.append(("turn_start", (process,)))

        def turn_end(self, process: Any, response_obj: Any, tool_results: Any) -> None:
            heard.append(("turn_end", (process, response_obj, tool_results)))

        def stderr_write(self, text: Any) -> None:
            heard.append(("stderr_write", (text,)))

    async def scenario() -> LLMProcess:
        process = await process_with(Named())
        await one_turn(process)
        process.trigger_event(CallbackEvent.STDERR_WRITE, "warning: low disk")
        return process

    process, _ = printed(scenario)
    assert heard == [
        ("turn_start", (process,)),
        ("api_request", (PAYLOAD,)),
        ("api_response", (RESPONSE,)),
        ("response", (TEXT,)),
        ("tool_start", ("calculator", {"expression": "2+2"})),
        ("tool_end", ("calculator", heard[5][1][1])),
        ("turn_end", (process, RESPONSE, [heard[5][1][1]])),
        ("stderr_write", ("warning: low disk",)),
    ]
    # stderr outside a turn: a span of its own, its text (content) not recorded without opt-in
    [stderr] = seed.spans("stderr_write")
    assert [event.name for event in stderr.events] == ["stderr_write"]
    assert "low disk" not in json.dumps(dict(stderr.events[0].attributes or {}))


def test_callbacks_belong_to_their_process(seed: Capture) -> None:
    heard: list[str] = []

    async def scenario() -> None:
        first = await process_with(lambda event, *args: heard.append("first"), name="a")
        second = await process_with(name="b")
        await one_turn(second)
        await one_turn(first)

    printed(scenario)
    assert heard == ["first"] * 7
    assert [root["name"] for root in seed.tree()] == ["invoke_agent b", "invoke_agent a"]


def test_a_failing_callback_never_reaches_the_process_and_is_on_the_span(seed: Capture) -> None:
    def broken(tool_name: str, tool_args: Any) -> None:
        raise RuntimeError("callback bug")

    async def scenario() -> LLMProcess:
        process = await process_with(SimpleNamespace(tool_start=broken))
        await one_turn(process)
        return process

    process, _ = printed(scenario)
    assert process.callback_manager.stats()["callback_errors"] == 1
    tool = seed.span("execute_tool calculator")
    assert [event.name for event in tool.events] == ["spanhooks.callback.error"]
    assert seed.tree()[0]["name"] == "invoke_agent helper"


def test_a_failed_tool_is_an_error_whose_output_is_content(seed: Capture) -> None:
    secret = "contents of /etc/secret: hunter2"

    async def scenario() -> None:
        process = await process_with()
        process.trigger_event(CallbackEvent.TOOL_START, "read_file", {"path": "/etc/secret"})
        process.trigger_event(
            CallbackEvent.TOOL_END, "read_file", SimpleNamespace(is_error=True, content=secret)
        )
        process.trigger_event(CallbackEvent.TOOL_START, "divide", {"a": 1, "b": 0})
        process.trigger_event(CallbackEvent.TOOL_END, "divide", ZeroDivisionError("b is zero"))

    printed(scenario)
    failed = seed.span("execute_tool read_file")
    assert failed.status.status_code.name == "ERROR"
    assert failed.status.description == "tool returned an error"
    assert secret not in json.dumps(dict(failed.attributes or {}))
    raised = seed.span("execute_tool divide")
    assert raised.status.description == "ZeroDivisionError: b is zero"
    assert [event.name for event in raised.events] == ["exception"]


def test_with_content_capture_payloads_and_results_are_recorded_and_redacted(
    seed: Capture,
) -> None:
    """setup(capture_content=True, redact_patterns=...) sets the process-wide manager's policy,
    which every process shares."""
    shared = get_callback_manager()
    before = shared.attribute_policy
    shared.set_attribute_policy(
        AttributePolicy(capture_content=True, redact_patterns=(r"hunter\d",))
    )

    async def scenario() -> None:
        process = await process_with()
        process.trigger_event(CallbackEvent.TOOL_START, "login", {"hint": "hunter2 x"})
        process.trigger_event(
            CallbackEvent.TOOL_END, "login", SimpleNamespace(is_error=True, content="hunter2 ok")
        )

    try:
        printed(scenario)
    finally:
        shared.set_attribute_policy(before)
    attributes = dict(seed.span("execute_tool login").attributes or {})
    assert "hunter2" not in json.dumps(attributes)
    assert "[REDACTED] x" in attributes["gen_ai.tool.call.arguments"]
    assert "[REDACTED] ok" in attributes["gen_ai.tool.call.result"]


def test_from_toml_refuses_a_missing_file_and_a_file_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        LLMProgram.from_toml(tmp_path / "absent.toml")
    (tmp_path / "empty.toml").write_text("[prompt]\nsystem_prompt = 'hi'\n")
    with pytest.raises(ValueError, match="needs name and provider"):
        LLMProgram.from_toml(tmp_path / "empty.toml")


def test_add_callback_refuses_what_is_not_a_callback_at_once() -> None:
    process = LLMProgram(model_name=MODEL, provider="anthropic").start_sync()
    with pytest.raises(TypeError):
        process.add_callback(42)
    assert process.callbacks == []


def test_the_process_manager_shares_the_pipeline_but_not_process_wide_callbacks(
    seed: Capture,
) -> None:
    heard: list[Any] = []
    registration = get_callback_manager().register(lambda event, *args: heard.append(event))
    try:
        process = LLMProgram(model_name=MODEL, provider="anthropic").start_sync()
        process.trigger_event(CallbackEvent.RESPONSE, "hi")
    finally:
        get_callback_manager().unregister(registration)
    assert heard == []
    assert [span.name for span in seed.spans()] == ["response"]
