"""OpusAgent's callback systems (seed 000), run from its own document on spanhooks.

Every code block of ``documents/opusagent.txt`` is classified below by its first line. Each
runnable one runs in a fresh interpreter after ``spanhooks.setup()`` (a JSONL file, read back),
with only its import lines changed (``import_maps.OPUSAGENT``) and, where the block is a
fragment, the completion its table entry states. Top-level ``await`` is allowed, as in the
asyncio REPL (``python -m asyncio``) and notebooks where such snippets are pasted. The entry's
``then`` is the test's own driving of what the block set up (routing an event, a second health
check): it comes after the block's text and changes none of it. Each test checks what the
block shows (its prints, its callbacks) and what its user sees in the trace.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.seeds.blocks import Block, document, fenced_blocks
from tests.seeds.import_maps import OPUSAGENT, rewrite_imports

import spanhooks.compat.opusagent as compat
from spanhooks.export.reader import SpanRecord, read_spans

BLOCKS = fenced_blocks(document("opusagent"))


@dataclass(frozen=True)
class Plan:
    """How one block is run: ``kind`` is ``as is``, ``completed`` or ``not code``."""

    kind: str
    why: str = ""
    completion: str = ""
    """Code put before the block: what the fragment assumes and the document does not show."""
    then: str = ""
    """The test's own code after the block (drives or inspects what the block set up)."""
    waits: tuple[tuple[str, int], ...] = ()
    """Spans (name, how many) that end on other threads, waited for before the process exits."""


AS_IS, COMPLETED, NOT_CODE = "as is", "completed", "not code"

PLANS: dict[int, Plan] = {
    30: Plan(
        COMPLETED,
        why="calls register_error_handler without importing it (added to the imports); its "
        "top-level await runs as in the asyncio REPL",
        completion="from opusagent.handlers.error_handler import register_error_handler\n",
        then="""
await handle_error(TimeoutError("pong late"), ErrorContext.WEBSOCKET, ErrorSeverity.LOW,
                   operation="ping")
""",
    ),
    58: Plan(AS_IS),
    84: Plan(
        COMPLETED,
        why="`config` is the application's configuration object, not shown: a namespace with "
        "monitoring_enabled=True",
        completion="import types\nconfig = types.SimpleNamespace(monitoring_enabled=True)\n",
        then="""
wait_for_span("poll db_health", 1)
from opusagent.handlers.polling_manager import get_polling_manager
status = get_polling_manager().get_task_status("db_health")
print(f"db_health runs={status['runs']} successes={status['successes']}")
""",
    ),
    111: Plan(
        COMPLETED,
        why="`websocket` (the application's connection: close() and async send()) and "
        "`resource_manager` (the process-wide one, get_resource_manager()) are not shown; "
        "its top-level `async with`/`await` runs as in the asyncio REPL",
        completion="""
from opusagent.handlers.resource_manager import get_resource_manager

class WebSocket:
    def close(self):
        print("websocket closed")

    async def send(self, text):
        print(f"sent {text}")

websocket = WebSocket()
resource_manager = get_resource_manager()
""",
        then="""
print(f"pending={get_resource_manager().get_resource_stats()['pending']}")
""",
    ),
    148: Plan(
        AS_IS,
        then="""
print(router.route("session.created", {"session": {"id": "sess_1"}}))
""",
    ),
    182: Plan(
        COMPLETED,
        why="`api_client` (up on the first ping, refusing connections after) and "
        "`send_notification` (prints) are the application's, not shown",
        completion="""
class Reply:
    latency = 0.05

class ApiClient:
    def __init__(self):
        self.pings = 0

    def ping(self):
        self.pings += 1
        if self.pings > 1:
            raise ConnectionError("connection refused")
        return Reply()

api_client = ApiClient()

def send_notification(text):
    print(f"notify: {text}")
""",
        then="""
wait_for_span("health_check api", 1)  # the check made at registration: healthy
get_health_monitor().run_check("api")  # the next one, sooner than in 60 s: refused
wait_for_span("health_check api", 2)
print(get_health_monitor().get_health_status()["status"])
""",
    ),
    219: Plan(
        NOT_CODE,
        why="a shell command (`python -m opusagent.examples.callback_integration_example`) in a "
        "python fence, running an example file the document does not include",
    ),
    260: Plan(
        COMPLETED,
        why="the configuration snippet has no imports and no `custom_logger`: the three classes "
        "imported from their seed modules, custom_logger = logging.getLogger(...)",
        completion="""
import logging
import sys
from opusagent.handlers.error_handler import ErrorHandler
from opusagent.handlers.health_monitor import HealthMonitor
from opusagent.handlers.resource_manager import ResourceManager

custom_logger = logging.getLogger("app.custom")
""",
        then="""
custom_logger.addHandler(logging.StreamHandler(sys.stdout))
error_handler.handle_error(ValueError("bad frame"), "audio", "high", "decode")
print(health_monitor.alert_debounce_seconds, health_monitor.history_retention_hours,
      resource_manager.max_workers)
""",
    ),
    285: Plan(
        COMPLETED,
        why="the getters' imports and the `event_router` instance (an EventRouter, as in "
        "section 5) are not shown",
        completion="""
from opusagent.handlers.error_handler import get_error_handler
from opusagent.handlers.event_router import EventRouter
from opusagent.handlers.health_monitor import get_health_monitor
from opusagent.handlers.polling_manager import get_polling_manager
from opusagent.handlers.resource_manager import get_resource_manager

event_router = EventRouter()
""",
        then="""
print(error_stats["total_errors"], polling_status, resource_stats["pending"],
      health_status["status"], handler_stats["handlers"])
""",
    ),
}

