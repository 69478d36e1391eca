"""LangChain (``langchain-core`` 1.x) traced with one line: ``instrument()``, or a handler.

``instrument()`` adds one callback handler to every LangChain run from then on (through
``langchain-core``'s configure hook, the way LangSmith's tracer is added), which turns LangChain's
callbacks into spanhooks' ``genai`` events (:mod:`spanhooks.vocab.genai`) and emits them:

- an agent made by ``langchain.agents.create_agent`` is an ``invoke_agent {name}`` span;
- any other top-level runnable is a ``workflow {name}`` span, nested runnables (graph nodes,
  sequence steps, prompts, parsers) ``{name}`` task spans;
- chat-model and LLM calls are CLIENT ``chat {model}`` (``text_completion {model}``) spans with
  the GenAI conventions' attributes: provider and request model from LangChain's ``ls_*``
  metadata and invocation parameters, response model, finish reasons and token usage from
  the result;
- tools are ``execute_tool {name}`` spans with ``gen_ai.tool.call.id`` (the model's call id),
  ``gen_ai.tool.description`` and the tool type;
- retrievers are ``retrieval {name}`` spans; the documents are content.

A callback registered once on spanhooks (a :class:`~spanhooks.vocab.genai.GenAICallback`, a
function for ``"llm_end"``...) sees those events as it sees them from any other framework:
``llm_end``'s output is one dict shape (``id``, ``model``, ``message``, ``choices`` with finish
reasons, ``usage``). Messages, tool arguments, results and documents are content: callbacks
always get them, spans only when content capture is on. Each span carries LangChain's
``langchain.run_id``, to join it with LangSmith's records.

Parents follow LangChain's ``parent_run_id``, wherever the callback runs (LangChain may call a
handler in another thread than the run's parent). Failures end the run's span as an error with
the exception recorded. Not mapped yet: ``on_retry``, custom events (``dispatch_custom_event``),
the legacy ``AgentExecutor``'s ``on_agent_action`` / ``on_agent_finish`` (its runs still
become spans), streaming tokens (``on_llm_new_token``) and embeddings (LangChain has no
embeddings callback).

To pass the handler yourself instead: ``chain.invoke(x, config={"callbacks":
[spanhooks.integrations.langchain.callback_handler()]})``. Importing this module does not import
LangChain; ``instrument()`` and :func:`callback_handler` do, and raise ``ImportError`` (not
installed) or ``RuntimeError`` (unsupported version) with the install hint.

Threading: the handler runs inline (``run_inline``), in the thread or task that reports each
run; its tables are guarded by locks and bounded. ``instrument()`` and ``uninstrument()`` are
idempotent and thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from spanhooks.callbacks.manager import CallbackManager, get_callback_manager
from spanhooks.integrations._framework import install_hint, load, supported_range, unsupported
from spanhooks.integrations._runs import Runs, isolated, model_output
from spanhooks.vocab.genai import GenAIEvent

__all__ = [
    "INSTALL_HINT",
    "SUPPORTED_VERSIONS",
    "callback_handler",
    "instrument",
    "is_instrumented",
    "uninstrument",
]

_SUPPORTED = ((1, 0), (2, 0))
INSTALL_HINT = install_hint("langchain")
SUPPORTED_VERSIONS = supported_range(_SUPPORTED)
"""The ``langchain-core`` releases whose callback interface this module was written against."""

RUN_ID = "langchain.run_id"
_AGENT_INTEGRATION = "langchain_create_agent"
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


_isolated = isolated("LangChain")


class _Handler:
    """The methods of spanhooks' LangChain handler; mixed into LangChain's
    ``BaseCallbackHandler`` by :func:`_handler_class`, so this module imports without
    LangChain."""

    run_inline = True  # in the run's own thread or task, where its span is current
    raise_error = False
    name = "spanhooks"

    def __init__(self, manager: CallbackManager | None = None) -> None:
        if manager is not None and not isinstance(manager, CallbackManager):
            raise TypeError(f"manager must be a CallbackManager, got {manager!r}")
        self.manager = manager if manager is not None else get_callback_manager()
        self.runs = Runs(self.manager)
        self._ends: dict[Any, tuple[GenAIEvent, str]] = {}  # open run -> its end event, label
        self._lock = threading.Lock()

    @property
    def manager(self) -> CallbackManager:
        return self._manager

    @manager.setter
    def manager(self, manager: CallbackManager) -> None:
        self._manager = manager
        if hasattr(self, "runs"):
            self.runs.manager = manager

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return self  # LangChain copies configs: the copy must be this same handler

    def __copy__(self) -> Any:
        return self

    # -- runnables ------------------------------------------------------------------------

    @_isolated
    def on_chain_start(
        self, serialized: Any, inputs: Any, *, run_id: Any, parent_run_id: Any = None, **kw: Any
    ) -> None:
        name = _run_name(serialized, kw)
        metadata = kw.get("metadata") or {}
        if _is_agent(name, metadata, self.runs.context(parent_run_id) is not None):
            agent = str(metadata.get("lc_agent_name") or name)
            self._start(run_id, parent_run_id, GenAIEvent.AGENT_START, agent, inputs)
            self.runs.annotate(run_id, {gen_ai.GEN_AI_AGENT_ID: str(run_id)})
        elif parent_run_id is None or self.runs.context(parent_run_id) is None:
            self._start(run_id, parent_run_id, GenAIEvent.WORKFLOW_START, name, inputs)
        else:
            self._start(run_id, parent_run_id, GenAIEvent.TASK_START, name, inputs)

    @_isolated
    def on_chain_end(self, outputs: Any, *, run_id: Any, **kw: Any) -> None:
        self._end(run_id, outputs, None)

    @_isolated
    def on_chain_error(self, error: BaseException, *, run_id: Any, **kw: Any) -> None:
        self._end(run_id, None, error)

    # -- models ---------------------------------------------------------------------------

    @_isolated
    def on_chat_model_start(
        self,
        serialized: Any,
        messages: Sequence[Sequence[Any]],
        *,
        run_id: Any,
        parent_run_id: Any = None,
        **kw: Any,
    ) -> None:
        batch = [_message(message) for prompt in messages for message in prompt]
        self._model_start(run_id, parent_run_id, {"messages": batch}, "chat", kw)

    @_isolated
    def on_llm_start(
        self,
        serialized: Any,
        prompts: Sequence[str],
        *,
        run_id: Any,
        parent_run_id: Any = None,
        **kw: Any,
    ) -> None:
        self._model_start(run_id, parent_run_id, {"prompts": list(prompts)}, "text_completion", kw)

    @_isolated
    def on_llm_end(self, response: Any, *, run_id: Any, **kw: Any) -> None:
        self._end(run_id, _model_result(response), None)

    @_isolated
    def on_llm_error(self, error: BaseException, *, run_id: Any, **kw: Any) -> None:
        self._end(run_id, None, error)

    # -- tools and retrievers -------------------------------------------------------------

    @_isolated
    def on_tool_start(
        self,
        serialized: Any,
        input_str: str,
        *,
        run_id: Any,
        parent_run_id: Any = None,
        inputs: Any = None,
        **kw: Any,
    ) -> None:
        name = _run_name(serialized, kw)
        arguments = inputs if isinstance(inputs, Mapping) else {"input": input_str}
        self._start(run_id, parent_run_id, GenAIEvent.TOOL_CALL_START, name, dict(arguments))
        described = serialized if isinstance(serialized, Mapping) else {}
        self.runs.annotate(
            run_id,
            {
                gen_ai.GEN_AI_TOOL_CALL_ID: kw.get("tool_call_id"),
                gen_ai.GEN_AI_TOOL_DESCRIPTION: described.get("description"),
                gen_ai.GEN_AI_TOOL_TYPE: "function",
            },
        )

    @_isolated
    def on_tool_end(self, output: Any, *, run_id: Any, **kw: Any) -> None:
        self._end(run_id, getattr(output, "content", output), None)

    @_isolated
    def on_tool_error(self, error: BaseException, *, run_id: Any, **kw: Any) -> None:
        self._end(run_id, None, error)

    @_isolated
    def on_retriever_start(
        self, serialized: Any, query: str, *, run_id: Any, parent_run_id: Any = None, **kw: Any
    ) -> None:
        name = _run_name(serialized, kw)
        self._start(run_id, parent_run_id, GenAIEvent.RETRIEVAL_START, name, query)

    @_isolated
    def on_retriever_end(self, documents: Sequence[Any], *, run_id: Any, **kw: Any) -> None:
        self._end(run_id, [_document(document) for document in documents], None)

    @_isolated
    def on_retriever_error(self, error: BaseException, *, run_id: Any, **kw: Any) -> None:
        self._end(run_id, None, error)

    # -- pairing --------------------------------------------------------------------------

    def _model_start(
        self,
        run_id: Any,
        parent_run_id: Any,
        inputs: dict[str, Any],
        operation: str,
        kw: Mapping[str, Any],
    ) -> None:
        params = kw.get("invocation_params") or {}
        metadata = kw.get("metadata") or {}
        model = _first_str(
            params.get("model"), params.get("model_name"), metadata.get("ls_model_name")
        )
        provider = _first_str(metadata.get("ls_provider"), params.get("_type"))
        for key in ("temperature", "max_tokens", "top_p", "top_k"):
            if params.get(key) is not None:
                inputs[key] = params[key]
        if model is not None:
            inputs["model"] = model
        self._start(run_id, parent_run_id, GenAIEvent.LLM_START, model, inputs, provider, operation)

    def _start(self, run_id: Any, parent_run_id: Any, event: GenAIEvent, *args: Any) -> None:
        with self._lock:
            self._ends[run_id] = (_END[event], args[0])
        self.runs.start(run_id, parent_run_id, event, *args)
        self.runs.annotate(run_id, {RUN_ID: str(run_id)})

    def _end(self, run_id: Any, output: Any, error: BaseException | None) -> None:
        with self._lock:
            found = self._ends.pop(run_id, None)
        if found is not None:
            event, label = found
            self.runs.end(run_id, event, label, output, error)


_END = {
    GenAIEvent.WORKFLOW_START: GenAIEvent.WORKFLOW_END,
    GenAIEvent.AGENT_START: GenAIEvent.AGENT_END,
    GenAIEvent.TASK_START: GenAIEvent.TASK_END,
    GenAIEvent.LLM_START: GenAIEvent.LLM_END,
    GenAIEvent.TOOL_CALL_START: GenAIEvent.TOOL_CALL_END,
    GenAIEvent.RETRIEVAL_START: GenAIEvent.RETRIEVAL_END,
}


def _run_name(serialized: Any, kw: Mapping[str, Any]) -> str:
    name = kw.get("name")
    if isinstance(name, str) and name:
        return name
    if isinstance(serialized, Mapping):
        named = serialized.get("name")
        if isinstance(named, str) and named:
            return named
        ids = serialized.get("id")
        if isinstance(ids, list | tuple) and ids:
            return str(ids[-1])
    return "runnable"


def _is_agent(name: str, metadata: Mapping[str, Any], parent_traced: bool) -> bool:
    """Whether a chain run is the agent ``create_agent`` built (not one of its nodes): it
    carries the agent's metadata, and its name is the agent's, or it has no traced parent
    (an agent made without a name runs as ``LangGraph``)."""
    if metadata.get("ls_integration") != _AGENT_INTEGRATION:
        return False
    agent_name = metadata.get("lc_agent_name")
    if agent_name is not None:
        return bool(name == agent_name)
    return not parent_traced


def _first_str(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value:
            return value
    return None


def _message(message: Any) -> dict[str, Any]:
    """A LangChain message as the conventions' ``{"role", "content"}`` (plus tool calls)."""
    kind = getattr(message, "type", None)
    out: dict[str, Any] = {
        "role": _ROLES.get(str(kind), str(kind)),
        "content": getattr(message, "content", message),
    }
    tool_calls = getattr(message, "tool_calls", None)
    if tool_calls:
        out["tool_calls"] = [dict(call) for call in tool_calls]
    tool_call_id = getattr(message, "tool_call_id", None)
    if tool_call_id:
        out["tool_call_id"] = tool_call_id
    return out


