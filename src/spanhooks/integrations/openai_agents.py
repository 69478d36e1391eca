"""The OpenAI Agents SDK (``openai-agents`` 0.24.x) traced with one line: ``instrument()``.

``instrument()`` puts a tracing processor on the SDK's trace provider (its public
``set_trace_processors`` / ``add_trace_processor``), which turns the SDK's traces and spans into
spanhooks' ``genai`` events (:mod:`spanhooks.vocab.genai`) and emits them:

- a trace (one ``Runner.run``, or your ``with trace("...")``) is a ``workflow {workflow_name}``
  span; each run in it (the SDK's task span) a ``run {workflow_name}`` task span named after
  the run's own ``RunConfig.workflow_name``, and each agent-loop turn a ``turn {n}`` task span
  (``RunConfig(tracing={"include_task_and_turn_spans": False})`` leaves those two out);
- an agent is an ``invoke_agent {name}`` span with ``gen_ai.agent.id`` (the SDK's span id);
  its tools, handoffs and output type are ``openai_agents.agent.*`` attributes;
- model calls (the SDK's generation spans, Chat Completions and LiteLLM models, and response
  spans, the Responses API) are CLIENT ``chat {model}`` spans with the GenAI conventions'
  attributes: provider ``openai``, request model and server address (generation spans),
  response id, response model and finish reasons (response spans), token usage (both);
- function tools are ``execute_tool {name}`` spans with ``gen_ai.tool.call.id`` and the
  arguments of the tool call the model made (read from that model call's output), MCP tools
  with ``gen_ai.tool.type`` ``extension``;
- a handoff is a ``handoff {from}`` task span, renamed ``handoff {from} -> {to}`` when it ends;
  guardrails are ``guardrail {name}`` task spans with ``openai_agents.guardrail.triggered``;
  custom spans, MCP tool listings and the voice pipeline's spans are task spans of their name.

A callback registered once on spanhooks (a :class:`~spanhooks.vocab.genai.GenAICallback`...)
sees those events as it sees them from any other framework: ``llm_end``'s output is one dict
shape (``id``, ``model``, ``message`` with text and tool calls, ``choices`` with finish reasons,
``usage``); an agent's output is the text of its last model response, a workflow's and a run's
that of the last agent to finish in it. Messages, tool arguments, results and custom span data
are content: callbacks always get them, spans only when content capture is on. The SDK records
them only with ``trace_include_sensitive_data`` (its default). Each span carries the SDK's ids
as ``openai_agents.span_id``, ``openai_agents.parent_id`` and ``openai_agents.trace_id``, to
join it with the SDK's own trace records; a trace's ``group_id`` is ``gen_ai.conversation.id``.

Parents follow the SDK's ``parent_id`` and ``trace_id``, wherever the SDK reports a span from
(tools run in tasks of their own). A span that fails (an exception leaving it, or an error
the SDK recorded on it, such as a tool that raised) ends as an error; an error the SDK recorded
without an exception is an :class:`AgentsSpanError` with the SDK's message. Spans of a trace
started before ``instrument()`` or resumed from a ``RunState`` (the SDK reports no start for
it) open under the current span.

Not mapped: a model call's request messages (the SDK fills them in after telling processors
the span started: they are not in ``llm_start``), the response id, response model and finish
reasons of generation spans (the SDK does not record them), the request model of response
spans, the provider behind a LiteLLM model (every model call says ``openai``), tool
descriptions, the tool call of a handoff, trace metadata, the usage totals of run and turn
spans, streaming chunks (no ``first_chunk``), and the realtime API's sessions.
``OPENAI_AGENTS_DISABLE_TRACING`` (or ``set_tracing_disabled(True)``) turns the SDK's tracing
off, and with it these spans.

``instrument()`` replaces the SDK's own processors (which upload traces to OpenAI's backend)
with this one; ``instrument(exclusive=False)`` adds it beside them. ``uninstrument()`` puts back
what ``instrument()`` replaced; the processor stays registered, tracing no new trace, until the
traces in flight have ended, so that their spans end too. To register it yourself instead::

    agents.add_trace_processor(spanhooks.integrations.openai_agents.tracing_processor())

Importing this module does not import the SDK; ``instrument()`` and :func:`tracing_processor`
do, and raise ``ImportError`` (not installed) or ``RuntimeError`` (unsupported version) with
the install hint.

Threading: the SDK calls processors synchronously in the thread and task that starts or ends
each span, from any number of threads (``Runner.run_sync`` in several); the processor's tables
are guarded by a lock and bounded. ``instrument()`` and ``uninstrument()`` are idempotent and
thread-safe.
"""

