"""A scripted OpenAI-compatible model server on 127.0.0.1, for framework tests that must not
reach the network.

It answers ``POST /v1/chat/completions`` (plain and streamed) and ``POST /v1/responses`` from
one script of replies, so a framework's own OpenAI client talks to it unchanged::

    with ModelServer([tool_call("get_weather", {"city": "Paris"}), text("Sunny.")]) as server:
        client = AsyncOpenAI(base_url=server.url, api_key="test")

Each reply is used once, in order (or a function of the request gives every reply); a request
past the end of the script, or a reply made with :func:`failure`, is answered with that HTTP
error. The response's model is the requested one with :data:`MODEL_SUFFIX`, so tests can tell
the request model from the response model. ``server.requests`` keeps each request body.
"""

from __future__ import annotations

import http.server
import itertools
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["MODEL_SUFFIX", "ModelServer", "Reply", "failure", "text", "tool_call"]

MODEL_SUFFIX = "-2024-07-18"
"""Appended to the requested model in every response."""

Reply = dict[str, Any]
"""One scripted answer: ``{"text": ...}``, ``{"tool_calls": [...]}`` or ``{"status": ...}``."""


def text(content: str, *, input_tokens: int = 20, output_tokens: int = 8) -> Reply:
    """An answer with ``content`` that ends the model's turn."""
    return {"text": content, "usage": (input_tokens, output_tokens)}


def tool_call(
    name: str,
    arguments: dict[str, Any],
    *,
    call_id: str = "call_1",
    input_tokens: int = 15,
    output_tokens: int = 9,
) -> Reply:
    """An answer that calls tool ``name`` with ``arguments``."""
    call = {"id": call_id, "name": name, "arguments": json.dumps(arguments)}
    return {"tool_calls": [call], "usage": (input_tokens, output_tokens)}


def failure(status: int = 500, message: str = "model overloaded") -> Reply:
    """An HTTP error answer."""
    return {"status": status, "message": message}


class ModelServer:
    """The server, started on entering and stopped on leaving its ``with`` block."""

    def __init__(self, replies: Iterable[Reply] | Callable[[dict[str, Any]], Reply]) -> None:
        if callable(replies):
            self._next: Callable[[dict[str, Any]], Reply] = replies
        else:
            script = iter(list(replies))
            self._next = lambda request: next(script, failure(500, "script exhausted"))
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._http.daemon_threads = True
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        """The OpenAI base URL: ``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self) -> ModelServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def answer(self, path: str, request: dict[str, Any]) -> tuple[int, Any]:
        """The status and body (a dict, or a list of stream chunks) for one request."""
        with self._lock:
            self.requests.append(request)
            reply = self._next(request)
            serial = next(self._ids)
        if "status" in reply:
            body = {"error": {"message": reply["message"], "type": "server_error"}}
            return reply["status"], body
        model = str(request.get("model", "model")) + MODEL_SUFFIX
        if path.endswith("/responses"):
            return 200, _response(reply, model, serial)
        if request.get("stream"):
            return 200, _chunks(reply, model, serial)
        return 200, _completion(reply, model, serial)


def _usage(reply: Reply) -> tuple[int, int]:
    input_tokens, output_tokens = reply.get("usage", (10, 5))
    return int(input_tokens), int(output_tokens)


def _completion(reply: Reply, model: str, serial: int) -> dict[str, Any]:
    input_tokens, output_tokens = _usage(reply)
    message: dict[str, Any] = {"role": "assistant", "content": reply.get("text")}
    calls = reply.get("tool_calls") or []
    if calls:
        message["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
            for call in calls
        ]
    return {
        "id": f"chatcmpl-{serial}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
        ],
        "usage": {
            "prompt_tokens": input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
    }


def _chunks(reply: Reply, model: str, serial: int) -> list[dict[str, Any]]:
    input_tokens, output_tokens = _usage(reply)
    base = {"id": f"chatcmpl-{serial}", "object": "chat.completion.chunk", "created": 1_700_000_000}
    calls = reply.get("tool_calls") or []
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": reply.get("text") or ""}]
    for index, call in enumerate(calls):
        deltas.append(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": call["arguments"]},
                    }
                ]
            }
        )
    chunks = [{"choices": [{"index": 0, "delta": delta}]} for delta in deltas]
    finish = "tool_calls" if calls else "stop"
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    usage = {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }
    chunks.append({"choices": [], "usage": usage})
    return [{**base, "model": model, **chunk} for chunk in chunks]


def _response(reply: Reply, model: str, serial: int) -> dict[str, Any]:
    input_tokens, output_tokens = _usage(reply)
    output: list[dict[str, Any]] = []
    if reply.get("text") is not None:
        output.append(
            {
                "type": "message",
                "id": f"msg_{serial}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": reply["text"], "annotations": []}],
            }
        )
    for call in reply.get("tool_calls") or []:
        output.append(
            {
                "type": "function_call",
                "id": f"fc_{serial}_{call['id']}",
                "call_id": call["id"],
                "name": call["name"],
                "arguments": call["arguments"],
                "status": "completed",
            }
        )
    return {
        "id": f"resp_{serial}",
        "object": "response",
        "created_at": 1_700_000_000,
        "model": model,
        "status": "completed",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
    }


def _handler(server: ModelServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            status, body = server.answer(self.path, request)
            if isinstance(body, list):
                self._stream(body)
            else:
                self._json(status, body)

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, chunks: list[dict[str, Any]]) -> None:
            data = b"".join(f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks)
            data += b"data: [DONE]\n\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
