"""LLMProc 0.9.5, run for real against a local model server, traced by one instrument() call.

The test runs a small HTTP server on 127.0.0.1 that speaks the Anthropic Messages API
(``ANTHROPIC_BASE_URL``) and the OpenAI chat completions API (``OPENAI_BASE_URL``); LLMProc's
own clients talk to it. The Anthropic conversation is scripted: the first answer calls the
``calculator`` tool and the ``fork`` tool, the next one ends the run. LLMProc 0.9.5's fork
builds the child's history from the response's content blocks rather than messages, so the
forked child's first turn fails in LLMProc itself (``'TextBlock' object has no attribute
'get'``); the fork tool reports that as the child's message and the parent goes on. That real
failure is what the child's spans show.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("llmproc", reason="llmproc not installed: pip install 'spanhooks[llmproc]'")

from llmproc import LLMProgram
from llmproc.llm_process import LLMProcess
from opentelemetry.trace import SpanKind, StatusCode

from spanhooks.integrations import llmproc as traced
from spanhooks.testing import Capture, capture
from spanhooks.vocab.llmproc import LLMProcCallback

# LLMProc's fork tool calls its own deprecated fork_process (the test suite makes warnings errors).
pytestmark = pytest.mark.filterwarnings("ignore:fork_process is deprecated:DeprecationWarning")

MODEL = "claude-3-5-haiku-20241022"
USAGE = {
    "input_tokens": 12,
    "output_tokens": 7,
    "cache_read_input_tokens": 0,
    "cache_creation_input_tokens": 0,
}


class _ModelServer(http.server.BaseHTTPRequestHandler):
    """``POST /v1/messages`` (tool use while tools are offered, until the fork's result is
    back; model "broken" fails with 400) and
    ``POST /v1/chat/completions`` (a fixed answer)."""

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.endswith("/chat/completions"):
            self._reply(200, self._completion(request["model"]))
        elif request["model"] == "broken":
            self._reply(
                400,
                {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "no such model"},
                },
            )
        else:
            self._reply(200, self._message(request))

    def _message(self, request: dict[str, Any]) -> dict[str, Any]:
        last = json.dumps(request["messages"][-1])
        if not request.get("tools") or ("tool_result" in last and "toolu_fork" in last):
            content = [{"type": "text", "text": "The trip is planned."}]
            stop = "end_turn"
        else:
            content = [
                {"type": "text", "text": "Let me work on it."},
                {
                    "type": "tool_use",
                    "id": "toolu_calc",
                    "name": "calculator",
                    "input": {"expression": "2+3"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_fork",
                    "name": "fork",
                    "input": {"prompts": ["Check the weather"]},
                },
            ]
            stop = "tool_use"
        return {
            "id": "msg_tools" if stop == "tool_use" else "msg_final",
            "type": "message",
            "role": "assistant",
            "model": f"{request['model']}-served",
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": USAGE,
        }

    def _completion(self, model: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": f"{model}-2024",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello there"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        }

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def model_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ModelServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _point_clients_at_server(model_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model_server)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{model_server}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("LLMPROC_RETRY_MAX_ATTEMPTS", "1")


def _program(
    model: str = MODEL, provider: str = "anthropic", tools: list[str] | None = None
) -> LLMProgram:
    return LLMProgram(
        model_name=model,
        provider=provider,
        system_prompt="You plan trips.",
        display_name="planner",
        parameters={"max_tokens": 256},
        tools=["calculator", "fork"] if tools is None else tools,
    )


def _run(program: LLMProgram, prompt: str) -> Any:
    async def main() -> Any:
        process = await program.start()
        return await process.run(prompt)

    return asyncio.run(main())


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


class Recorder(LLMProcCallback):
    """The seed's own class callback, registered on spanhooks."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def on_turn_start(self, process: Any) -> None:
        self.seen.append(("turn_start", process.display_name))

    def on_api_request(self, payload_dict: Any) -> None:
        self.seen.append(("api_request", payload_dict["model"]))

    def on_api_response(self, response_obj: Any) -> None:
        self.seen.append(
            ("api_response", getattr(response_obj, "stop_reason", type(response_obj).__name__))
        )

    def on_tool_start(self, tool_name: Any, tool_args: Any) -> None:
        self.seen.append(("tool_start", tool_name, tool_args))

    def on_tool_end(self, tool_name: Any, result: Any) -> None:
        self.seen.append(("tool_end", tool_name, result.is_error))

    def on_response(self, text: Any) -> None:
        self.seen.append(("response", text))

    def on_turn_end(self, process: Any, response_obj: Any, tool_results: Any) -> None:
        self.seen.append(("turn_end", type(response_obj).__name__, len(tool_results)))


