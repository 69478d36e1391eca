"""LlamaIndex (``llama-index-core`` 0.14.x) traced with one line: ``instrument()``, or handlers.

``instrument()`` adds one span handler and one event handler to LlamaIndex's root
instrumentation dispatcher (``llama_index.core.instrumentation.get_dispatcher()``, where every
LlamaIndex module's dispatcher propagates), which turn LlamaIndex's spans and events into
spanhooks' ``genai`` events (:mod:`spanhooks.vocab.genai`) and emit them:

- a query engine's ``query`` / ``aquery`` and a chat engine's ``chat`` / ``achat`` are a
  ``workflow {name}`` span when nothing traced encloses them, a ``{name}`` task span when
  something does (a query engine behind a tool, a router's sub-engines); ``{name}`` is
  LlamaIndex's own span name, ``RetrieverQueryEngine.query``. A streaming query
  (``streaming=True``) ends when its ``response_gen`` has been read to its end, and the model
  call the stream makes as it is read nests under it;
- a response synthesizer's ``synthesize`` / ``asynthesize`` is a task span
  (``CompactAndRefine.synthesize``);
- a workflow's run is a ``workflow {Class}.run`` span (a task span when nested) and each of its
  steps a ``{Class}.{step}`` task span; an agent (``FunctionAgent``, ``ReActAgent``,
  ``CodeActAgent``) is an ``invoke_agent {name}`` span with ``gen_ai.agent.description``, its
  steps left out (its model and tool calls sit right under it), as are the steps of a
  multi-agent ``AgentWorkflow``;
- model calls (``LLMChatStartEvent`` / ``LLMChatEndEvent``, ``LLMCompletionStartEvent`` /
  ``LLMCompletionEndEvent``) are CLIENT ``chat {model}`` (``text_completion {model}``) spans
  with the GenAI conventions' attributes: provider (from the LLM's integration package,
  ``llama_index.llms.openai`` is ``openai``), request model, temperature and max tokens from the
  LLM, response id, response model, finish reasons and token usage from the response's ``raw``
  payload (or the token counts LlamaIndex's OpenAI LLM puts in ``additional_kwargs``). A model
  call an LLM makes through its own other method (``achat`` calling ``chat``, a ``CustomLLM``'s
  ``chat`` calling ``complete``) is the one span of the outer call. A streaming call ends when
  its stream ends;
- retrievals (``RetrievalStartEvent`` / ``RetrievalEndEvent``) are ``retrieval {Retriever}``
  spans; the documents (``{"id", "score", "content"}``) are content;
- embeddings calls (``EmbeddingStartEvent`` / ``EmbeddingEndEvent``, one per batch) are CLIENT
  ``embeddings {model}`` spans with the vectors' dimension count;
- tool calls (``BaseTool.call`` / ``acall``, a ``FunctionTool`` or a ``QueryEngineTool``
  called by an agent or by you) are ``execute_tool {name}`` spans with ``gen_ai.tool.type``,
  ``gen_ai.tool.description`` and, for an agent's calls, ``gen_ai.tool.call.id`` (the model's
  id for the call).

Everything else LlamaIndex traces (node parsers, a query engine's inner ``_query``, an LLM's
``predict``, postprocessors) is not a span, but what runs inside it is still nested under the
nearest span above. Each span carries LlamaIndex's span id as ``llamaindex.span_id``, to join
it with LlamaIndex's own span records.

A callback registered once on spanhooks (a :class:`~spanhooks.vocab.genai.GenAICallback`, a
function for ``"llm_end"``...) sees those events as it sees them from any other framework:
``llm_end``'s output is one dict shape (``id``, ``model``, ``message`` with text and tool
calls, ``choices`` with finish reasons, ``usage``). Queries, messages, prompts, tool
arguments, results, documents and texts to embed are content: callbacks always get them,
spans only when content capture is on.

Parents follow LlamaIndex's span ids (``id_`` / ``parent_id``), wherever LlamaIndex reports a
span from: a workflow's steps run in tasks (or, if synchronous, threads) of their own and still
nest under the run. A span LlamaIndex gives no parent (the top of a call) opens under the
current span. An exception leaving a span (LlamaIndex's span drop), or a stream's
``ExceptionEvent``, ends it as an error with the exception recorded; a tool's error output
(``ToolOutput.is_error`` with an exception) ends its span as an error too.

Not mapped yet: ``first_chunk`` of streaming model calls (``LLMChatInProgressEvent``),
structured prediction (``LLMStructuredPredictStartEvent``) and ``LLMPredictStartEvent``'s
prompt template, rerankers (``ReRankStartEvent`` / ``ReRankEndEvent``), the streaming chat
engine methods (``stream_chat``; their model calls are still spans), which agent of an
``AgentWorkflow`` runs each turn, the legacy ``CallbackManager`` events, the events a workflow
streams (``write_event_to_stream``) and its step output summaries, ``instrument_tags``, and
the propagation context LlamaIndex carries to workflows run in another process.

To add the handlers to a dispatcher yourself instead::

    span_handler, event_handler = spanhooks.integrations.llamaindex.handlers()
    dispatcher = get_dispatcher()
    dispatcher.add_span_handler(span_handler)
    dispatcher.add_event_handler(event_handler)

Importing this module does not import LlamaIndex; ``instrument()`` and :func:`handlers` do, and
raise ``ImportError`` (not installed) or ``RuntimeError`` (unsupported version) with the install
hint.

Threading: LlamaIndex calls the handlers in the task or thread that enters, exits or reports
each span; the tables here are guarded by a lock and bounded. ``instrument()`` and
``uninstrument()`` are idempotent and thread-safe; ``uninstrument()`` stops new spans at once
and takes the handlers off the dispatcher once the spans in flight have ended.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from types import AsyncGeneratorType, GeneratorType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from spanhooks.callbacks.manager import CallbackManager, get_callback_manager
from spanhooks.integrations._framework import install_hint, load, supported_range, unsupported
from spanhooks.integrations._runs import MAX_OPEN_RUNS, Runs, is_current, isolated, model_output
from spanhooks.vocab._genai import field
from spanhooks.vocab.genai import GenAIEvent

__all__ = [
    "INSTALL_HINT",
    "SUPPORTED_VERSIONS",
    "handlers",
    "instrument",
    "is_instrumented",
    "uninstrument",
]

_SUPPORTED = ((0, 14), (0, 15))
INSTALL_HINT = install_hint("llamaindex")
SUPPORTED_VERSIONS = supported_range(_SUPPORTED)
"""The ``llama-index-core`` releases whose instrumentation dispatcher, events and base classes
this module was written against."""

SPAN_ID = "llamaindex.span_id"
_MAX_DEPTH = 256  # ancestors walked to find a traced parent
_UNKNOWN = "unknown"  # LlamaIndex's model_name when an LLM or embedding model names none

_PROVIDERS = {
    "openai": "openai",
    "openai_like": "openai",
    "azure_openai": "azure.ai.openai",
    "azure_inference": "azure.ai.inference",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "vertex": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "google_genai": "gcp.gen_ai",
    "mistralai": "mistral_ai",
    "cohere": "cohere",
    "groq": "groq",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
    "ibm": "ibm.watsonx.ai",
    "xai": "x_ai",
}
"""LlamaIndex integration packages (``llama_index.llms.<name>``, ``llama_index.embeddings.
<name>``) and the GenAI conventions' provider names; others are named by their package."""

