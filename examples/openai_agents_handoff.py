"""An OpenAI Agents SDK hand-off traced by spanhooks with one line, offline.

    python examples/openai_agents_handoff.py

``instrument()`` is the one line; the rest is the Agents SDK as usual. So that it runs with no
network and no API key, the script serves a scripted OpenAI-compatible model on 127.0.0.1 and
makes it the SDK's default client: the triage agent hands off to the weather agent, which calls
its ``get_weather`` tool and then answers. ``instrument()`` also replaces the SDK's own trace
processor, so nothing is uploaded to OpenAI. The trace (``workflow Agent workflow`` >
``run Agent workflow`` > ``invoke_agent Triage`` and ``invoke_agent Weather agent``, each with
its turns, ``chat gpt-4o-mini`` calls, the hand-off and ``execute_tool get_weather``) goes to
``./spanhooks-traces.jsonl`` and is printed at the end; a spanhooks callback prints each agent,
model call and tool call as the run goes, the same callback any other framework's calls reach.

Needs ``pip install 'spanhooks[openai-agents]'``.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from typing import Any

import spanhooks
from spanhooks.export.reader import read_spans
from spanhooks.export.trees import build_trees, format_trees
from spanhooks.integrations.openai_agents import instrument
from spanhooks.vocab.genai import GenAICallback


class _ScriptedModel(http.server.BaseHTTPRequestHandler):
    """OpenAI's ``POST /v1/chat/completions``: hand off, call the tool, then answer."""

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        last = request["messages"][-1]
        offered = {tool["function"]["name"] for tool in request.get("tools", [])}
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if last["role"] == "tool" and "Sunny" in str(last["content"]):
            message["content"] = f"The forecast: {last['content']}."
        elif "transfer_to_weather_agent" in offered:
            message["tool_calls"] = [_call("call_1", "transfer_to_weather_agent", {})]
        else:
            message["tool_calls"] = [_call("call_2", "get_weather", {"city": "Paris"})]
        body = json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": request["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if "tool_calls" in message else "stop",
                    }
                ],
                "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    function = {"name": name, "arguments": json.dumps(arguments)}
    return {"id": call_id, "type": "function", "function": function}


class PrintSteps(GenAICallback):
    def on_agent_start(self, agent_name: Any, inputs: Any) -> None:
        print(f"agent {agent_name}")

    def on_llm_end(self, model: Any, output: Any, error: Any) -> None:
        usage = output.get("usage", {}) if output else {}
        print(f"  model {model}: {usage.get('input_tokens')} in, {usage.get('output_tokens')} out")

    def on_tool_call_end(self, tool_name: Any, result: Any, error: Any) -> None:
        print(f"  tool {tool_name} -> {result!r}")


async def ask(base_url: str, question: str) -> str:
    from agents import (
        Agent,
        Runner,
        function_tool,
        set_default_openai_api,
        set_default_openai_client,
    )
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="offline-example")
    set_default_openai_client(client, use_for_tracing=False)
    set_default_openai_api("chat_completions")

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"Sunny in {city}"

    weather = Agent(
        name="Weather agent",
        instructions="Answer weather questions with get_weather.",
        tools=[get_weather],
        model="gpt-4o-mini",
    )
    triage = Agent(
        name="Triage",
        instructions="Hand weather questions to the weather agent.",
        handoffs=[weather],
        model="gpt-4o-mini",
    )
    try:
        result = await Runner.run(triage, question)
    finally:
        await client.close()
    return str(result.final_output)


def main() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ScriptedModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"

    telemetry = spanhooks.setup()
    instrument()  # the one line: every Agents SDK trace is a spanhooks trace from here on
    spanhooks.register(PrintSteps())

    print("answer:", asyncio.run(ask(base_url, "What is the weather in Paris?")))
    spanhooks.shutdown()
    server.shutdown()
    traces = read_spans(telemetry.jsonl_path or "spanhooks-traces.jsonl")
    print(format_trees(build_trees(traces.spans)))


if __name__ == "__main__":
    main()