def test_run_with_tools_and_a_fork_is_one_trace_nested_as_llmproc_runs(
    cap: Capture, edges: Any
) -> None:
    _run(_program(), "Plan the trip")

    assert edges(cap) == [
        ("workflow planner", None),
        ("invoke_agent planner", "workflow planner"),
        (f"chat {MODEL}", "invoke_agent planner"),
        ("execute_tool calculator", "invoke_agent planner"),
        ("execute_tool fork", "invoke_agent planner"),
        ("workflow planner", "execute_tool fork"),  # the forked child's run
        ("invoke_agent planner", "workflow planner"),  # its first turn, which LLMProc fails
        ("invoke_agent planner", "workflow planner"),  # the parent's second turn
        (f"chat {MODEL}", "invoke_agent planner"),
    ]
    assert len({span.context.trace_id for span in cap.spans()}) == 1
    assert cap.manager.stats()["open_spans"] == 0


def test_chat_span_has_the_genai_attributes(cap: Capture) -> None:
    _run(_program(), "Plan the trip")

    first, second = cap.spans(f"chat {MODEL}")
    assert first.kind is SpanKind.CLIENT
    attributes = _attrs(first)
    assert {
        key: attributes[key]
        for key in (
            "gen_ai.operation.name",
            "gen_ai.provider.name",
            "gen_ai.request.model",
            "gen_ai.request.max_tokens",
            "gen_ai.response.id",
            "gen_ai.response.model",
            "gen_ai.response.finish_reasons",
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.output_tokens",
            "server.address",
        )
    } == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": MODEL,
        "gen_ai.request.max_tokens": 256,
        "gen_ai.response.id": "msg_tools",
        "gen_ai.response.model": f"{MODEL}-served",
        "gen_ai.response.finish_reasons": ("tool_use",),
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 7,
        "server.address": "127.0.0.1",
    }
    assert _attrs(second)["gen_ai.response.finish_reasons"] == ("end_turn",)


def test_tool_spans_carry_tool_name_and_call_id(cap: Capture) -> None:
    _run(_program(), "Plan the trip")

    calculator = _attrs(cap.span("execute_tool calculator"))
    fork = _attrs(cap.span("execute_tool fork"))
    assert (
        calculator["gen_ai.operation.name"],
        calculator["gen_ai.tool.name"],
        calculator["gen_ai.tool.call.id"],
    ) == (
        "execute_tool",
        "calculator",
        "toolu_calc",
    )
    assert (fork["gen_ai.tool.name"], fork["gen_ai.tool.call.id"]) == ("fork", "toolu_fork")
    assert "gen_ai.tool.call.arguments" not in calculator  # content: off by default


def test_forked_child_failure_ends_its_spans_with_the_error(cap: Capture) -> None:
    _run(_program(), "Plan the trip")

    [fork] = cap.spans("execute_tool fork")
    [child_run] = cap.children(fork, "workflow planner")
    [child_turn] = cap.children(child_run, "invoke_agent planner")
    for span in (child_run, child_turn):
        assert span.status.status_code is StatusCode.ERROR
        assert _attrs(span)["error.type"] == "AttributeError"
        assert [event.name for event in span.events] == ["exception"]
    assert fork.status.status_code is StatusCode.UNSET  # the fork tool itself succeeded


def test_spanhooks_callbacks_see_llmproc_events(cap: Capture) -> None:
    recorder = Recorder()
    cap.manager.register(recorder)
    _run(_program(), "Plan the trip")

    assert recorder.seen == [
        ("turn_start", "planner"),
        ("api_request", MODEL),
        ("api_response", "tool_use"),
        ("response", "Let me work on it."),
        ("tool_start", "calculator", {"expression": "2+3"}),
        ("tool_end", "calculator", False),
        ("tool_start", "fork", {"prompts": ["Check the weather"]}),
        ("turn_start", "planner"),  # the child
        ("turn_end", "AttributeError", 0),  # its failure, where the response would be
        ("tool_end", "fork", False),
        ("turn_end", "Message", 2),
        ("turn_start", "planner"),
        ("api_request", MODEL),
        ("api_response", "end_turn"),
        ("response", "The trip is planned."),
        ("turn_end", "Message", 0),
    ]