RUNNER = """
import ast, asyncio, collections, inspect, json, sys, threading
import spanhooks

jsonl, source, waits = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
spanhooks.setup(jsonl_path=jsonl, service_name="opusagent-seed")
ended = collections.Counter()
changed = threading.Condition()

def note(span):
    with changed:
        ended[span.name] += 1
        changed.notify_all()

def wait_for_span(name, count):
    with changed:
        if not changed.wait_for(lambda: ended[name] >= count, timeout=20):
            sys.exit(f"timed out waiting for {count} span(s) {name!r}; ended: {dict(ended)}")

spanhooks.get_callback_manager().on_span(note)
namespace = {"__name__": "__main__", "wait_for_span": wait_for_span}
code = compile(
    open(source).read(), "<opusagent block>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
)
result = eval(code, namespace)
if inspect.iscoroutine(result):
    asyncio.run(result)
for name, count in waits:
    wait_for_span(name, count)
"""


@dataclass
class Run:
    stdout: list[str]
    spans: list[SpanRecord]

    def named(self, name: str) -> list[SpanRecord]:
        return [s for s in self.spans if s["name"] == name]

    def one(self, name: str) -> SpanRecord:
        found = self.named(name)
        assert len(found) == 1, [s["name"] for s in self.spans]
        return found[0]


def block_at(line: int) -> Block:
    [block] = [b for b in BLOCKS if b.line == line]
    return block


def source_of(line: int) -> str:
    """What runs: the completion, the block's text, the test's ``then``, imports rewritten."""
    plan = PLANS[line]
    text = "\n".join(
        (textwrap.dedent(plan.completion), block_at(line).text, textwrap.dedent(plan.then))
    )
    return rewrite_imports(text, OPUSAGENT)