from __future__ import annotations

import sys
import threading
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from spanhooks.callbacks.manager import CallbackManager, get_callback_manager
from spanhooks.integrations._framework import install_hint, load, supported_range, unsupported
from spanhooks.integrations._runs import MAX_OPEN_RUNS, Runs, isolated, model_output
from spanhooks.tracing.content_events import structured
from spanhooks.vocab._genai import field as read
from spanhooks.vocab.genai import GenAIEvent

__all__ = [
    "INSTALL_HINT",
    "SUPPORTED_VERSIONS",
    "AgentsSpanError",
    "instrument",
    "is_instrumented",
    "tracing_processor",
    "uninstrument",
]

_SUPPORTED = ((0, 24), (0, 25))
INSTALL_HINT = install_hint("openai_agents")
SUPPORTED_VERSIONS = supported_range(_SUPPORTED)
"""The ``openai-agents`` releases whose tracing processors and span data this module was
written against."""

SPAN_ID = "openai_agents.span_id"
PARENT_ID = "openai_agents.parent_id"
TRACE_ID = "openai_agents.trace_id"
PROVIDER = "openai"

_STATUS_REASONS = {"completed": "stop", "failed": "error", "cancelled": "cancelled"}
_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}
_REQUEST_SETTINGS = (
    "temperature",
    "top_p",
    "max_tokens",
    "frequency_penalty",
    "presence_penalty",
    "tool_choice",
    "parallel_tool_calls",
)


class AgentsSpanError(Exception):
    """A failure the SDK recorded on a span (its ``SpanError``) with no exception leaving the
    span, such as a tool whose exception the SDK turned into a message for the model."""


_isolated = isolated("OpenAI Agents")


@dataclass
class _Open:
    """An SDK span or trace that is open as a spanhooks call: how to end it, the agent and run
    it is part of, and the exception already in flight when it started (not its own)."""

    end: GenAIEvent
    label: Any  # the end event's first argument: a name, or a model call's model (or None)
    kind: str
    trace_id: str
    agent: str | None = None
    run: str | None = None
    caught: BaseException | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_live: weakref.WeakSet[_Processor] = weakref.WeakSet()  # every processor, to share out traces