def test_failed_api_call_ends_chat_turn_and_run_as_errors(cap: Capture, edges: Any) -> None:
    recorder = Recorder()
    cap.manager.register(recorder)
    with pytest.raises(Exception, match="no such model"):
        _run(_program(model="broken", tools=[]), "Plan the trip")

    assert edges(cap) == [
        ("workflow planner", None),
        ("invoke_agent planner", "workflow planner"),
        ("chat broken", "invoke_agent planner"),
    ]
    for span in cap.spans():
        assert span.status.status_code is StatusCode.ERROR
        assert _attrs(span)["error.type"] == "anthropic.BadRequestError"
    assert recorder.seen[-2:] == [
        ("api_response", "BadRequestError"),
        ("turn_end", "BadRequestError", 0),
    ]
    assert cap.manager.stats()["open_spans"] == 0


def test_openai_process_through_openai_base_url(cap: Capture, edges: Any) -> None:
    _run(_program(model="gpt-4o-mini", provider="openai", tools=[]), "Say hello")

    assert edges(cap) == [
        ("workflow planner", None),
        ("invoke_agent planner", "workflow planner"),
        ("chat gpt-4o-mini", "invoke_agent planner"),
    ]
    chat = _attrs(cap.span("chat gpt-4o-mini"))
    assert (
        chat["gen_ai.provider.name"],
        chat["gen_ai.response.model"],
        chat["gen_ai.usage.input_tokens"],
    ) == (
        "openai",
        "gpt-4o-mini-2024",
        9,
    )
    assert chat["gen_ai.request.max_tokens"] == 256  # from LLMProc's OpenAI "params"


def test_content_is_recorded_only_when_capture_is_on(model_server: str) -> None:
    with capture(capture_content=True) as cap:
        traced.instrument(cap.manager)
        try:
            _run(_program(tools=["calculator"]), "Plan the trip")
        finally:
            traced.uninstrument()
        chat = _attrs(cap.spans(f"chat {MODEL}")[0])
        assert "Plan the trip" in chat["gen_ai.input.messages"]
        assert "You plan trips." in chat["gen_ai.system_instructions"]
        assert "toolu_calc" in chat["gen_ai.output.messages"]
        assert "2+3" in _attrs(cap.span("execute_tool calculator"))["gen_ai.tool.call.arguments"]


def test_handler_added_by_hand_traces_without_instrument(edges: Any) -> None:
    with capture() as cap:

        async def main() -> None:
            process = await _program(tools=[]).start()
            process.add_callback(traced.callback(cap.manager))
            await process.run("Plan the trip")

        asyncio.run(main())
        assert edges(cap) == [
            ("invoke_agent planner", None),
            (f"chat {MODEL}", "invoke_agent planner"),
        ]


def test_uninstrument_restores_run_and_stops_events() -> None:
    original = LLMProcess.__dict__["run"]
    with capture() as cap:
        traced.instrument(cap.manager)
        traced.instrument(cap.manager)  # idempotent
        assert traced.is_instrumented()
        assert LLMProcess.__dict__["run"] is not original

        async def main() -> LLMProcess:
            process = await _program(tools=[]).start()
            await process.run("Plan the trip")
            traced.uninstrument()
            traced.uninstrument()  # idempotent
            await process.run("Again")
            return process

        process = asyncio.run(main())
        assert LLMProcess.__dict__["run"] is original
        assert not traced.is_instrumented()
        assert process.callbacks == []  # the handler was taken off again
        assert len(cap.spans("workflow planner")) == 1  # nothing from the second run
        assert len(cap.events("turn_start")) == 1


def test_importing_spanhooks_does_not_import_llmproc() -> None:
    code = (
        "import sys, spanhooks\n"
        "from spanhooks.integrations import llmproc as m\n"
        "assert 'llmproc' not in sys.modules, 'imported llmproc'\n"
        "sys.modules['llmproc'] = None\n"
        "try:\n    m.instrument()\nexcept ImportError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip()
        == "spanhooks.integrations.llmproc needs llmproc >=0.9,<0.10: pip install 'spanhooks[llmproc]'"
    )
