"""DSPy (3.x) traced with one line: ``instrument()``, or a callback to pass DSPy yourself.

``instrument()`` adds one callback to DSPy's global callbacks (``dspy.settings.callbacks``), a
``dspy.utils.callback.BaseCallback`` that turns DSPy's callbacks into spanhooks' ``genai``
events (:mod:`spanhooks.vocab.genai`) and emits them:

- a ``dspy.ReAct`` call (or a subclass's, ``CodeAct``) is an ``invoke_agent {class}`` span with
  ``gen_ai.agent.id`` (DSPy's call id); every other module call (``Predict``,
  ``ChainOfThought``, your own ``dspy.Module`` subclasses, nested or not) is a ``{class}`` task
  span;
- LM calls (``dspy.LM``, ``DummyLM``, any ``BaseLM``) are CLIENT ``chat {model}`` spans
  (``text_completion {model}`` for text models) with the GenAI conventions' attributes: the
  provider from the model's prefix (``openai/gpt-4o-mini`` is provider ``openai``, model
  ``gpt-4o-mini``), temperature and max tokens from the LM's and the call's settings, and the
  response id, response model, finish reasons and token usage from the entry the call left in
  the LM's history (none with ``disable_history``);
- tool calls (``dspy.Tool``: ReAct's tools and its ``finish``) are ``execute_tool {name}``
  spans with ``gen_ai.tool.description`` and type ``function``;
- ``dspy.Retrieve`` calls are ``retrieval {rm}`` spans, the passages their documents;
- ``dspy.Evaluate`` runs are ``evaluate`` task spans, optimizers' ``compile`` calls
  ``compile {optimizer}`` task spans.

Adapter ``format`` and ``parse`` calls are not spans: they run inside their ``Predict`` span,
just before and after its LM call, and would triple every predictor's spans; a parse failure
reaches the ``Predict`` span as its error.

A callback registered once on spanhooks (a :class:`~spanhooks.vocab.genai.GenAICallback`, a
function for ``"llm_end"``...) sees those events as it sees them from any other framework:
module inputs by name and outputs as a dict of the prediction's fields, ``llm_start``'s inputs
as ``{"messages": [...], "model": ..., "temperature": ...}``, ``llm_end``'s output as one dict
shape (``id``, ``model``, ``message``, ``choices`` with finish reasons, ``usage``). Inputs,
messages, tool arguments, results and passages are content: callbacks always get them, spans
only when content capture is on. Each span carries DSPy's ``dspy.call_id`` and
``dspy.parent_call_id``, to join it with DSPy's own callbacks and logs.

Parents follow DSPy's own nesting. DSPy names no parent in its callbacks, but makes each call's
id current (its ``ACTIVE_CALL_ID`` context variable) while the call runs, and calls the start
callbacks just before, so the id current at a start is the parent's: each call opens under that
parent's span wherever it runs (``Evaluate`` and ``dspy.Parallel`` run the program in worker
threads, which DSPy hands the id of the call that started them). Failures end the call's span
as an error with the exception recorded; ReAct catches a failing tool's exception, so the tool
span is an error and the agent span is not.

``uninstrument()`` takes the callback out of the list again; calls already open still end
their spans. Both are idempotent and thread-safe, and work from any thread: DSPy lets only the
thread that first configured it call ``dspy.configure``, so the list is set through
``dspy.configure`` from that thread and directly otherwise, and ``instrument()`` never makes
its own thread the one that may configure DSPy. ``dspy.configure(callbacks=[...])`` replaces
the list (call ``instrument()`` again after it), and ``dspy.context(callbacks=[...])``, like a
``dspy.context`` entered before ``instrument()``, keeps its own list: to trace such a block,
put :func:`callback` in it::

    with dspy.context(callbacks=[spanhooks.integrations.dspy.callback()]):
        program(question="...")

Importing this module does not import DSPy; ``instrument()`` and :func:`callback` do, and raise
``ImportError`` (not installed) or ``RuntimeError`` (unsupported version, or a DSPy without
these callbacks) with the install hint.

Threading: DSPy calls callbacks in the thread or task that runs each call; the tables here are
guarded by locks and bounded.

Not mapped yet: code interpreter callbacks (``on_interpreter_*``, ``ProgramOfThought``,
``RLM``), streaming (``dspy.streamify`` chunks), embeddings (``dspy.Embedder`` has no
callbacks), a tool call's model-given id (``dspy.Tool`` is called with its arguments only),
the provider of a model named without a prefix, DSPy's cost per call, and evaluation scores as
attributes (callbacks get them in ``evaluate``'s output).
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from spanhooks.callbacks.manager import CallbackManager, get_callback_manager
from spanhooks.integrations._framework import install_hint, load, supported_range, unsupported
from spanhooks.integrations._runs import MAX_OPEN_RUNS, Runs, isolated, model_output
from spanhooks.util.log import rate_limited
from spanhooks.vocab._genai import field
from spanhooks.vocab.genai import GenAIEvent

__all__ = [
    "INSTALL_HINT",
    "SUPPORTED_VERSIONS",
    "callback",
    "instrument",
    "is_instrumented",
    "uninstrument",
]

_SUPPORTED = ((3, 0), (4, 0))
INSTALL_HINT = install_hint("dspy")
SUPPORTED_VERSIONS = supported_range(_SUPPORTED)
"""The DSPy releases whose callback interface and settings this module was written against."""

CALL_ID = "dspy.call_id"
PARENT_CALL_ID = "dspy.parent_call_id"
_OPERATIONS = {"chat": "chat", "text": "text_completion", "responses": "chat"}
_HISTORY_LOOKBACK = 32  # entries searched for a call's own: concurrent calls append too


_isolated = isolated("DSPy")


@dataclass(frozen=True)
class _Dspy:
    """What the callback reads from DSPy, looked up once when it is first loaded."""

    module: Any
    settings: Any  # dspy.dsp.utils.settings: the global config and its owner thread
    base_callback: type
    active_call_id: Any  # the ContextVar holding the running call's id
    react: type
    retrieve: type | None


@dataclass(frozen=True)
class _Open:
    """An open DSPy call: its end event, the label it repeats and how its outputs are read."""

    event: GenAIEvent
    label: str
    result: Callable[[Any], Any]


class _Callback:
    """The methods of spanhooks' DSPy callback; mixed into DSPy's ``BaseCallback`` by
    :func:`_callback_class`, so this module imports without DSPy."""

    _dspy: _Dspy  # set on the class built on DSPy's base

    def __init__(self, manager: CallbackManager | None = None) -> None:
        if manager is not None and not isinstance(manager, CallbackManager):
            raise TypeError(f"manager must be a CallbackManager, got {manager!r}")
        self.runs = Runs(manager if manager is not None else get_callback_manager())
        self.enabled = True
        self._open: OrderedDict[str, _Open] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def manager(self) -> CallbackManager:
        """The manager DSPy's calls are emitted on."""
        return self.runs.manager

    @manager.setter
    def manager(self, manager: CallbackManager) -> None:
        if not isinstance(manager, CallbackManager):
            raise TypeError(f"manager must be a CallbackManager, got {manager!r}")
        self.runs.manager = manager

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return self  # a copy of DSPy's settings or a module's callbacks: this same callback

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _unpickled, ()  # dspy.settings.save(): the manager and open calls stay here

    # -- modules ----------------------------------------------------------------------------

    @_isolated
    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        arguments = _arguments(inputs)
        name = type(instance).__name__
        if isinstance(instance, self._dspy.react):
            self._start(
                call_id,
                GenAIEvent.AGENT_START,
                name,
                arguments,
                result=_fields,
                attributes={gen_ai.GEN_AI_AGENT_ID: call_id},
            )
        elif self._dspy.retrieve is not None and isinstance(instance, self._dspy.retrieve):
            query = arguments.get("query", arguments.get("args", [None])[0])
            source = _rm_name(self._dspy.module.settings.get("rm"))
            self._start(call_id, GenAIEvent.RETRIEVAL_START, source, query, result=_passages)
        else:
            self._start(call_id, GenAIEvent.TASK_START, name, arguments, result=_fields)

    @_isolated
    def on_module_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._end(call_id, outputs, exception)

    # -- language models --------------------------------------------------------------------

    @_isolated
    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        full = getattr(instance, "model", None)
        provider, model = _split_model(full if isinstance(full, str) else type(instance).__name__)
        call_kwargs = inputs.get("kwargs")
        settings = {
            **(_mapping(getattr(instance, "kwargs", None))),
            **(_mapping(call_kwargs)),
        }
        request: dict[str, Any] = {"messages": _messages(inputs), "model": model}
        for key, names in (
            ("temperature", ("temperature",)),
            ("max_tokens", ("max_tokens", "max_completion_tokens")),
            ("top_p", ("top_p",)),
            ("top_k", ("top_k",)),
        ):
            value = next((settings[n] for n in names if settings.get(n) is not None), None)
            if value is not None:
                request[key] = value
        operation = _OPERATIONS.get(str(getattr(instance, "model_type", "chat")), "chat")
        self._start(
            call_id,
            GenAIEvent.LLM_START,
            model,
            request,
            provider,
            operation,
            result=functools.partial(_model_result, instance),
        )

    @_isolated
    def on_lm_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
        self._end(call_id, outputs, exception)

    # -- tools ------------------------------------------------------------------------------

    @_isolated
    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        name = getattr(instance, "name", None)
        arguments = _mapping(inputs.get("kwargs")) if "kwargs" in inputs else dict(inputs)
        described = getattr(instance, "desc", None)
        self._start(
            call_id,
            GenAIEvent.TOOL_CALL_START,
            name if isinstance(name, str) and name else "tool",
            arguments,
            result=_same,
            attributes={
                gen_ai.GEN_AI_TOOL_TYPE: "function",
                gen_ai.GEN_AI_TOOL_DESCRIPTION: described if isinstance(described, str) else None,
            },
        )

    @_isolated
    def on_tool_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._end(call_id, outputs, exception)

    # -- evaluation and optimization --------------------------------------------------------

    @_isolated
    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        arguments = {key: value for key, value in inputs.items() if value is not None}
        for key in ("metric", "devset"):  # Evaluate's own when the call passes none
            if key not in arguments and getattr(instance, key, None) is not None:
                arguments[key] = getattr(instance, key)
        self._start(call_id, GenAIEvent.TASK_START, "evaluate", arguments, result=_fields)

    @_isolated
    def on_evaluate_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._end(call_id, outputs, exception)

    @_isolated
    def on_compile_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        arguments = {key: value for key, value in inputs.items() if value is not None}
        name = f"compile {type(instance).__name__}"
        self._start(call_id, GenAIEvent.TASK_START, name, arguments, result=_same)

    @_isolated
    def on_compile_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._end(call_id, outputs, exception)

    # -- pairing by DSPy's call ids ---------------------------------------------------------

    def _start(
        self,
        call_id: str,
        event: GenAIEvent,
        label: str,
        *args: Any,
        result: Callable[[Any], Any],
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """Open ``call_id``'s span under the DSPy call running now (its parent), its end to
        read the outputs with ``result``; ``attributes`` are set on it with DSPy's ids."""
        if not self.enabled:
            return
        parent = self._dspy.active_call_id.get()  # DSPy sets the call's own id after this
        with self._lock:
            self._open[call_id] = _Open(_END[event], label, result)
            while len(self._open) > MAX_OPEN_RUNS:
                self._open.popitem(last=False)
        self.runs.start(call_id, parent, event, label, *args)
        ids = {CALL_ID: call_id, PARENT_CALL_ID: parent}
        self.runs.annotate(call_id, {**ids, **attributes} if attributes else ids)

    def _end(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        # Even when disabled: a call opened before uninstrument() still closes its span.
        with self._lock:
            found = self._open.pop(call_id, None)
        if found is None:
            return
        error = exception if isinstance(exception, BaseException) else None
        output = None
        if error is None:
            try:
                output = found.result(outputs)
            except Exception as exc:  # outputs of a shape not known here: close the span anyway
                rate_limited.log(
                    logging.DEBUG, "dspy:outputs", "spanhooks: DSPy outputs unread: %r", exc
                )
                output = outputs
        self.runs.end(call_id, found.event, found.label, output, error)


_END = {
    GenAIEvent.AGENT_START: GenAIEvent.AGENT_END,
    GenAIEvent.TASK_START: GenAIEvent.TASK_END,
    GenAIEvent.LLM_START: GenAIEvent.LLM_END,
    GenAIEvent.TOOL_CALL_START: GenAIEvent.TOOL_CALL_END,
    GenAIEvent.RETRIEVAL_START: GenAIEvent.RETRIEVAL_END,
}


# -- reading DSPy's payloads ------------------------------------------------------------------


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _same(value: Any) -> Any:
    return value


def _arguments(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """A module's ``__call__(*args, **kwargs)`` arguments by name, positional ones as
    ``args``."""
    arguments = _mapping(inputs.get("kwargs"))
    args = inputs.get("args")
    if isinstance(args, list | tuple) and args:
        arguments["args"] = list(args)
    return arguments


def _fields(outputs: Any) -> Any:
    """A ``dspy.Prediction`` (or ``EvaluationResult``) as a dict of its fields; anything else
    as it is."""
    to_dict = getattr(outputs, "toDict", None)
    if callable(to_dict):
        fields = to_dict()
        if isinstance(fields, dict):
            return fields
    return outputs


def _passages(outputs: Any) -> Any:
    passages = getattr(outputs, "passages", None)
    return list(passages) if isinstance(passages, list | tuple) else _fields(outputs)


def _rm_name(rm: Any) -> str:
    """The retrieval model's name: a function's own, an object's class."""
    if rm is None:
        return "Retrieve"
    name = getattr(rm, "__name__", None)
    return name if isinstance(name, str) and name else type(rm).__name__


def _split_model(model: str) -> tuple[str | None, str]:
    """``openai/gpt-4o-mini`` as (``openai``, ``gpt-4o-mini``); a model with no prefix has no
    provider here."""
    provider, separator, name = model.partition("/")
    if separator and provider and name:
        return provider, name
    return None, model


def _messages(inputs: Mapping[str, Any]) -> list[Any]:
    """The messages of an LM call: its ``messages``, its ``prompt`` as one user message, or
    an explicit ``dspy.lm15.Request``'s system prompt and messages."""
    messages = inputs.get("messages")
    if isinstance(messages, list | tuple):
        return [dict(m) if isinstance(m, Mapping) else m for m in messages]
    prompt = inputs.get("prompt")
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    request = prompt if prompt is not None else _mapping(inputs.get("kwargs")).get("request")
    found: list[Any] = []
    system = getattr(request, "system", None)
    if isinstance(system, str):
        found.append({"role": "system", "content": system})
    for message in getattr(request, "messages", None) or ():
        found.append({"role": getattr(message, "role", None), "content": _text(message)})
    return found


def _text(message: Any) -> Any:
    text = getattr(message, "text", None)
    return text if isinstance(text, str) else message


def _history_entry(lm: Any, outputs: Any) -> Mapping[str, Any] | None:
    """The entry this call left in the LM's history: the one holding these very outputs (other
    threads' calls may have added theirs since). None when DSPy keeps no history."""
    history = getattr(lm, "history", None)
    if not isinstance(history, list) or outputs is None:
        return None
    for entry in reversed(history[-_HISTORY_LOOKBACK:]):
        if isinstance(entry, Mapping) and entry.get("outputs") is outputs:
            return entry
    return None


def _finish_reasons(responses: list[Any]) -> list[str]:
    reasons: list[str] = []
    for response in responses:
        reason = field(response, "finish_reason")
        if isinstance(reason, str):
            reasons.append(reason)
            continue
        choices = field(response, "choices")
        for choice in choices if isinstance(choices, list | tuple) else ():
            reason = field(choice, "finish_reason")
            if isinstance(reason, str):
                reasons.append(reason)
    return reasons


def _tool_call(call: Any) -> dict[str, Any]:
    """A model's tool call (OpenAI-shaped dict or object, or lm15's) as one dict."""
    function = field(call, "function")
    out = {
        "id": field(call, "id"),
        "type": "function",
        "name": field(function, "name") if function is not None else field(call, "name"),
        "arguments": (
            field(function, "arguments")
            if function is not None
            else field(call, "arguments", "input", "args")
        ),
    }
    return {key: value for key, value in out.items() if value is not None}


def _model_result(lm: Any, outputs: Any) -> dict[str, Any]:
    """An LM call's outputs (and its history entry) in
    :func:`~spanhooks.integrations._runs.model_output`'s shape."""
    entry = _history_entry(lm, outputs)
    if isinstance(outputs, list):
        raw = entry.get("response") if entry is not None else None
        responses = list(raw) if isinstance(raw, list | tuple) else [raw] if raw else []
        first = outputs[0] if outputs else None
        text = first if isinstance(first, str) else field(first, "text")
        calls = field(first, "tool_calls") if isinstance(first, Mapping) else None
    else:  # an explicit lm15 Request returns one Response
        responses = [outputs] if outputs is not None else []
        text = field(outputs, "text")
        calls = field(outputs, "tool_calls")
    usage = _mapping(entry.get("usage")) if entry is not None else {}
    if not usage and responses:
        usage = _mapping(_usage(field(responses[0], "usage")))
    model = entry.get("response_model") if entry is not None else None
    if not isinstance(model, str) and responses:
        model = field(responses[0], "model")
    response_id = field(responses[0], "id") if responses else None
    tool_calls = [_tool_call(call) for call in calls] if isinstance(calls, list | tuple) else []
    return model_output(
        model=model if isinstance(model, str) else None,
        response_id=response_id if isinstance(response_id, str) else None,
        text=text if isinstance(text, str) else None,
        finish_reasons=_finish_reasons(responses),
        input_tokens=usage.get("prompt_tokens", usage.get("input_tokens")),
        output_tokens=usage.get("completion_tokens", usage.get("output_tokens")),
        tool_calls=tool_calls or None,
    )


def _usage(usage: Any) -> dict[str, Any]:
    if isinstance(usage, Mapping):
        return dict(usage)
    return {
        key: getattr(usage, key)
        for key in ("input_tokens", "output_tokens")
        if getattr(usage, key, None) is not None
    }


# -- the callback class, built on DSPy's base at first use ------------------------------------

_lock = threading.Lock()
_class_cache: list[type] = []


def _load_dspy() -> _Dspy:
    """DSPy's callback base, call-id variable and settings, after checking the installed
    version and hook points."""
    module, version, supported = load("dspy", "dspy", "dspy", _SUPPORTED)
    try:
        # the module, not the ``settings`` object ``dspy.dsp.utils`` exports under its name
        settings_module = importlib.import_module("dspy.dsp.utils.settings")
        callback_module = importlib.import_module("dspy.utils.callback")
        callback_context = importlib.import_module("dspy.utils.callback_context")
    except ImportError:
        raise unsupported("dspy", "dspy", version, _SUPPORTED) from None
    base = getattr(callback_module, "BaseCallback", None)
    active = getattr(callback_context, "ACTIVE_CALL_ID", None)
    react = getattr(module, "ReAct", None)
    if (
        not supported
        or not isinstance(base, type)
        or not callable(getattr(active, "get", None))
        or not isinstance(react, type)
        or not isinstance(getattr(settings_module, "main_thread_config", None), dict)
        or not hasattr(settings_module, "config_owner_thread_id")
        or not callable(getattr(getattr(module, "settings", None), "configure", None))
    ):
        raise unsupported("dspy", "dspy", version, _SUPPORTED)
    retrieve = getattr(module, "Retrieve", None)
    return _Dspy(
        module=module,
        settings=settings_module,
        base_callback=base,
        active_call_id=active,
        react=react,
        retrieve=retrieve if isinstance(retrieve, type) else None,
    )


def _callback_class() -> type:
    with _lock:
        if not _class_cache:
            loaded = _load_dspy()
            built = type("SpanhooksCallback", (_Callback, loaded.base_callback), {"_dspy": loaded})
            built.__module__ = __name__
            _class_cache.append(built)
        return _class_cache[0]


def callback(manager: CallbackManager | None = None) -> Any:
    """A DSPy callback (a ``BaseCallback``) emitting on ``manager`` (default: the process-wide
    one), for ``dspy.configure(callbacks=[...])``, ``dspy.context(callbacks=[...])`` or a
    module's or LM's ``callbacks=``. Needs no ``instrument()``."""
    return _callback_class()(manager)


def _unpickled() -> Any:
    handler = callback()
    handler.enabled = False
    return handler


# -- instrument / uninstrument ---------------------------------------------------------------

_installed: Any = None


def _global_callbacks(loaded: _Dspy) -> list[Any]:
    callbacks = loaded.settings.main_thread_config.get("callbacks")
    return list(callbacks) if isinstance(callbacks, list | tuple) else []


def _set_global_callbacks(loaded: _Dspy, callbacks: list[Any]) -> None:
    """Set DSPy's global callbacks through ``dspy.configure`` when this thread may call it;
    else as it would (DSPy lets only the thread that configured it first configure it, and
    the first ``configure`` call picks that thread: never ours)."""
    if loaded.settings.config_owner_thread_id is not None:
        try:
            loaded.module.settings.configure(callbacks=callbacks)
            return
        except RuntimeError:
            pass  # another thread or task configured DSPy
    loaded.settings.main_thread_config["callbacks"] = callbacks


def instrument(manager: CallbackManager | None = None) -> None:
    """Trace every DSPy module, LM, tool, retrieval, evaluation and compile call from now on,
    emitting on ``manager`` (default: the process-wide one). Idempotent: a second call points
    the events at ``manager`` when one is given, and adds the callback again if DSPy's
    callbacks were replaced (``dspy.configure(callbacks=[...])``) in between."""
    global _installed
    handler_class = _callback_class()
    loaded: _Dspy = handler_class._dspy  # type: ignore[attr-defined]
    with _lock:
        handler = _installed if _installed is not None else handler_class(manager)
        if manager is not None:
            handler.manager = manager
        callbacks = _global_callbacks(loaded)
        if not any(registered is handler for registered in callbacks):
            _set_global_callbacks(loaded, [*callbacks, handler])
        handler.enabled = True
        _installed = handler


def uninstrument() -> None:
    """Undo :func:`instrument`: the callback leaves DSPy's callbacks and starts no more spans
    (also where a ``dspy.context`` still holds the old list)."""
    global _installed
    with _lock:
        handler, _installed = _installed, None
        if handler is None:
            return
        handler.enabled = False
        loaded: _Dspy = handler._dspy
        callbacks = _global_callbacks(loaded)
        if any(registered is handler for registered in callbacks):
            _set_global_callbacks(loaded, [c for c in callbacks if c is not handler])


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _installed is not None