class _Processor:
    """The methods of spanhooks' tracing processor; mixed into the SDK's ``TracingProcessor``
    by :func:`_processor_class`, so this module imports without the SDK."""

    def __init__(self, manager: CallbackManager | None = None) -> None:
        if manager is not None and not isinstance(manager, CallbackManager):
            raise TypeError(f"manager must be a CallbackManager, got {manager!r}")
        self.runs = Runs(manager if manager is not None else get_callback_manager())
        self._lock = threading.Lock()
        self._open: OrderedDict[str, _Open] = OrderedDict()
        self._traces: set[str] = set()
        self._calls: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._outputs: OrderedDict[str, Any] = OrderedDict()
        self._draining = False
        self._on_drained: Callable[[], None] | None = None
        _live.add(self)

    @property
    def manager(self) -> CallbackManager:
        """The manager the SDK's spans are emitted on."""
        return self.runs.manager

    @manager.setter
    def manager(self, manager: CallbackManager) -> None:
        self.runs.manager = manager

    @property
    def draining(self) -> bool:
        """Whether :meth:`drain` was called: no new trace is traced."""
        return self._draining

    def drain(self, on_drained: Callable[[], None] | None = None) -> None:
        """Trace no new trace, keep ending the ones in flight, and call ``on_drained`` once
        none is left (at once if none is)."""
        with self._lock:
            self._draining = True
            self._on_drained = on_drained
        self._notify_if_drained()

    # -- the SDK's processor interface ------------------------------------------------------

    @_isolated
    def on_trace_start(self, trace: Any) -> None:
        name = str(getattr(trace, "name", None) or "Agent workflow")
        trace_id = str(trace.trace_id)
        with self._lock:
            if self._draining:
                return
            self._traces.add(trace_id)
            record = _Open(GenAIEvent.WORKFLOW_END, name, "trace", trace_id, caught=_in_flight())
            self._remember(trace_id, record)
        self.runs.start(trace_id, None, GenAIEvent.WORKFLOW_START, name, None)
        group = getattr(trace, "group_id", None)
        self.runs.annotate(trace_id, {TRACE_ID: trace_id, gen_ai.GEN_AI_CONVERSATION_ID: group})

    @_isolated
    def on_trace_end(self, trace: Any) -> None:
        trace_id = str(trace.trace_id)
        with self._lock:
            record = self._open.pop(trace_id, None)
            self._traces.discard(trace_id)
            self._calls.pop(trace_id, None)
            output = self._outputs.pop(trace_id, None)
        if record is not None:
            error = _failure(None, record.caught)
            self.runs.end(trace_id, record.end, record.label, None if error else output, error)
        self._notify_if_drained()

    @_isolated
    def on_span_start(self, span: Any) -> None:
        trace_id = str(span.trace_id)
        if not self._traces_span_of(trace_id):
            return
        span_id = str(span.span_id)
        parent_id = str(span.parent_id or trace_id)
        data = span.span_data
        kind = str(getattr(data, "type", "") or "span")
        with self._lock:
            parent = self._open.get(parent_id)
            record = _Open(GenAIEvent.TASK_END, kind, kind, trace_id, caught=_in_flight())
            if parent is not None:
                record.agent = parent.agent
                record.run = parent.run
            self._remember(span_id, record)
        attributes: dict[str, Any] = {
            SPAN_ID: span_id,
            PARENT_ID: span.parent_id,
            TRACE_ID: trace_id,
        }
        event, args = self._start_of(kind, data, record, span_id, parent_id, attributes)
        record.label = args[0]
        self.runs.start(span_id, parent_id, event, *args)
        self.runs.annotate(span_id, attributes)

    @_isolated
    def on_span_end(self, span: Any) -> None:
        span_id = str(span.span_id)
        with self._lock:
            record = self._open.pop(span_id, None)
            self._calls.pop(span_id, None)
            own_output = self._outputs.pop(span_id, None)
        if record is None:
            return
        error = _failure(span, record.caught)
        output = self._end_of(record, span, span_id, own_output, error)
        self.runs.end(span_id, record.end, record.label, None if error else output, error)
        self._notify_if_drained()

    def shutdown(self) -> None:
        """Nothing to release: spanhooks' own shutdown flushes and closes what is open."""

    def force_flush(self) -> None:
        """Nothing is queued here: spans go out through spanhooks' exporters."""

    # -- mapping ----------------------------------------------------------------------------

    def _start_of(
        self,
        kind: str,
        data: Any,
        record: _Open,
        span_id: str,
        parent_id: str,
        attributes: dict[str, Any],
    ) -> tuple[GenAIEvent, tuple[Any, ...]]:
        """The start event and its arguments for an SDK span of ``kind``; fills in ``record``
        (how it ends) and the ``attributes`` to set on it."""
        name = getattr(data, "name", None)
        if kind == "agent":
            record.end, record.agent = GenAIEvent.AGENT_END, span_id
            attributes[gen_ai.GEN_AI_AGENT_ID] = span_id
            return GenAIEvent.AGENT_START, (str(name or "agent"), None)
        if kind in ("generation", "response"):
            record.end = GenAIEvent.LLM_END
            model = getattr(data, "model", None)
            model = model if isinstance(model, str) and model else None
            config = getattr(data, "model_config", None) or {}
            inputs = {key: config[key] for key in _REQUEST_SETTINGS if config.get(key) is not None}
            if model is not None:
                inputs["model"] = model
            attributes.update(_server(config.get("base_url")))
            record.extra["parent"] = parent_id
            return GenAIEvent.LLM_START, (model, inputs, PROVIDER, "chat")
        if kind == "function":
            record.end = GenAIEvent.TOOL_CALL_END
            tool = str(name or "tool")
            call = self._claim_call(parent_id, tool)
            mcp = getattr(data, "mcp_data", None)
            attributes[gen_ai.GEN_AI_TOOL_TYPE] = "extension" if mcp else "function"
            attributes["openai_agents.mcp.server"] = read(mcp, "server")
            attributes[gen_ai.GEN_AI_TOOL_CALL_ID] = call.get("id")
            return GenAIEvent.TOOL_CALL_START, (tool, structured(call.get("arguments")))
        if kind == "task":  # one Runner run inside the trace
            record.run = span_id
            return GenAIEvent.TASK_START, (f"run {name}" if name else "run", None)
        if kind == "turn":
            turn = getattr(data, "turn", None)
            attributes["openai_agents.turn"] = turn
            return GenAIEvent.TASK_START, (f"turn {turn}" if turn is not None else "turn", None)
        if kind == "handoff":
            source = getattr(data, "from_agent", None)
            return GenAIEvent.TASK_START, (f"handoff {source}" if source else "handoff", None)
        if kind == "guardrail":
            return GenAIEvent.TASK_START, (f"guardrail {name}" if name else "guardrail", None)
        if kind == "custom":
            values = getattr(data, "data", None)
            snapshot = dict(values) if isinstance(values, Mapping) else None
            record.extra["data"] = snapshot
            return GenAIEvent.TASK_START, (str(name or "custom"), snapshot)
        if kind == "mcp_tools":
            server = getattr(data, "server", None)
            attributes["openai_agents.mcp.server"] = server
            return GenAIEvent.TASK_START, (f"mcp_tools {server}" if server else "mcp_tools", None)
        return GenAIEvent.TASK_START, (kind, None)  # speech, transcription, speech_group...

    def _end_of(
        self,
        record: _Open,
        span: Any,
        span_id: str,
        own_output: Any,
        error: BaseException | None,
    ) -> Any:
        """The end event's output for an SDK span, after setting what it learned by its end
        (agent tools, handoff target, response model) on the spanhooks span."""
        data = span.span_data
        kind = record.kind
        if kind == "agent":
            self.runs.annotate(
                span_id,
                {
                    "openai_agents.agent.tools": _names(getattr(data, "tools", None)),
                    "openai_agents.agent.handoffs": _names(getattr(data, "handoffs", None)),
                    "openai_agents.agent.output_type": getattr(data, "output_type", None),
                },
            )
            self._pass_up(record, own_output)
            return own_output
        if kind in ("generation", "response"):
            result, usage_extra = _model_result(data)
            if record.label is None and isinstance(result.get("model"), str):
                # a response span names no model until it ends: the response's, then
                record.label = result["model"]
                self.runs.span(span_id).update_name(f"chat {record.label}")
            self.runs.annotate(span_id, usage_extra)
            message = result.get("message") or {}
            calls = message.get("tool_calls") or []
            with self._lock:
                if record.agent is not None and error is None:
                    self._bounded(self._outputs, record.agent, message.get("content"))
                self._bounded(self._calls, record.extra["parent"], list(calls))
            return result
        if kind == "function":
            return getattr(data, "output", None)
        if kind == "task":
            self._pass_up(record, own_output)
            return own_output
        if kind == "handoff":
            source, target = getattr(data, "from_agent", None), getattr(data, "to_agent", None)
            if target:
                self.runs.span(span_id).update_name(f"{record.label} -> {target}")
            self.runs.annotate(
                span_id,
                {
                    "openai_agents.handoff.from_agent": source,
                    "openai_agents.handoff.to_agent": target,
                },
            )
            return {"from_agent": source, "to_agent": target}
        if kind == "guardrail":
            triggered = bool(getattr(data, "triggered", False))
            self.runs.annotate(span_id, {"openai_agents.guardrail.triggered": triggered})
            return {"triggered": triggered}
        if kind == "custom":
            values = getattr(data, "data", None)
            now = dict(values) if isinstance(values, Mapping) else None
            return now if now != record.extra.get("data") else None
        if kind == "mcp_tools":
            return getattr(data, "result", None)
        return None

    def _pass_up(self, record: _Open, output: Any) -> None:
        """An agent's (or a run's) output is also its run's and its trace's, until a later
        agent ends in them."""
        with self._lock:
            for scope in (record.run, record.trace_id):
                if scope is not None and scope in self._open:
                    self._bounded(self._outputs, scope, output)

    def _claim_call(self, parent_id: str, tool: str) -> dict[str, Any]:
        """The first tool call named ``tool`` that the last model call under ``parent_id`` made
        and no tool span has claimed yet: the SDK runs them in the model's order."""
        with self._lock:
            calls = self._calls.get(parent_id) or []
            for index, call in enumerate(calls):
                if call.get("name") == tool:
                    return calls.pop(index)
        return {}

    # -- bookkeeping ------------------------------------------------------------------------

    def _traces_span_of(self, trace_id: str) -> bool:
        """Whether to trace a span of ``trace_id``: a trace this processor started, or, while
        not draining, one no spanhooks processor started (it began before ``instrument()``,
        or it is a run resumed from a ``RunState``, whose start the SDK does not report)."""
        if trace_id in self._traces:
            return True
        if self._draining:
            return False
        return not any(trace_id in other._traces for other in list(_live) if other is not self)

    def _remember(self, key: str, record: _Open) -> None:
        self._bounded(self._open, key, record)

    @staticmethod
    def _bounded(table: OrderedDict[str, Any], key: str, value: Any) -> None:
        table[key] = value
        while len(table) > MAX_OPEN_RUNS:
            table.popitem(last=False)

    def _notify_if_drained(self) -> None:
        if not self._draining:
            return
        with self._lock:
            on_drained = self._on_drained
            if self._open or on_drained is None:
                return
            self._on_drained = None
        on_drained()


