"""A small MCP server (mcp's ``MCPServer``) for tests/integrations/test_mcp.py, run as a child
process: ``python mcp_server.py stdio`` or ``python mcp_server.py http PORT``.

It writes its spans to ``SPANHOOKS_JSONL_PATH`` through ``spanhooks.setup()`` and traces its MCP
requests with ``spanhooks.integrations.mcp.instrument()`` unless ``MCP_SERVER_TRACED=0``.
Content capture follows ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.
"""

from __future__ import annotations

import os
import sys

import spanhooks
import spanhooks.integrations.mcp

spanhooks.setup(service_name="mcp-test-server")
if os.environ.get("MCP_SERVER_TRACED", "1") != "0":
    spanhooks.integrations.mcp.instrument()  # before the server is made: it traces new servers

from mcp.server.mcpserver import MCPServer  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

server = MCPServer("spanhooks-test")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@server.tool()
def fail() -> str:
    """Raise: mcp answers with a tool error (``isError``)."""
    raise ValueError("the tool broke")


@server.tool()
def refuse() -> str:
    """Raise an MCP error: mcp answers with a JSON-RPC error response."""
    raise MCPError(code=-32042, message="refused by policy")


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
