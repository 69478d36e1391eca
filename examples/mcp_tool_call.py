"""A tool call over MCP traced on both sides with one line each, offline.

    python examples/mcp_tool_call.py

The script is both ends: run plainly it is the client, and it starts itself again as an MCP
server over stdio (``--serve``), each side calling ``spanhooks.setup()`` and
``spanhooks.integrations.mcp.instrument()``. The client's ``tools/call add`` span (CLIENT) and
the server's ``tools/call add`` span (SERVER) are one trace: the trace context rides in the
request's ``params._meta``. Both sides append to ``./spanhooks-traces.jsonl``; the client
prints the whole trace at the end, and a spanhooks callback prints the tool call as it ends.

Needs ``pip install 'spanhooks[mcp]'``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import spanhooks
import spanhooks.integrations.mcp
from spanhooks.export.reader import read_spans
from spanhooks.export.trees import build_trees, format_trees
from spanhooks.vocab.genai import GenAICallback


class PrintToolCalls(GenAICallback):
    def on_tool_call_end(self, tool_name: Any, result: Any, error: Any) -> None:
        print(f"tool {tool_name} -> {getattr(result, 'structured_content', result)!r}")


def serve() -> None:
    spanhooks.setup(service_name="mcp-example-server")
    spanhooks.integrations.mcp.instrument()  # before the server is made
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("calculator")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    server.run("stdio")


async def call_the_tool() -> None:
    from mcp import ClientSession
    from mcp.client import stdio

    params = stdio.StdioServerParameters(
        command=sys.executable, args=[__file__, "--serve"], env=dict(os.environ)
    )
    async with (
        stdio.stdio_client(params) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await plan(session)
        print("answer:", result.structured_content)


@spanhooks.workflow(name="plan a trip")
async def plan(session: Any) -> Any:
    return await session.call_tool("add", {"a": 2, "b": 3})


def main() -> None:
    telemetry = spanhooks.setup(service_name="mcp-example-client")
    spanhooks.integrations.mcp.instrument()  # the one line on the client side
    spanhooks.register(PrintToolCalls())
    asyncio.run(call_the_tool())  # the server has exited, its spans written, when this returns
    spanhooks.shutdown()
    traces = read_spans(telemetry.jsonl_path or "spanhooks-traces.jsonl")
    print(format_trees(build_trees(traces.spans)))


if __name__ == "__main__":
    serve() if sys.argv[1:] == ["--serve"] else main()