# -- reading the SDK's span data ---------------------------------------------------------------


def _in_flight() -> BaseException | None:
    exc = sys.exc_info()[1]
    return exc if isinstance(exc, Exception) else None


def _failure(span: Any, caught: BaseException | None) -> BaseException | None:
    """Why a span (or, with ``span`` None, a trace) failed: the exception leaving it (one that
    was not already in flight when it started), else the error the SDK recorded on it."""
    exc = _in_flight()
    if exc is not None and exc is not caught:
        return exc
    recorded = getattr(span, "error", None) if span is not None else None
    if not recorded:
        return None
    message = str(read(recorded, "message") or "span failed")
    detail = read(read(recorded, "data"), "error")
    return AgentsSpanError(f"{message}: {detail}" if isinstance(detail, str) else message)


def _server(base_url: Any) -> dict[str, Any]:
    """``server.address`` and ``server.port`` of the model's base URL (the SDK strips its
    credentials and query)."""
    if not isinstance(base_url, str) or not base_url:
        return {}
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError:
        return {}
    if port is None and parts.scheme in ("http", "https"):
        port = 443 if parts.scheme == "https" else 80
    return {"server.address": parts.hostname, "server.port": port}


def _names(values: Any) -> list[str] | None:
    """Names as a list attribute; an empty one left out (attributes do not keep its type)."""
    if not isinstance(values, list | tuple) or not values:
        return None
    return [str(value) for value in values]