def _model_result(response: Any) -> dict[str, Any]:
    """An ``LLMResult`` in :func:`~spanhooks.integrations._runs.model_output`'s shape."""
    generations = [g for batch in getattr(response, "generations", None) or () for g in batch]
    llm_output = getattr(response, "llm_output", None) or {}
    first = generations[0] if generations else None
    message = getattr(first, "message", None)
    metadata = getattr(message, "response_metadata", None) or {}
    usage = getattr(message, "usage_metadata", None) or llm_output.get("token_usage") or {}
    reasons = []
    for generation in generations:
        info = getattr(generation, "generation_info", None) or {}
        meta = getattr(getattr(generation, "message", None), "response_metadata", None) or {}
        reason = info.get("finish_reason") or meta.get("finish_reason")
        if isinstance(reason, str):
            reasons.append(reason)
    tool_calls = [dict(call) for call in getattr(message, "tool_calls", None) or ()]
    return model_output(
        model=_first_str(metadata.get("model_name"), llm_output.get("model_name")),
        response_id=_first_str(metadata.get("id"), getattr(message, "id", None)),
        text=getattr(first, "text", None) if first is not None else None,
        finish_reasons=reasons,
        input_tokens=usage.get("input_tokens", usage.get("prompt_tokens")),
        output_tokens=usage.get("output_tokens", usage.get("completion_tokens")),
        tool_calls=tool_calls or None,
    )


