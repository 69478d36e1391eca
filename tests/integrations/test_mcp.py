"""MCP (mcp 2.3): a tool call made over MCP continues the caller's trace on the server, with the
MCP conventions' attributes on both sides. The server is real (``mcp_server.py``, mcp's
``MCPServer``) and runs in a child process over stdio or streamable HTTP, writing its spans to a
JSONL file; the client runs here, inside a parent span, and its spans are captured in memory."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from mcp import ClientSession
from mcp.client import stdio, streamable_http  # modules: their transports looked up at call time
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

import spanhooks.integrations.mcp as traced
from spanhooks import read_spans
from spanhooks.testing import Capture, capture
from spanhooks.vocab.genai import GenAICallback

SERVER = Path(__file__).with_name("mcp_server.py")
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


def server_env(
    tmp_path: Path, *, traced_server: bool = True, content: bool = False
) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "SPANHOOKS_JSONL_PATH": str(tmp_path / "server.jsonl"),
        "MCP_SERVER_TRACED": "1" if traced_server else "0",
        CAPTURE_ENV: "true" if content else "false",
    }


@contextlib.asynccontextmanager
async def over_stdio(tmp_path: Path, **options: Any) -> AsyncIterator[ClientSession]:
    """An initialized session with a fresh server process; it has exited (its spans are in
    ``server.jsonl``) once the block is left."""
    params = stdio.StdioServerParameters(
        command=sys.executable, args=[str(SERVER), "stdio"], env=server_env(tmp_path, **options)
    )
    with (tmp_path / "server.log").open("w") as errlog:
        async with (
            stdio.stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


def server_spans(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "server.jsonl"
    log = tmp_path / "server.log"
    assert path.exists(), log.read_text() if log.exists() else "no server log"
    return list(read_spans(path).spans)


def one(records: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [record for record in records if record["name"] == name]
    assert len(found) == 1, sorted(record["name"] for record in records)
    return found[0]


def hex_id(span: ReadableSpan) -> tuple[str, str]:
    """A captured span's (trace id, span id) as the JSONL file writes them."""
    assert span.context is not None
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


def assert_child(server: dict[str, Any], client: ReadableSpan) -> None:
    trace_id, span_id = hex_id(client)
    assert server["trace_id"] == trace_id
    assert server["parent_span_id"] == span_id


async def test_a_tool_call_continues_the_caller_s_trace_on_the_server(
    cap: Capture, tmp_path: Path
) -> None:
    with cap.tracer.start_as_current_span("agent") as agent:
        async with over_stdio(tmp_path) as session:
            result = await session.call_tool("add", {"a": 2, "b": 3})
    assert result.structured_content == {"result": 5}
    client = cap.span("tools/call add")
    assert client.kind is SpanKind.CLIENT
    assert client.parent is not None and client.parent.span_id == agent.get_span_context().span_id
    server = one(server_spans(tmp_path), "tools/call add")
    assert server["kind"] == "SERVER"
    assert server["scope"]["name"] == "spanhooks.mcp"
    assert_child(server, client)
    assert not [span for span in cap.spans() if span.name.startswith("MCP send")]  # mcp's own


async def test_both_sides_carry_the_mcp_attributes(cap: Capture, tmp_path: Path) -> None:
    with cap.tracer.start_as_current_span("agent"):
        async with over_stdio(tmp_path) as session:
            await session.call_tool("add", {"a": 2, "b": 3})
    client = dict(cap.span("tools/call add").attributes or {})
    server = one(server_spans(tmp_path), "tools/call add")["attributes"]
    for side in (client, server):
        assert side["mcp.method.name"] == "tools/call"
        assert side["gen_ai.operation.name"] == "execute_tool"
        assert side["gen_ai.tool.name"] == "add"
        assert side["mcp.protocol.version"] == "2025-11-25"
        assert side["network.transport"] == "pipe"
        assert "gen_ai.tool.call.arguments" not in side  # content capture is off
        assert "gen_ai.tool.call.result" not in side
    assert client["jsonrpc.request.id"] == server["jsonrpc.request.id"] == "2"  # after initialize