_MOCKS = ("llama_index.core.llms.mock", "llama_index.core.embeddings.mock_embed_model")


# -- what a LlamaIndex span is ------------------------------------------------------------------


@dataclass(frozen=True)
class _Types:
    """The LlamaIndex base classes whose spans and events are mapped."""

    query_engine: type
    chat_engine: type
    synthesizer: type
    retriever: type
    llm: type
    embedding: type
    tool: type
    workflow: type


# Kinds of LlamaIndex span. Container kinds become workflow (or task) spans when they start;
# model, embedding and retriever spans become spans through the events reported inside them.
_QUERY = "query"
_AGENT = "agent"
_WORKFLOW = "workflow"
_TASK = "task"
_TOOL = "tool"
_LLM = "llm"
_EMBEDDING = "embedding"
_RETRIEVER = "retriever"

_METHODS = {
    _QUERY: frozenset({"query", "aquery", "chat", "achat"}),
    _TASK: frozenset({"synthesize", "asynthesize"}),
    _TOOL: frozenset({"call", "acall", "__call__"}),
}


@dataclass
class _Node:
    """A LlamaIndex span while it is open: its parent and what it was entered for."""

    parent: str | None
    kind: str | None
    instance: Any
    arguments: Mapping[str, Any]
    hides_steps: bool = False
    tool_call_id: str | None = None
    embedded: int = 0  # texts of this embeddings call already reported, batch after batch
    context: otel_context.Context | None = None  # current when a model call's span entered


@dataclass(frozen=True)
class _Open:
    """An open run: its end event and label, what kind of span it is and of which object."""

    end: GenAIEvent
    label: Any
    kind: str
    instance_id: int
    span_id: str | None


def _span_name(id_: str) -> str:
    """LlamaIndex's span name: its id without the uuid (``RetrieverQueryEngine.query``)."""
    return id_.partition("-")[0]


def _method(id_: str) -> str:
    return _span_name(id_).rpartition(".")[2]