def _document(document: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"content": getattr(document, "page_content", document)}
    doc_id = getattr(document, "id", None)
    if doc_id is not None:
        out["id"] = doc_id
    metadata = getattr(document, "metadata", None)
    if metadata:
        out["metadata"] = dict(metadata)
    return out


# -- the handler class, built on LangChain's base at first use -------------------------------

_lock = threading.Lock()
_handler_class_cache: list[type] = []


def _load_langchain() -> Any:
    """``langchain_core.callbacks``, after checking the installed version and hook points."""
    module, version, supported = load(
        "langchain", "langchain-core", "langchain_core.callbacks", _SUPPORTED
    )
    if not supported or getattr(module, "BaseCallbackHandler", None) is None:
        raise unsupported("langchain", "langchain-core", version, _SUPPORTED)
    return module


def _handler_class() -> type:
    with _lock:
        if not _handler_class_cache:
            base = _load_langchain().BaseCallbackHandler
            _handler_class_cache.append(type("SpanhooksCallbackHandler", (_Handler, base), {}))
        return _handler_class_cache[0]


def callback_handler(manager: CallbackManager | None = None) -> Any:
    """A LangChain callback handler emitting on ``manager`` (default: the process-wide one),
    for ``config={"callbacks": [...]}``. Needs no ``instrument()``."""
    return _handler_class()(manager)