async def test_a_failing_tool_is_an_error_on_both_sides(cap: Capture, tmp_path: Path) -> None:
    with cap.tracer.start_as_current_span("agent"):
        async with over_stdio(tmp_path) as session:
            result = await session.call_tool("fail", {})
            with pytest.raises(MCPError, match="refused by policy"):
                await session.call_tool("refuse", {})
    assert result.is_error
    records = server_spans(tmp_path)
    for name, error_type, description in (
        ("tools/call fail", "tool_error", "Error executing tool fail"),
        ("tools/call refuse", "-32042", "refused by policy"),
    ):
        client, server = cap.span(name), one(records, name)
        assert_child(server, client)
        assert client.status.status_code is StatusCode.ERROR
        assert client.status.description == description
        assert server["status"] == {"code": "ERROR", "description": description}
        assert dict(client.attributes or {})["error.type"] == error_type
        assert server["attributes"]["error.type"] == error_type
    refused = dict(cap.span("tools/call refuse").attributes or {})
    assert refused["rpc.response.status_code"] == "-32042"


async def test_requests_other_than_tool_calls_propagate_too(cap: Capture, tmp_path: Path) -> None:
    with cap.tracer.start_as_current_span("agent"):
        async with over_stdio(tmp_path) as session:
            listed = await session.list_tools()
    assert {tool.name for tool in listed.tools} == {"add", "fail", "refuse"}
    records = server_spans(tmp_path)
    for name in ("initialize", "tools/list"):
        client = cap.span(name)
        assert client.kind is SpanKind.CLIENT
        assert "gen_ai.operation.name" not in (client.attributes or {})
        assert_child(one(records, name), client)


async def test_uninstrument_leaves_the_request_to_mcp_s_own_propagation(
    cap: Capture, tmp_path: Path
) -> None:
    traced.uninstrument()
    assert not traced.is_instrumented()
    with cap.tracer.start_as_current_span("agent") as agent:
        async with over_stdio(tmp_path) as session:
            await session.call_tool("add", {"a": 2, "b": 3})
    assert [span.name for span in cap.spans()] == ["agent"]
    server = one(server_spans(tmp_path), "tools/call add")
    # mcp itself writes the current context into _meta: the server span is the agent's child
    assert server["parent_span_id"] == format(agent.get_span_context().span_id, "016x")


async def test_a_server_without_the_hook_still_serves_a_traced_client(
    cap: Capture, tmp_path: Path
) -> None:
    with cap.tracer.start_as_current_span("agent"):
        async with over_stdio(tmp_path, traced_server=False) as session:
            result = await session.call_tool("add", {"a": 2, "b": 3})
    assert result.structured_content == {"result": 5}
    client = cap.span("tools/call add")
    records = server_spans(tmp_path)
    assert {record["scope"]["name"] for record in records} == {"mcp-python-sdk"}  # mcp's own
    assert_child(one(records, "tools/call add"), client)


async def test_content_is_recorded_only_when_capture_is_on(cap: Capture, tmp_path: Path) -> None:
    with capture(capture_content=True) as on:
        traced.instrument(on.manager)  # a second call points the spans at this manager
        with on.tracer.start_as_current_span("agent"):
            async with over_stdio(tmp_path, content=True) as session:
                await session.call_tool("add", {"a": 2, "b": 3})
        client = dict(on.span("tools/call add").attributes or {})
    server = one(server_spans(tmp_path), "tools/call add")["attributes"]
    for side in (client, server):
        assert side["gen_ai.tool.call.arguments"] == '{"a":2,"b":3}'
        assert side["gen_ai.tool.call.result"] == '{"result":5}'
    assert cap.spans() == []


async def test_callbacks_on_the_client_manager_see_tool_calls(cap: Capture, tmp_path: Path) -> None:
    seen: list[tuple[str, Any, Any]] = []

    class Tools(GenAICallback):
        def on_tool_call_start(self, tool_name: Any, arguments: Any) -> None:
            seen.append(("start", tool_name, arguments))

        def on_tool_call_end(self, tool_name: Any, result: Any, error: Any) -> None:
            seen.append(("end", tool_name, error))

    cap.manager.register(Tools())
    async with over_stdio(tmp_path) as session:
        await session.call_tool("add", {"a": 2, "b": 3})
        await session.call_tool("fail", {})
    assert seen == [
        ("start", "add", {"a": 2, "b": 3}),
        ("end", "add", None),
        ("start", "fail", {}),
        ("end", "fail", "Error executing tool fail"),
    ]
    [ended, _] = cap.events("tool_call_end")
    assert ended.args[1].structured_content == {"result": 5}  # the CallToolResult itself