class _Tracer:
    """The state both handlers share: LlamaIndex's open spans and the runs they started."""

    def __init__(self, manager: CallbackManager | None, types: _Types) -> None:
        if manager is not None and not isinstance(manager, CallbackManager):
            raise TypeError(f"manager must be a CallbackManager, got {manager!r}")
        self.runs = Runs(manager if manager is not None else get_callback_manager())
        self.types = types
        self.accepting = True
        self.on_idle: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._nodes: OrderedDict[str, _Node] = OrderedDict()
        self._traced: dict[str | None, Hashable] = {}  # LlamaIndex span -> its open run
        self._pending: dict[str | None, deque[Hashable]] = {}  # event runs by their span
        self._open: dict[Hashable, _Open] = {}
        self._serial = 0
        self._event_methods: dict[type, Callable[[_Tracer, Any], None] | None] = {}

    @property
    def manager(self) -> CallbackManager:
        return self.runs.manager

    @manager.setter
    def manager(self, manager: CallbackManager) -> None:
        self.runs.manager = manager

    # -- the span handler's side ----------------------------------------------------------------

    def span_enter(self, id_: str, bound_args: Any, instance: Any, parent_id: str | None) -> None:
        """Remember LlamaIndex span ``id_``; start its run if it is one that starts a span
        (a query, synthesis, workflow, step, agent or tool call)."""
        with self._lock:
            parent = self._nodes.get(parent_id) if parent_id is not None else None
        arguments = getattr(bound_args, "arguments", None)
        arguments = arguments if isinstance(arguments, Mapping) else {}
        kind, hides_steps = self._kind(id_, instance, parent)
        node = _Node(parent_id, kind, instance, arguments, hides_steps)
        if instance is None and parent is not None and parent.kind in (_AGENT, _WORKFLOW):
            node.tool_call_id = _tool_call_id(arguments)  # an agent's call_tool step
        elif kind in (_LLM, _EMBEDDING, _RETRIEVER):
            node.context = otel_context.get_current()
        with self._lock:
            self._nodes[id_] = node
            while len(self._nodes) > MAX_OPEN_RUNS:
                self._nodes.popitem(last=False)
        if not self.accepting or kind not in (_QUERY, _AGENT, _WORKFLOW, _TASK, _TOOL):
            return
        if kind == _TOOL:
            self._start_tool(id_, node)
        elif kind == _AGENT:
            self._start_agent(id_, node)
        else:
            self._start_container(id_, node)

    def span_exit(self, id_: str, result: Any) -> None:
        """End span ``id_``'s run with ``result``, and what its events left open."""
        with self._lock:
            node = self._nodes.pop(id_, None)
        opened = self._open.get(id_)
        if opened is not None:
            error = None
            if opened.kind == _TOOL:
                output, error = _tool_result(result)
            elif opened.kind == _AGENT:
                output = _agent_result(result)
            elif opened.kind == _QUERY and self._streams(id_, result):
                return  # a streaming response: the query ends when its stream does
            else:
                output = _result(result)
            self._end(id_, output, error)
        if node is not None and not _is_stream(result):  # a stream's model call ends
            self._end_pending(id_, None)  # with the stream, after its span exits

    def _streams(self, key: Hashable, result: Any) -> bool:
        """Whether ``result`` is a streaming response whose stream now ends run ``key`` when
        it is done, and runs what it streams (the model call) under that run's span."""
        stream = _read(result, "response_gen")
        ctx = self.runs.context(key)
        if ctx is None or stream is None:
            return False

        @_isolated
        def done(text: str | None, error: BaseException | None) -> None:
            self._end(key, text, error)

        if hasattr(stream, "__next__"):
            wrapped: Any = _traced_stream(stream, ctx, done)
        elif hasattr(stream, "__anext__"):
            wrapped = _traced_async_stream(stream, ctx, done)
        else:
            return False
        try:
            result.response_gen = wrapped
        except Exception:
            return False
        return True

    def span_drop(self, id_: str, err: BaseException | None) -> None:
        """End span ``id_``'s runs as failed with ``err`` (an exception left the span)."""
        with self._lock:
            self._nodes.pop(id_, None)
        if err is not None and type(err).__name__ == "WorkflowDone":
            err = None  # how a workflow stops early: not a failure
        if id_ in self._open:
            self._end(id_, None, err)
        self._end_pending(id_, err)

    def _kind(self, id_: str, instance: Any, parent: _Node | None) -> tuple[str | None, bool]:
        """What the span is, and for a workflow run whether its steps are left out."""
        if instance is None:  # a workflow step: a function LlamaIndex wraps, not a method
            if parent is not None and parent.kind == _WORKFLOW and not parent.hides_steps:
                return _TASK, False
            return None, False
        types = self.types
        method = _method(id_)
        if isinstance(instance, types.llm):
            return _LLM, False
        if isinstance(instance, types.embedding):
            return _EMBEDDING, False
        if isinstance(instance, types.retriever):
            return _RETRIEVER, False
        if isinstance(instance, (types.query_engine, types.chat_engine)):
            return (_QUERY if method in _METHODS[_QUERY] else None), False
        if isinstance(instance, types.synthesizer):
            return (_TASK if method in _METHODS[_TASK] else None), False
        if isinstance(instance, types.tool):
            return (_TOOL if method in _METHODS[_TOOL] else None), False
        if isinstance(instance, types.workflow) and method == "run":
            if _is_instance(
                instance, "llama_index.core.agent.workflow.base_agent", "BaseWorkflowAgent"
            ):
                return _AGENT, True
            hides = _is_instance(
                instance, "llama_index.core.agent.workflow.multi_agent_workflow", "AgentWorkflow"
            )
            return _WORKFLOW, hides
        return None, False

    # -- starting runs --------------------------------------------------------------------------

    def _parent(self, span_id: str | None) -> tuple[Hashable | None, str | None]:
        """The open run nearest above LlamaIndex span ``span_id`` (not counting its own), and
        the tool call id of the agent step it runs in, if any."""
        tool_call_id = None
        with self._lock:
            node = self._nodes.get(span_id) if span_id is not None else None
            current = node.parent if node is not None else None
            for _ in range(_MAX_DEPTH):
                if current is None:
                    break
                run = self._traced.get(current)
                if run is not None:
                    return run, tool_call_id
                node = self._nodes.get(current)
                if node is None:
                    break
                tool_call_id = tool_call_id or node.tool_call_id
                current = node.parent
        return None, tool_call_id

    def _start(
        self,
        key: Hashable,
        span_id: str | None,
        parent: Hashable | None,
        kind: str,
        node: _Node | None,
        event: GenAIEvent,
        *args: Any,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """Emit start ``event(*args)`` for run ``key`` under run ``parent``; its span gets
        LlamaIndex's span id and ``attributes``."""
        instance = node.instance if node is not None else None
        with self._lock:
            self._open[key] = _Open(_END[event], args[0], kind, id(instance), span_id)
            self._traced[span_id] = key
            while len(self._open) > MAX_OPEN_RUNS:  # runs never ended (streams never read)
                self._forget(next(iter(self._open)))
        under = node.context if node is not None else None
        if parent is None and under is not None and not is_current(under):
            # Under what was current when LlamaIndex entered the span, not under a sibling
            # still open in it (an async embeddings call's batches overlap). No token to
            # detach, as for spanhooks' own starts: the end restores it.
            otel_context.attach(under)
        self.runs.start(key, parent, event, *args)
        self.runs.annotate(key, {SPAN_ID: span_id, **(attributes or {})})

    def _start_container(self, id_: str, node: _Node) -> None:
        parent, _ = self._parent(id_)
        name = _span_name(id_)
        if node.kind == _TASK or parent is not None:
            event = GenAIEvent.TASK_START
        else:
            event = GenAIEvent.WORKFLOW_START
        inputs = _container_inputs(node)
        self._start(id_, id_, parent, node.kind or _TASK, node, event, name, inputs)

    def _start_agent(self, id_: str, node: _Node) -> None:
        parent, _ = self._parent(id_)
        agent = node.instance
        name = getattr(agent, "name", None)
        label = name if isinstance(name, str) and name else type(agent).__name__
        inputs = _start_event_inputs(node.arguments.get("start_event"))
        description = getattr(agent, "description", None)
        self._start(
            id_,
            id_,
            parent,
            _AGENT,
            node,
            GenAIEvent.AGENT_START,
            label,
            inputs,
            attributes={gen_ai.GEN_AI_AGENT_DESCRIPTION: description or None},
        )

    def _start_tool(self, id_: str, node: _Node) -> None:
        parent, tool_call_id = self._parent(id_)
        tool = node.instance
        if self._same_call(parent, _TOOL, tool):
            return  # FunctionTool.__call__ calling call: one tool call
        metadata = _read(tool, "metadata")
        name = _first_str(_call(metadata, "get_name"), field(metadata, "name")) or "tool"
        self._start(
            id_,
            id_,
            parent,
            _TOOL,
            node,
            GenAIEvent.TOOL_CALL_START,
            name,
            _arguments(node),
            attributes={
                gen_ai.GEN_AI_TOOL_CALL_ID: tool_call_id,
                gen_ai.GEN_AI_TOOL_TYPE: "function",
                gen_ai.GEN_AI_TOOL_DESCRIPTION: field(metadata, "description") or None,
            },
        )

    def _same_call(self, parent: Hashable | None, kind: str, instance: Any) -> bool:
        """Whether the run ``parent`` is the same object's call of the same kind, which this
        one only carries on (a model call through another method of the same LLM)."""
        opened = self._open.get(parent) if parent is not None else None
        return opened is not None and opened.kind == kind and opened.instance_id == id(instance)

    def _in_call(self, kind: str, instance: Any) -> bool:
        """Whether the current span is the same object's open call of the same kind: a
        stream's call made as the stream is read, outside LlamaIndex's span of the call
        (``CustomLLM.astream_complete`` reading ``stream_complete``)."""
        with self._lock:
            keys = [
                key
                for key, opened in self._open.items()
                if opened.kind == kind and opened.instance_id == id(instance)
            ]
        return any(is_current(self.runs.context(key)) for key in keys)

    def _event_run(self, span_id: str | None) -> Hashable:
        """A new run key for an event-started run inside LlamaIndex span ``span_id`` (one
        span may report several: an embeddings call's batches)."""
        with self._lock:
            self._serial += 1
            key = (span_id, self._serial)
            self._pending.setdefault(span_id, deque()).append(key)
        return key

    def _node(self, span_id: str | None) -> _Node | None:
        with self._lock:
            return self._nodes.get(span_id) if span_id is not None else None

    # -- the event handler's side ---------------------------------------------------------------

    def handle(self, event: Any) -> None:
        """Start or end a run for a model, retrieval or embeddings event (by the event's
        class name, so that LlamaIndex's events need not be imported); ignore the others."""
        kind = type(event)
        try:
            method = self._event_methods[kind]
        except KeyError:
            method = None
            for cls in kind.__mro__:
                method = _EVENT_METHODS.get(cls.__name__)
                if method is not None:
                    break
            self._event_methods[kind] = method
        if method is not None:
            method(self, event)

    def on_chat_start(self, event: Any) -> None:
        messages = [_message(message) for message in getattr(event, "messages", None) or ()]
        self._model_start(event, {"messages": messages}, "chat")

    def on_completion_start(self, event: Any) -> None:
        self._model_start(event, {"prompts": [getattr(event, "prompt", None)]}, "text_completion")

    def _model_start(self, event: Any, inputs: dict[str, Any], operation: str) -> None:
        if not self.accepting:
            return
        span_id = getattr(event, "span_id", None)
        node = self._node(span_id)
        llm = node.instance if node is not None else None
        parent, _ = self._parent(span_id)
        if llm is not None and (
            self._same_call(parent, _LLM, llm) or (parent is None and self._in_call(_LLM, llm))
        ):
            return  # achat calling chat, a CustomLLM's chat calling complete: one model call
        model_dict = getattr(event, "model_dict", None)
        model_dict = model_dict if isinstance(model_dict, Mapping) else {}
        model = _model_name(model_dict, llm)
        settings = dict(getattr(event, "additional_kwargs", None) or {})
        fields = getattr(type(llm), "model_fields", None) or {}
        for setting in ("temperature", "max_tokens", "top_p", "top_k"):
            value = settings.get(setting, _read(llm, setting) if setting in fields else None)
            if isinstance(value, int | float) and not isinstance(value, bool):
                inputs[setting] = value
        inputs["model"] = model
        key = self._event_run(span_id)
        self._start(
            key,
            span_id,
            parent,
            _LLM,
            node,
            GenAIEvent.LLM_START,
            model,
            inputs,
            _provider(llm),
            operation,
        )

    def on_model_end(self, event: Any) -> None:
        self._end_event(event, _model_result(getattr(event, "response", None)))

    def on_retrieval_start(self, event: Any) -> None:
        if not self.accepting:
            return
        span_id = getattr(event, "span_id", None)
        node = self._node(span_id)
        retriever = node.instance if node is not None else None
        source = type(retriever).__name__ if retriever is not None else "retriever"
        parent, _ = self._parent(span_id)
        query = _query_text(getattr(event, "str_or_query_bundle", None))
        key = self._event_run(span_id)
        self._start(
            key,
            span_id,
            parent,
            _RETRIEVER,
            node,
            GenAIEvent.RETRIEVAL_START,
            source,
            query,
        )

    def on_retrieval_end(self, event: Any) -> None:
        nodes = getattr(event, "nodes", None) or ()
        self._end_event(event, [_document(node) for node in nodes])

    def on_embedding_start(self, event: Any) -> None:
        if not self.accepting:
            return
        span_id = getattr(event, "span_id", None)
        node = self._node(span_id)
        embedder = node.instance if node is not None else None
        model_dict = getattr(event, "model_dict", None)
        model_dict = model_dict if isinstance(model_dict, Mapping) else {}
        model = _model_name(model_dict, embedder)
        texts = _texts(node, model_dict)
        parent, _ = self._parent(span_id)
        key = self._event_run(span_id)
        self._start(
            key,
            span_id,
            parent,
            _EMBEDDING,
            node,
            GenAIEvent.EMBEDDING_START,
            model,
            texts,
            _provider(embedder),
        )

    def on_embedding_end(self, event: Any) -> None:
        embeddings = getattr(event, "embeddings", None)
        self._end_event(event, list(embeddings) if isinstance(embeddings, list) else None)

    def on_exception(self, event: Any) -> None:
        error = getattr(event, "exception", None)
        span_id = getattr(event, "span_id", None)
        self._end_pending(span_id, error if isinstance(error, BaseException) else None)

    # -- ending runs ----------------------------------------------------------------------------

    def _end_event(self, event: Any, output: Any) -> None:
        span_id = getattr(event, "span_id", None)
        with self._lock:
            pending = self._pending.get(span_id)
            key = pending.popleft() if pending else None
        if key is not None:
            self._end(key, output, None)

    def _end_pending(self, span_id: str | None, error: BaseException | None) -> None:
        """End every event-started run still open in LlamaIndex span ``span_id``."""
        with self._lock:
            pending = self._pending.pop(span_id, None)
        for key in pending or ():
            self._end(key, None, error)

    def _end(self, key: Hashable, output: Any, error: BaseException | None) -> None:
        """Emit run ``key``'s end event with ``output`` or ``error``."""
        with self._lock:
            opened = self._forget(key)
            idle = not self._open and not self.accepting
        if opened is None:
            return
        self.runs.end(key, opened.end, opened.label, output, error)
        if idle and self.on_idle is not None:
            self.on_idle()

    def _forget(self, key: Hashable) -> _Open | None:
        """Drop run ``key`` from the tables (the lock held); the run it was, if open."""
        opened = self._open.pop(key, None)
        if opened is None:
            return None
        span_id = opened.span_id
        pending = self._pending.get(span_id)
        if pending is not None and key in pending:
            pending.remove(key)
        if self._traced.get(span_id) == key:
            if pending:
                self._traced[span_id] = pending[0]
            else:
                del self._traced[span_id]
        if pending is not None and not pending:
            del self._pending[span_id]
        return opened

    def open_runs(self) -> int:
        with self._lock:
            return len(self._open)


_END = {
    GenAIEvent.WORKFLOW_START: GenAIEvent.WORKFLOW_END,
    GenAIEvent.AGENT_START: GenAIEvent.AGENT_END,
    GenAIEvent.TASK_START: GenAIEvent.TASK_END,
    GenAIEvent.LLM_START: GenAIEvent.LLM_END,
    GenAIEvent.TOOL_CALL_START: GenAIEvent.TOOL_CALL_END,
    GenAIEvent.RETRIEVAL_START: GenAIEvent.RETRIEVAL_END,
    GenAIEvent.EMBEDDING_START: GenAIEvent.EMBEDDING_END,
}

_EVENT_METHODS: dict[str, Callable[[_Tracer, Any], None]] = {
    "LLMChatStartEvent": _Tracer.on_chat_start,
    "LLMChatEndEvent": _Tracer.on_model_end,
    "LLMCompletionStartEvent": _Tracer.on_completion_start,
    "LLMCompletionEndEvent": _Tracer.on_model_end,
    "RetrievalStartEvent": _Tracer.on_retrieval_start,
    "RetrievalEndEvent": _Tracer.on_retrieval_end,
    "EmbeddingStartEvent": _Tracer.on_embedding_start,  # and SparseEmbeddingStartEvent
    "EmbeddingEndEvent": _Tracer.on_embedding_end,
    "SparseEmbeddingEndEvent": _Tracer.on_embedding_end,
    "ExceptionEvent": _Tracer.on_exception,
}


# -- reading LlamaIndex's objects ----------------------------------------------------------------


def _is_instance(obj: Any, module: str, name: str) -> bool:
    """``isinstance(obj, module.name)``, without importing ``module`` (if it is not imported,
    nothing is an instance of its classes)."""
    found = sys.modules.get(module)
    cls = getattr(found, name, None) if found is not None else None
    return isinstance(cls, type) and isinstance(obj, cls)


def _read(obj: Any, name: str) -> Any:
    """``obj.name``, or None if reading it raises (LlamaIndex properties may)."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _call(obj: Any, name: str) -> Any:
    method = _read(obj, name)
    if not callable(method):
        return None
    try:
        return method()
    except Exception:
        return None


def _first_str(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value:
            return value
    return None


def _model_name(model_dict: Mapping[str, Any], instance: Any) -> str:
    """The model an LLM or embedding model calls: its ``model_name`` (LlamaIndex's metadata,
    ``gpt-4o-mini``), else its class's name (``MockLLM``)."""
    for key in ("model_name", "model", "deployment_name"):
        value = model_dict.get(key)
        if isinstance(value, str) and value and value != _UNKNOWN:
            return value
    fields = getattr(type(instance), "model_fields", None) or {}
    for key in ("model", "model_name"):
        value = _read(instance, key) if key in fields else None
        if isinstance(value, str) and value and value != _UNKNOWN:
            return value
    if instance is not None:
        return type(instance).__name__  # not class_name(): subclasses inherit it
    named = model_dict.get("class_name")
    return named if isinstance(named, str) and named else _UNKNOWN


def _provider(instance: Any) -> str | None:
    """The GenAI provider name of an LLM or embedding model, from the LlamaIndex integration
    package its class comes from (``llama_index.llms.openai``); ``mock`` for LlamaIndex's
    mocks."""
    if instance is None:
        return None
    for cls in type(instance).__mro__:
        module = getattr(cls, "__module__", "") or ""
        parts = module.split(".")
        if len(parts) >= 3 and parts[0] == "llama_index" and parts[1] in ("llms", "embeddings"):
            return _PROVIDERS.get(parts[2], parts[2])
        if module in _MOCKS:
            return "mock"
    return None


def _text(value: Any) -> Any:
    """Message content as text when it is text (LlamaIndex's ``content`` joins text blocks)."""
    return value if isinstance(value, str) or value is None else str(value)


def _message(message: Any) -> dict[str, Any]:
    """A ``ChatMessage`` as the conventions' ``{"role", "content"}``, with tool calls and the
    id of the tool call a tool message answers."""
    role = getattr(message, "role", None)
    out: dict[str, Any] = {
        "role": str(getattr(role, "value", role)),
        "content": _text(_read(message, "content")),
    }
    calls = _tool_calls(message)
    if calls:
        out["tool_calls"] = calls
    extra = getattr(message, "additional_kwargs", None) or {}
    if isinstance(extra, Mapping) and extra.get("tool_call_id"):
        out["tool_call_id"] = extra["tool_call_id"]
    return out


def _tool_calls(message: Any) -> list[dict[str, Any]]:
    """The tool calls a ``ChatMessage`` carries: ``ToolCallBlock``s, or OpenAI-shaped calls in
    ``additional_kwargs["tool_calls"]``."""
    calls = []
    for block in getattr(message, "blocks", None) or ():
        if type(block).__name__ == "ToolCallBlock":
            calls.append(
                {
                    "id": getattr(block, "tool_call_id", None),
                    "type": "function",
                    "name": getattr(block, "tool_name", None),
                    "arguments": getattr(block, "tool_kwargs", None),
                }
            )
    extra = getattr(message, "additional_kwargs", None) or {}
    for call in (extra.get("tool_calls") if isinstance(extra, Mapping) else None) or ():
        function = field(call, "function")
        calls.append(
            {
                "id": field(call, "id", "tool_id"),
                "type": "function",
                "name": field(function, "name") or field(call, "tool_name"),
                "arguments": field(function, "arguments") or field(call, "tool_kwargs"),
            }
        )
    return calls


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _model_result(response: Any) -> dict[str, Any] | None:
    """A ``ChatResponse`` or ``CompletionResponse`` in :func:`~spanhooks.integrations._runs.
    model_output`'s shape: model, id, finish reasons and usage from its ``raw`` payload."""
    if response is None:
        return None
    raw = getattr(response, "raw", None)
    is_chat = "message" in (getattr(type(response), "model_fields", None) or {})
    message = getattr(response, "message", None) if is_chat else None
    if message is not None:
        text = _text(_read(message, "content"))
    else:
        text = _text(_read(response, "text"))
    reasons: list[str] = []
    single = field(raw, "stop_reason", "finish_reason")
    if isinstance(single, str):
        reasons.append(single)
    for choice in field(raw, "choices", "candidates") or ():
        reason = field(choice, "finish_reason")
        reason = getattr(reason, "name", reason)  # Gemini's enum
        if isinstance(reason, str):
            reasons.append(reason)
    usage = field(raw, "usage", "usage_metadata")
    extra = getattr(response, "additional_kwargs", None) or {}
    input_tokens = _int(field(usage, "input_tokens", "prompt_tokens", "prompt_token_count"))
    output_tokens = _int(
        field(usage, "output_tokens", "completion_tokens", "candidates_token_count")
    )
    if input_tokens is None and isinstance(extra, Mapping):
        input_tokens = _int(extra.get("prompt_tokens", extra.get("input_tokens")))
    if output_tokens is None and isinstance(extra, Mapping):
        output_tokens = _int(extra.get("completion_tokens", extra.get("output_tokens")))
    response_model = field(raw, "model", "model_version")
    response_id = field(raw, "id", "response_id")
    calls = _tool_calls(message) if message is not None else []
    return model_output(
        model=response_model if isinstance(response_model, str) else None,
        response_id=response_id if isinstance(response_id, str) else None,
        text=text,
        finish_reasons=reasons,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tool_calls=calls or None,
    )


def _query_text(query: Any) -> Any:
    """A ``QueryBundle``'s text (a plain string query is its own)."""
    text = getattr(query, "query_str", None)
    return text if isinstance(text, str) else query


def _document(node: Any) -> dict[str, Any]:
    """A ``NodeWithScore`` as ``{"id", "score", "content"}``."""
    content = _call(node, "get_content")
    return {
        "id": _read(node, "node_id"),
        "score": _read(node, "score"),
        "content": content if content is not None else _read(node, "text"),
    }


def _texts(node: _Node | None, model_dict: Mapping[str, Any]) -> list[Any]:
    """The texts an embeddings call sends in its next batch: the call's ``query`` or
    ``text``, or the next ``embed_batch_size`` of its ``texts``."""
    if node is None:
        return []
    arguments = node.arguments
    for name in ("query", "text"):
        if name in arguments:
            return [arguments[name]]
    texts = arguments.get("texts")
    if not isinstance(texts, list):
        return []
    size = model_dict.get("embed_batch_size")
    size = size if isinstance(size, int) and size > 0 else len(texts)
    batch = texts[node.embedded : node.embedded + size]
    node.embedded += len(batch)
    return batch


_INPUTS = (("str_or_query_bundle", "query"), ("query", "query"), ("message", "message"))


def _container_inputs(node: _Node) -> dict[str, Any]:
    """A query engine's query, a chat engine's message, a synthesizer's query, a workflow's
    start event, or a step's arguments (its input event)."""
    arguments = node.arguments
    if node.kind == _WORKFLOW:
        return _start_event_inputs(arguments.get("start_event"))
    for argument, name in _INPUTS:
        if argument in arguments:
            return {name: _query_text(arguments[argument])}
    return {k: v for k, v in arguments.items() if k not in ("self", "ctx", "context")}


def _start_event_inputs(event: Any) -> dict[str, Any]:
    """A workflow's ``StartEvent`` as its fields by name (``user_msg`` for an agent)."""
    if event is None:
        return {}
    inputs: dict[str, Any] = {}
    for name in getattr(type(event), "model_fields", None) or ():
        inputs[name] = _read(event, name)
    data = _call(event, "to_dict")
    if isinstance(data, Mapping):
        inputs.update(data)
    return {k: v for k, v in inputs.items() if v is not None}


def _arguments(node: _Node) -> dict[str, Any]:
    """A tool call's arguments by name (positional ones, if any, as ``args``)."""
    arguments = node.arguments
    named = arguments.get("kwargs")
    out = dict(named) if isinstance(named, Mapping) else {}
    positional = arguments.get("args")
    if positional:
        out["args"] = list(positional)
    for name, value in arguments.items():
        if name not in ("self", "args", "kwargs"):
            out[name] = value  # a tool whose call takes named parameters (input)
    return out


def _tool_call_id(arguments: Mapping[str, Any]) -> str | None:
    """The model's id for the tool call an agent's ``call_tool`` step runs (its ``ToolCall``)."""
    for value in arguments.values():
        tool_id = getattr(value, "tool_id", None)
        if isinstance(tool_id, str) and tool_id and hasattr(value, "tool_name"):
            return tool_id
    return None


def _tool_result(result: Any) -> tuple[Any, BaseException | None]:
    """A ``ToolOutput``'s content, and its exception when the tool reported an error."""
    content = _read(result, "content")
    if content is None:
        return result, None
    error = _read(result, "exception") if _read(result, "is_error") else None
    return content, error if isinstance(error, BaseException) else None


def _result(result: Any) -> Any:
    """A query or chat response's text; a workflow's result (its ``StopEvent``'s)."""
    text = _read(result, "response")
    if isinstance(text, str):
        return text
    if _is_instance(result, "workflows.events", "StopEvent"):
        return _read(result, "result")
    return result


def _agent_result(result: Any) -> Any:
    """An agent's answer: the text of its last response (``AgentOutput.response``)."""
    output = _result(result)
    message = _read(output, "response")
    content = _read(message, "content") if message is not None else None
    return content if isinstance(content, str) else output


def _is_stream(result: Any) -> bool:
    """Whether a model call returned a stream (LlamaIndex's streaming methods return
    generators), which its end event closes later."""
    return isinstance(result, GeneratorType | AsyncGeneratorType)


_Done = Callable[[str | None, BaseException | None], None]


def _traced_stream(stream: Iterator[Any], ctx: otel_context.Context, done: _Done) -> Iterator[Any]:
    """``stream``, each item produced with ``ctx`` current (so that the model call it makes
    nests under the query), then ``done(text, error)``."""
    parts: list[str] = []
    error: BaseException | None = None
    try:
        while True:
            token = otel_context.attach(ctx)
            try:
                item = next(stream)
            except StopIteration:
                return
            finally:
                otel_context.detach(token)
            if isinstance(item, str):
                parts.append(item)
            yield item
    except GeneratorExit:  # closed before its end: not a failure
        close = getattr(stream, "close", None)
        if callable(close):
            close()
        raise
    except Exception as exc:
        error = exc
        raise
    finally:
        done(None if error is not None else "".join(parts), error)


async def _traced_async_stream(
    stream: AsyncIterator[Any], ctx: otel_context.Context, done: _Done
) -> AsyncIterator[Any]:
    """:func:`_traced_stream` for an async stream."""
    parts: list[str] = []
    error: BaseException | None = None
    try:
        while True:
            token = otel_context.attach(ctx)
            try:
                item = await stream.__anext__()
            except StopAsyncIteration:
                return
            finally:
                otel_context.detach(token)
            if isinstance(item, str):
                parts.append(item)
            yield item
    except GeneratorExit:
        close = getattr(stream, "aclose", None)
        if callable(close):
            await close()
        raise
    except Exception as exc:
        error = exc
        raise
    finally:
        done(None if error is not None else "".join(parts), error)


# -- the handler classes, built on LlamaIndex's bases at first use -------------------------------


_isolated = isolated("LlamaIndex")  # its dispatcher would swallow a failure silently


@_isolated
def _span_enter(
    self: Any,
    id_: str,
    bound_args: Any,
    instance: Any = None,
    parent_id: str | None = None,
    tags: Any = None,
    **kwargs: Any,
) -> None:
    tracer: _Tracer = self._spanhooks
    tracer.span_enter(id_, bound_args, instance, parent_id)


@_isolated
def _span_exit(
    self: Any, id_: str, bound_args: Any, instance: Any = None, result: Any = None, **kwargs: Any
) -> None:
    tracer: _Tracer = self._spanhooks
    tracer.span_exit(id_, result)


@_isolated
def _span_drop(
    self: Any,
    id_: str,
    bound_args: Any,
    instance: Any = None,
    err: BaseException | None = None,
    **kwargs: Any,
) -> None:
    tracer: _Tracer = self._spanhooks
    tracer.span_drop(id_, err)


@_isolated
def _handle(self: Any, event: Any, **kwargs: Any) -> None:
    tracer: _Tracer = self._spanhooks
    tracer.handle(event)


def _nothing(self: Any, *args: Any, **kwargs: Any) -> None:
    """LlamaIndex's abstract span bookkeeping, unused: the span methods are overridden."""


def _itself(self: Any, memo: Any = None) -> Any:
    return self  # a copy of a handler must be the handler: the tracer's state is one


@dataclass(frozen=True)
class _Framework:
    types: _Types
    root: Any
    span_handler: type
    event_handler: type


_load_lock = threading.Lock()
_framework_cache: list[_Framework] = []


def _load_llamaindex() -> _Framework:
    """LlamaIndex's root dispatcher, base classes and handler classes, after checking the
    installed version and hook points."""
    with _load_lock:
        if _framework_cache:
            return _framework_cache[0]
    module, version, supported = load(
        "llamaindex", "llama-index-core", "llama_index.core.instrumentation", _SUPPORTED
    )
    try:
        span_handlers = importlib.import_module("llama_index.core.instrumentation.span_handlers")
        event_handlers = importlib.import_module("llama_index.core.instrumentation.event_handlers")
        types = _Types(
            query_engine=_class("llama_index.core.base.base_query_engine", "BaseQueryEngine"),
            chat_engine=_class("llama_index.core.chat_engine.types", "BaseChatEngine"),
            synthesizer=_class("llama_index.core.response_synthesizers.base", "BaseSynthesizer"),
            retriever=_class("llama_index.core.base.base_retriever", "BaseRetriever"),
            llm=_class("llama_index.core.base.llms.base", "BaseLLM"),
            embedding=_class("llama_index.core.base.embeddings.base", "BaseEmbedding"),
            tool=_class("llama_index.core.tools.types", "BaseTool"),
            workflow=_class("llama_index.core.workflow", "Workflow"),
        )
        span_base = span_handlers.BaseSpanHandler
        event_base = event_handlers.BaseEventHandler
        root = module.get_dispatcher()
    except (ImportError, AttributeError) as exc:
        raise unsupported("llamaindex", "llama-index-core", version, _SUPPORTED) from exc
    hooks = ("add_span_handler", "add_event_handler", "span_handlers", "event_handlers")
    if not supported or not all(hasattr(root, hook) for hook in hooks):
        raise unsupported("llamaindex", "llama-index-core", version, _SUPPORTED)
    framework = _Framework(
        types,
        root,
        _subclass(
            span_base,
            "SpanhooksSpanHandler",
            "a LlamaIndex span handler: LlamaIndex's spans as spanhooks' (see the module)",
            span_enter=_span_enter,
            span_exit=_span_exit,
            span_drop=_span_drop,
            new_span=_nothing,
            prepare_to_exit_span=_nothing,
            prepare_to_drop_span=_nothing,
        ),
        _subclass(
            event_base,
            "SpanhooksEventHandler",
            "a LlamaIndex event handler: model, retrieval and embeddings events as spanhooks'",
            handle=_handle,
        ),
    )
    with _load_lock:
        if not _framework_cache:
            _framework_cache.append(framework)
        return _framework_cache[0]


def _class(module: str, name: str) -> type:
    found = getattr(importlib.import_module(module), name)
    if not isinstance(found, type):
        raise AttributeError(f"{module}.{name} is not a class")
    return found


def _subclass(base: Any, name: str, doc: str, **methods: Callable[..., Any]) -> type:
    """A pydantic subclass of LlamaIndex's handler ``base`` named ``name``, holding the shared
    tracer."""

    def __init__(self: Any, tracer: _Tracer) -> None:
        base.__init__(self)
        # In the instance's __dict__, not a pydantic private attribute: those are read through
        # __getattr__, slower on a path taken for every LlamaIndex span and event.
        object.__setattr__(self, "_spanhooks", tracer)

    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": doc[0].upper() + doc[1:] + ".",
        "__init__": __init__,
        "__copy__": _itself,
        "__deepcopy__": _itself,
        "class_name": classmethod(lambda cls: name),
        **methods,
    }
    cls: type = type(base)(name, (base,), namespace)
    return cls