def _model_result(data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A generation or response span's result in :func:`model_output`'s shape, and the
    cached-token count to set beside it."""
    response = getattr(data, "response", None)
    usage = getattr(data, "usage", None) or read(response, "usage")
    input_tokens = read(usage, "input_tokens")
    output_tokens = read(usage, "output_tokens")
    cached = read(read(usage, "input_tokens_details"), "cached_tokens")
    extra = {gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cached if _is_int(cached) else None}
    text: str | None = None
    calls: list[dict[str, Any]] = []
    model: Any = None
    response_id: Any = None
    reasons: list[str] = []
    if response is not None or getattr(data, "type", None) == "response":
        text, calls = _response_items(read(response, "output"))
        model = read(response, "model")
        response_id = read(response, "id") or getattr(data, "_response_id", None)
        reasons = _response_reasons(response)
    else:
        for item in getattr(data, "output", None) or ():
            if isinstance(read(item, "output"), list):
                # streamed: a Responses-shaped result the SDK made up (its model is the
                # request's, its id a placeholder), so only what the model said is read
                item_text, item_calls = _response_items(read(item, "output"))
            else:
                item_text, item_calls = _chat_message(item)
            if item_text is not None:
                text = item_text if text is None else text + item_text
            calls.extend(item_calls)
    result = model_output(
        model=model if isinstance(model, str) else None,
        response_id=response_id if isinstance(response_id, str) else None,
        text=text,
        finish_reasons=reasons,
        input_tokens=input_tokens if _is_int(input_tokens) else None,
        output_tokens=output_tokens if _is_int(output_tokens) else None,
        tool_calls=calls or None,
    )
    return result, extra


def _chat_message(message: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """Text and tool calls of a Chat Completions message (a dict, as the SDK records it)."""
    content = read(message, "content")
    if isinstance(content, list):
        parts = [read(part, "text") for part in content]
        content = "".join(part for part in parts if isinstance(part, str)) or None
    calls = []
    for call in read(message, "tool_calls") or ():
        function = read(call, "function")
        calls.append(
            {
                "id": read(call, "id"),
                "type": "function",
                "name": read(function, "name"),
                "arguments": read(function, "arguments"),
            }
        )
    return (content if isinstance(content, str) else None), calls


def _response_items(items: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """Text and function calls of a Responses API output (objects or their dumps)."""
    texts: list[str] = []
    calls = []
    for item in items if isinstance(items, Sequence) else ():
        kind = read(item, "type")
        if kind == "message":
            for part in read(item, "content") or ():
                value = read(part, "text")
                if read(part, "type") == "output_text" and isinstance(value, str):
                    texts.append(value)
        elif kind == "function_call":
            calls.append(
                {
                    "id": read(item, "call_id"),
                    "type": "function",
                    "name": read(item, "name"),
                    "arguments": read(item, "arguments"),
                }
            )
    return ("".join(texts) if texts else None), calls


def _response_reasons(response: Any) -> list[str]:
    """A Responses API result's status as a finish reason (``completed`` is ``stop``, an
    ``incomplete`` one its reason: ``max_output_tokens`` is ``length``)."""
    incomplete = read(read(response, "incomplete_details"), "reason")
    if isinstance(incomplete, str):
        return [_INCOMPLETE_REASONS.get(incomplete, incomplete)]
    status = read(response, "status")
    if isinstance(status, str):
        return [_STATUS_REASONS.get(status, status)]
    return []


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- the processor class, built on the SDK's base at first use ---------------------------------

_lock = threading.Lock()
_processors_lock = threading.Lock()
_class_cache: list[type] = []


def _load_agents() -> Any:
    """The SDK's ``agents`` module, after checking the installed version and hook points."""
    module, version, supported = load("openai_agents", "openai-agents", "agents", _SUPPORTED)
    tracing = getattr(module, "tracing", None)
    hooks = (
        getattr(module, "set_trace_processors", None),
        getattr(module, "add_trace_processor", None),
        getattr(tracing, "get_trace_provider", None),
    )
    if (
        not supported
        or getattr(tracing, "TracingProcessor", None) is None
        or not all(callable(hook) for hook in hooks)
    ):
        raise unsupported("openai_agents", "openai-agents", version, _SUPPORTED)
    return module