async def test_a_failure_inside_spanhooks_never_reaches_the_request(
    cap: Capture, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cap.manager.raise_errors = True  # a callback's exception now reaches spanhooks' hook

    @cap.manager.on("tool_call_start")
    def broken(tool_name: Any, arguments: Any) -> None:
        raise RuntimeError("callback bug")

    with caplog.at_level(logging.WARNING, logger="spanhooks"):
        async with over_stdio(tmp_path) as session:
            result = await session.call_tool("add", {"a": 2, "b": 3})
    assert result.structured_content == {"result": 5}
    assert any("MCP callback" in record.getMessage() for record in caplog.records)
    assert cap.span("tools/call add").status.status_code is not StatusCode.ERROR


async def test_spanhooks_run_traces_a_server_that_never_imports_spanhooks(
    cap: Capture, tmp_path: Path
) -> None:
    program = tmp_path / "plain_server.py"
    program.write_text(
        "from mcp.server.mcpserver import MCPServer\n"
        "server = MCPServer('plain')\n"
        "@server.tool()\n"
        "def add(a: int, b: int) -> int:\n"
        "    return a + b\n"
        "server.run('stdio')\n"
    )
    params = stdio.StdioServerParameters(
        command=sys.executable,
        args=["-m", "spanhooks", "run", str(program)],
        env=server_env(tmp_path),
    )
    with (tmp_path / "server.log").open("w") as errlog:
        async with (
            stdio.stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await session.call_tool("add", {"a": 2, "b": 3})
    server = one(server_spans(tmp_path), "tools/call add")
    assert server["scope"]["name"] == "spanhooks.mcp"
    assert server["attributes"]["network.transport"] == "pipe"
    assert_child(server, cap.span("tools/call add"))


def test_servers_made_while_instrumented_use_spanhooks_middleware_until_uninstrument(
    cap: Capture,
) -> None:
    from mcp.server.lowlevel.server import OpenTelemetryMiddleware

    server = MCPServer("in-process")
    assert not isinstance(server.middleware[0], OpenTelemetryMiddleware)  # spanhooks' instead
    traced.instrument(cap.manager)  # idempotent: nothing wrapped twice
    assert (
        len([m for m in MCPServer("again").middleware if type(m) is type(server.middleware[0])])
        == 1
    )
    traced.uninstrument()
    assert isinstance(server.middleware[0], OpenTelemetryMiddleware)
    assert isinstance(MCPServer("after").middleware[0], OpenTelemetryMiddleware)


# -- streamable HTTP --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def http_server(tmp_path: Path) -> Iterator[str]:
    """A server process on 127.0.0.1 for the block; stopped (spans written) after it."""
    port = free_port()
    env = {**server_env(tmp_path), "HOME": os.environ.get("HOME", str(tmp_path))}
    with (tmp_path / "server.log").open("w") as errlog:
        process = subprocess.Popen(
            [sys.executable, str(SERVER), "http", str(port)], env=env, stderr=errlog
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, (tmp_path / "server.log").read_text()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "the MCP server did not start"
                    time.sleep(0.05)
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            process.terminate()
            process.wait(timeout=30)


async def test_streamable_http_carries_the_trace_and_the_session_id(
    cap: Capture, tmp_path: Path
) -> None:
    with http_server(tmp_path) as url, cap.tracer.start_as_current_span("agent"):
        async with (
            streamable_http.streamable_http_client(url) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await session.call_tool("add", {"a": 2, "b": 3})
    client_span = cap.span("tools/call add")
    server = one(server_spans(tmp_path), "tools/call add")
    assert_child(server, client_span)
    client = dict(client_span.attributes or {})
    attributes = server["attributes"]
    assert client["network.transport"] == attributes["network.transport"] == "tcp"
    assert client["network.protocol.name"] == attributes["network.protocol.name"] == "http"
    assert client["mcp.session.id"] == attributes["mcp.session.id"]
    assert client["server.address"] == attributes["client.address"] == "127.0.0.1"
    assert client["server.port"] == int(url.split(":")[2].split("/")[0])