def handlers(manager: CallbackManager | None = None) -> tuple[Any, Any]:
    """A LlamaIndex span handler and event handler emitting on ``manager`` (default: the
    process-wide one), for ``dispatcher.add_span_handler(...)`` and
    ``dispatcher.add_event_handler(...)``. Add both, to the same dispatcher; needs no
    ``instrument()``."""
    return _handlers(_load_llamaindex(), manager)


def _handlers(framework: _Framework, manager: CallbackManager | None) -> tuple[Any, Any]:
    tracer = _Tracer(manager, framework.types)
    return framework.span_handler(tracer), framework.event_handler(tracer)


# -- instrument / uninstrument ---------------------------------------------------------------


class _Installed:
    def __init__(self, framework: _Framework, span_handler: Any, event_handler: Any) -> None:
        self.framework = framework
        self.span_handler = span_handler
        self.event_handler = event_handler

    @property
    def tracer(self) -> _Tracer:
        tracer: _Tracer = self.span_handler._spanhooks
        return tracer

    def add(self) -> None:
        """Put the handlers on the root dispatcher, unless they are there already."""
        root = self.framework.root
        if not any(h is self.span_handler for h in root.span_handlers):
            root.add_span_handler(self.span_handler)
        if not any(h is self.event_handler for h in root.event_handlers):
            root.add_event_handler(self.event_handler)

    def remove(self) -> None:
        """Take the handlers off the root dispatcher. New lists, not edits in place: the
        dispatcher may be iterating the old ones (this runs when the last span ends)."""
        root = self.framework.root
        root.span_handlers = [h for h in root.span_handlers if h is not self.span_handler]
        root.event_handlers = [h for h in root.event_handlers if h is not self.event_handler]


_lock = threading.Lock()
_installed: _Installed | None = None


def instrument(manager: CallbackManager | None = None) -> None:
    """Trace every LlamaIndex query, retrieval, model, embeddings, tool, workflow and agent
    call from now on, emitting on ``manager`` (default: the process-wide one). Idempotent: a
    second call points the events at ``manager`` when one is given, and adds the handlers
    again if they were taken off the dispatcher in between."""
    global _installed
    if manager is not None and not isinstance(manager, CallbackManager):
        raise TypeError(f"manager must be a CallbackManager, got {manager!r}")
    framework = _load_llamaindex()
    with _lock:
        if _installed is not None:
            if manager is not None:
                _installed.tracer.manager = manager
            _installed.add()
            return
        installed = _Installed(framework, *_handlers(framework, manager))
        installed.add()
        _installed = installed


def uninstrument() -> None:
    """Undo :func:`instrument`: no new spans from now on; the handlers leave the dispatcher
    once the spans in flight have ended (so that those end too)."""
    global _installed
    with _lock:
        installed, _installed = _installed, None
    if installed is None:
        return
    tracer = installed.tracer
    tracer.accepting = False
    tracer.on_idle = installed.remove
    if tracer.open_runs() == 0:
        installed.remove()


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _installed is not None