def _processor_class() -> type:
    with _lock:
        if not _class_cache:
            base = _load_agents().tracing.TracingProcessor
            built = types.new_class("SpanhooksTracingProcessor", (_Processor, base))
            built.__module__ = __name__
            built.__doc__ = "The OpenAI Agents SDK tracing processor that emits spanhooks events."
            _class_cache.append(built)
        return _class_cache[0]


def tracing_processor(manager: CallbackManager | None = None) -> Any:
    """A tracing processor emitting on ``manager`` (default: the process-wide one), for
    ``agents.add_trace_processor(...)`` or ``agents.set_trace_processors([...])``. Needs no
    ``instrument()``."""
    return _processor_class()(manager)


# -- instrument / uninstrument -----------------------------------------------------------------


@dataclass
class _Installed:
    processor: Any
    exclusive: bool
    displaced: list[Any] | None  # what an exclusive instrument() replaced; None: unknown


_installed: _Installed | None = None


def _registered() -> list[Any] | None:
    """The processors on the SDK's default trace provider, or None when they cannot be read
    (a custom ``TraceProvider``): the SDK can add and replace processors, not list them."""
    try:
        from agents.tracing import get_trace_provider

        processors = getattr(
            getattr(get_trace_provider(), "_multi_processor", None), "_processors", None
        )
    except Exception:
        return None
    return list(processors) if isinstance(processors, tuple | list) else None


