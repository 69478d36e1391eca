"""An LLMProc agent traced by spanhooks with one line, offline.

    python examples/llmproc_agent.py

``instrument()`` is the one line; the rest is LLMProc as usual. So that it runs with no network
and no API key, the script serves a scripted Anthropic-compatible model on 127.0.0.1 and points
LLMProc's client at it with ``ANTHROPIC_BASE_URL``: the model asks for the calculator tool, then
answers. The trace (``workflow calculator-agent`` > ``invoke_agent`` turns > ``chat`` and
``execute_tool calculator``) goes to ``./spanhooks-traces.jsonl`` and is printed at the end; a
callback registered on spanhooks prints each tool call as LLMProc runs it.

Needs ``pip install 'spanhooks[llmproc]'``.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import threading
from typing import Any

import spanhooks
from spanhooks import CallbackEvent
from spanhooks.export.reader import read_spans
from spanhooks.export.trees import build_trees, format_trees
from spanhooks.integrations.llmproc import instrument

_USAGE = {
    "input_tokens": 20,
    "output_tokens": 8,
    "cache_read_input_tokens": 0,
    "cache_creation_input_tokens": 0,
}


class _ScriptedModel(http.server.BaseHTTPRequestHandler):
    """Anthropic's ``POST /v1/messages``: a calculator call first, then the answer."""

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if "tool_result" in json.dumps(request["messages"][-1]):
            content: list[dict[str, Any]] = [{"type": "text", "text": "17 * 23 is 391."}]
            stop = "end_turn"
        else:
            content = [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "calculator",
                    "input": {"expression": "17*23"},
                }
            ]
            stop = "tool_use"
        body = json.dumps(
            {
                "id": f"msg_{stop}",
                "type": "message",
                "role": "assistant",
                "model": request["model"],
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": _USAGE,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


async def ask(question: str) -> str:
    from llmproc import LLMProgram

    program = LLMProgram(
        model_name="claude-3-5-haiku-20241022",
        provider="anthropic",
        system_prompt="You answer arithmetic questions with the calculator tool.",
        display_name="calculator-agent",
        parameters={"max_tokens": 512},
        tools=["calculator"],
    )
    process = await program.start()
    await process.run(question)
    return process.get_last_message()


def main() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ScriptedModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["ANTHROPIC_BASE_URL"] = f"http://127.0.0.1:{server.server_address[1]}"
    os.environ.setdefault("ANTHROPIC_API_KEY", "offline-example")

    telemetry = spanhooks.setup()
    instrument()  # the one line: every LLMProc process is traced from here on
    spanhooks.register(CallbackEvent.TOOL_START, lambda name, args: print(f"tool {name}({args})"))

    print(asyncio.run(ask("What is 17 * 23?")))
    spanhooks.shutdown()
    server.shutdown()
    traces = read_spans(telemetry.jsonl_path or "spanhooks-traces.jsonl")
    print(format_trees(build_trees(traces.spans)))


if __name__ == "__main__":
    main()