def run_block(line: int, tmp_path: Path) -> Run:
    (tmp_path / "block.py").write_text(source_of(line), encoding="utf-8")
    (tmp_path / "runner.py").write_text(RUNNER, encoding="utf-8")
    jsonl = tmp_path / "traces.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["PYTHONIOENCODING"] = "utf-8"
    done = subprocess.run(
        [
            sys.executable,
            str(tmp_path / "runner.py"),
            str(jsonl),
            str(tmp_path / "block.py"),
            json.dumps(PLANS[line].waits),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    spans = read_spans(jsonl).spans if jsonl.exists() else []
    return Run(done.stdout.splitlines(), spans)


def attrs(record: SpanRecord | Any) -> dict[str, Any]:
    return dict(record.get("attributes") or {})


def events(record: SpanRecord) -> dict[str, dict[str, Any]]:
    return {e["name"]: dict(e["attributes"]) for e in record["events"]}


def is_root(record: SpanRecord) -> bool:
    return record["parent_span_id"] is None


# -- the document --------------------------------------------------------------------------


def test_the_document_has_nine_code_blocks_each_classified() -> None:
    assert [b.line for b in BLOCKS] == [30, 58, 84, 111, 148, 182, 219, 260, 285]
    assert sorted(PLANS) == [b.line for b in BLOCKS]
    for line, plan in PLANS.items():
        assert plan.kind in (AS_IS, COMPLETED, NOT_CODE), line
        assert plan.kind == AS_IS or plan.why, f"block at line {line} needs its reason"
        assert plan.kind != NOT_CODE or not (plan.completion or plan.then), line
    runnable = [line for line, plan in PLANS.items() if plan.kind != NOT_CODE]
    assert len(runnable) == 8


def test_every_runnable_block_imports_only_from_spanhooks_after_the_rewrite() -> None:
    for line, plan in PLANS.items():
        if plan.kind == NOT_CODE:
            continue
        tree = ast.parse(source_of(line))  # top-level await parses; it runs under the flag
        modules = {
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        assert not {m for m in modules if m and m.startswith("opusagent")}, (line, modules)
        if any(m and m.startswith("spanhooks") for m in modules):
            assert {m for m in modules if m and m.startswith("spanhooks")} == {
                "spanhooks.compat.opusagent"
            }, line


def test_the_compat_module_exports_exactly_the_seed_names() -> None:
    assert compat.__all__ == [
        "Alert",
        "AlertSeverity",
        "CleanupPriority",
        "ErrorContext",
        "ErrorHandler",
        "ErrorInfo",
        "ErrorSeverity",
        "EventRouter",
        "HealthMonitor",
        "HealthStatus",
        "PollingManager",
        "ResourceManager",
        "ResourceType",
        "SessionState",
        "SessionStatus",
        "get_error_handler",
        "get_health_monitor",
        "get_polling_manager",
        "get_resource_manager",
        "handle_error",
        "register_cleanup",
        "register_error_handler",
        "register_health_check",
        "register_polling_task",
    ]
    assert all(hasattr(compat, name) for name in compat.__all__)


# -- the blocks ----------------------------------------------------------------------------


def test_line30_error_handler_is_awaited_and_the_error_is_a_span_without_its_traceback(
    tmp_path: Path,
) -> None:
    run = run_block(30, tmp_path)
    assert run.stdout == ["Error: pong late in websocket"]  # the handler the block registered
    first, second = run.named("handle_error websocket")
    assert is_root(first) and is_root(second)
    assert first["status"] == {
        "code": "ERROR",
        "description": "ConnectionError: WebSocket disconnected",
    }
    assert attrs(first) == {
        "error.context": "websocket",
        "error.severity": "high",
        "error.operation": "websocket_communication",
        "error.type": "ConnectionError",
    }
    exception = events(first)["exception"]
    assert exception == {
        "exception.type": "ConnectionError",
        "exception.message": "WebSocket disconnected",
        "error.context": "websocket",
        "error.severity": "high",
        "error.operation": "websocket_communication",
    }  # no exception.stacktrace: content is off
    assert attrs(second)["error.severity"] == "low"
    assert first["scope"]["name"] == "spanhooks.errors"


def test_line58_status_change_calls_back_and_is_a_session_span(tmp_path: Path) -> None:
    run = run_block(58, tmp_path)
    # The document's arrow is garbled (UTF-8 "→" read as cp1252): the block prints it so.
    assert run.stdout == ["Session test_123: initializing \u00e2\u2020\u2019 active"]
    span = run.one("session active")
    assert is_root(span)
    assert attrs(span) == {
        "session.id": "test_123",
        "gen_ai.conversation.id": "test_123",
        "session.status": "active",
    }
    assert [e["name"] for e in span["events"]] == ["session.status_change", "on_state_change"]
    assert events(span)["session.status_change"] == {
        "session.id": "test_123",
        "gen_ai.conversation.id": "test_123",
        "session.old_status": "initializing",
        "session.new_status": "active",
    }


def test_line84_polling_task_runs_at_once_and_each_run_is_a_span(tmp_path: Path) -> None:
    run = run_block(84, tmp_path)
    assert run.stdout == ["db_health runs=1 successes=1"]
    span = run.one("poll db_health")
    assert is_root(span)
    assert span["status"]["code"] == "UNSET"
    assert attrs(span) == {
        "spanhooks.polling.task": "db_health",
        "spanhooks.polling.outcome": "success",
    }  # the check's result is the application's data: not recorded
    assert span["scope"]["name"] == "spanhooks.polling"


def test_line111_async_with_cleans_up_at_once_and_the_registered_cleanup_at_exit(
    tmp_path: Path,
) -> None:
    run = run_block(111, tmp_path)
    assert run.stdout == ["sent Hello", "websocket closed", "pending=1", "websocket closed"]
    managed, at_exit = run.named("cleanup websocket")
    assert attrs(managed)["spanhooks.cleanup.reason"] == "managed"
    assert attrs(managed)["spanhooks.cleanup.priority"] == 75  # CleanupPriority.HIGH
    assert attrs(at_exit) == {
        "spanhooks.cleanup.id": attrs(at_exit)["spanhooks.cleanup.id"],
        "spanhooks.cleanup.resource_type": "websocket",
        "spanhooks.cleanup.priority": 100,  # CleanupPriority.CRITICAL
        "spanhooks.cleanup.description": "Main WebSocket connection",
        "spanhooks.cleanup.reason": "exit",
    }
    assert managed["status"]["code"] == at_exit["status"]["code"] == "UNSET"


def test_line148_handlers_run_by_priority_after_middleware_in_a_route_span(
    tmp_path: Path,
) -> None:
    run = run_block(148, tmp_path)
    assert run.stdout == [
        "Processing session.created",
        "Primary processing",
        "Secondary processing",
        "True",
    ]
    span = run.one("route session.created")
    assert is_root(span)
    assert attrs(span) == {
        "router.name": "router",
        "router.event_type": "session.created",
        "router.handlers": 2,
        "router.outcome": "handled",
    }
    assert events(span)["router.event"] == {
        "router.event_type": "session.created",
        "router.handlers": 2,
        "router.outcome": "handled",
    }  # no router.data: the payload is content, off by default


def test_line182_an_unhealthy_check_alerts_and_leaves_status_and_alert_in_the_trace(
    tmp_path: Path,
) -> None:
    run = run_block(182, tmp_path)
    assert run.stdout == [
        "notify: Critical: api: healthy -> unhealthy: API error: connection refused",
        "unhealthy",
    ]
    healthy, unhealthy = run.named("health_check api")
    assert healthy["status"]["code"] == "UNSET"
    assert attrs(healthy)["health.status"] == "healthy"
    assert unhealthy["status"] == {
        "code": "ERROR",
        "description": "API error: connection refused",
    }
    assert attrs(unhealthy) == {
        "spanhooks.polling.task": "api",
        "spanhooks.polling.outcome": "success",
        "health.component": "api",
        "health.status": "unhealthy",
        "health.critical": True,
        "health.message": "API error: connection refused",
    }
    found = events(unhealthy)
    assert found["health.status_change"] == {
        "health.component": "api",
        "health.status": "unhealthy",
        "health.previous_status": "healthy",
    }
    assert found["health.alert"] == {
        "health.component": "api",
        "health.status": "unhealthy",
        "health.previous_status": "healthy",
        "health.alert.severity": "critical",
        "health.alert.message": "api: healthy -> unhealthy: API error: connection refused",
    }
    assert unhealthy["scope"]["name"] == "spanhooks.health"


def test_line260_the_configuration_options_are_accepted_and_used(tmp_path: Path) -> None:
    run = run_block(260, tmp_path)
    assert run.stdout == [
        "high error in audio (decode)",  # on custom_logger, at ERROR for HIGH
        "ValueError: bad frame",  # with the exception (never raised: no traceback)
        "30.0 48 8",
    ]
    span = run.one("handle_error audio")
    assert attrs(span)["error.operation"] == "decode"
    assert span["status"]["code"] == "ERROR"


def test_line285_statistics_are_plain_data_and_reading_them_traces_nothing(
    tmp_path: Path,
) -> None:
    run = run_block(285, tmp_path)
    assert run.stdout == ["0 {} 0 healthy []"]
    assert run.spans == []


@pytest.mark.parametrize("line", [line for line, p in PLANS.items() if p.kind == NOT_CODE])
def test_blocks_that_are_not_code_say_why(line: int) -> None:
    block = block_at(line)
    assert block.text.splitlines()[1].startswith("python -m ")  # a shell command
    assert PLANS[line].why