def _update(change: Callable[[list[Any]], list[Any] | None]) -> bool:
    """Replace the SDK's processors by ``change(registered)`` (None: leave them); False when
    they cannot be read. Made under the lock the SDK's own ``add_trace_processor`` takes, so
    a processor added by another thread meanwhile is not lost."""
    from agents import set_trace_processors
    from agents.tracing import get_trace_provider

    with _processors_lock:
        multi: Any = getattr(get_trace_provider(), "_multi_processor", None)
        sdk_lock: Any = getattr(multi, "_lock", None)
        if multi is None or not hasattr(sdk_lock, "__enter__"):
            registered = _registered()
            if registered is None:
                return False
            changed = change(registered)
            if changed is not None:
                set_trace_processors(changed)
            return True
        with sdk_lock:
            registered = _registered()
            if registered is None:
                return False
            changed = change(registered)
            if changed is not None:
                multi._processors = tuple(changed)
        return True


def _draining(processor: Any) -> bool:
    return isinstance(processor, _Processor) and processor.draining


def instrument(manager: CallbackManager | None = None, *, exclusive: bool = True) -> None:
    """Trace every OpenAI Agents SDK trace from now on, emitting on ``manager`` (default: the
    process-wide one). ``exclusive`` replaces the SDK's processors (its default uploads to
    OpenAI's backend) until :func:`uninstrument`; ``exclusive=False`` keeps them. Idempotent:
    a second call points the events at ``manager`` when one is given (the first call's
    ``exclusive`` stays)."""
    global _installed
    processor_class = _processor_class()
    with _lock:
        if _installed is not None:
            if manager is not None:
                _installed.processor.manager = manager
            return
        from agents import add_trace_processor, set_trace_processors

        processor = processor_class(manager)
        displaced: list[Any] | None = None
        if exclusive:

            def replace(registered: list[Any]) -> list[Any]:
                nonlocal displaced
                # processors an earlier uninstrument() left draining keep their runs
                draining = [p for p in registered if _draining(p)]
                displaced = [p for p in registered if not _draining(p)]
                return [*draining, processor]

            if not _update(replace):
                set_trace_processors([processor])
        else:
            add_trace_processor(processor)
        _installed = _Installed(processor, exclusive, displaced)


def uninstrument() -> None:
    """Undo :func:`instrument`: no new trace is traced, the processors ``instrument()``
    replaced are back, and spanhooks' processor leaves once the traces in flight have ended."""
    global _installed
    with _lock:
        installed, _installed = _installed, None
        if installed is None:
            return
        processor = installed.processor
        displaced = installed.displaced or []

        def restore(registered: list[Any]) -> list[Any]:
            back = [p for p in displaced if not any(p is r for r in registered)]
            return [*back, *registered]

        def take_out(registered: list[Any]) -> list[Any] | None:
            if not any(p is processor for p in registered):
                return None
            return [p for p in registered if p is not processor]

        def remove() -> None:
            _update(take_out)

        readable = _update(restore) if installed.exclusive else _registered() is not None
        # Once its traces have ended; when the list cannot be read it stays, tracing nothing.
        processor.drain(remove if readable else None)


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _installed is not None