# -- instrument / uninstrument ---------------------------------------------------------------


class _Switch:
    """What LangChain's configure hook reads with ``.get()``: the installed handler, or None.

    A process-wide switch rather than a ``ContextVar``, so that threads and tasks started
    before ``instrument()`` are traced too; the hook is registered once and stays, reading
    None after ``uninstrument()``.
    """

    def __init__(self) -> None:
        self.handler: Any = None

    def get(self) -> Any:
        return self.handler


_switch = _Switch()
_hooked = False


def instrument(manager: CallbackManager | None = None) -> None:
    """Trace every LangChain run from now on, emitting on ``manager`` (default: the
    process-wide one). Idempotent: a second call points the events at ``manager`` when one
    is given."""
    global _hooked
    if manager is not None and not isinstance(manager, CallbackManager):
        raise TypeError(f"manager must be a CallbackManager, got {manager!r}")
    handler_class = _handler_class()
    with _lock:
        if _switch.handler is not None:
            if manager is not None:
                _switch.handler.manager = manager
            return
        if not _hooked:
            from langchain_core.tracers.context import register_configure_hook

            register_configure_hook(_switch, True)  # type: ignore[arg-type]
            _hooked = True
        _switch.handler = handler_class(manager)


def uninstrument() -> None:
    """Undo :func:`instrument`: runs started from now on get no spanhooks handler."""
    with _lock:
        _switch.handler = None


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _switch.handler is not None
