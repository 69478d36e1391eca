"""LLMProc (0.9.x) traced with one line: ``instrument()``, or a handler for ``add_callback``.

``instrument()`` makes every ``LLMProcess.run`` (async and sync, forked children included) a
``workflow {agent}`` span of the ``genai`` set, and turns LLMProc's own callback events into the
``llmproc`` vocabulary's (:class:`~spanhooks.vocab.llmproc.CallbackEvent`): each turn an
``invoke_agent {agent}`` span, each API call a CLIENT ``chat {model}`` span and each tool call an
``execute_tool {tool}`` span inside its turn, with the GenAI conventions' attributes (operation,
provider, request and response model, token usage, finish reasons, tool name and call id,
``server.address``). Callbacks registered on spanhooks for those events see them as if the
process had emitted them itself. A child that LLMProc's ``fork`` tool starts runs inside the
fork's ``execute_tool fork`` span, so it is in the parent's trace. When a run raises, the spans
it left open (turn, API call, tool) end with the exception recorded, ERROR, and their end
events carry the exception where the response would be.

Without ``instrument()``, ``process.add_callback(callback())`` gives the same events and spans
for one process (and the children it forks) but no run span and no failure handling: LLMProc
has no error event, so a turn whose API call raises stays open until spanhooks closes it as
abandoned.

How it hooks in: LLMProc's public hook is the per-process ``add_callback``; it has no
process-wide one, so ``instrument()`` wraps the public ``LLMProcess.run`` to attach the handler
through ``add_callback`` and to see the run's outcome. No private attribute is touched.
``uninstrument()`` puts the original ``run`` back and takes the handler off the processes it
was attached to. Both are idempotent and thread-safe.

Importing this module does not import LLMProc; ``instrument()`` does, and raises
``ImportError`` (not installed) or ``RuntimeError`` (unsupported version) with the install hint.

Threading: LLMProc fires its events synchronously in the task running the turn, so each
process's spans nest through that task's context; forked children run in tasks copied from the
fork tool's context. The bookkeeping here lives in context variables, never shared between
tasks.
"""

from __future__ import annotations

import contextvars
import functools
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai

from spanhooks.callbacks.manager import CallbackManager, get_callback_manager
from spanhooks.integrations._framework import install_hint, load, supported_range, unsupported
from spanhooks.integrations._runs import annotate
from spanhooks.tracing.spans import record_failure
from spanhooks.util.text import safe_str
from spanhooks.vocab._genai import field, request_attributes
from spanhooks.vocab.genai import GenAIEvent
from spanhooks.vocab.llmproc import CallbackEvent

__all__ = [
    "INSTALL_HINT",
    "SUPPORTED_VERSIONS",
    "SpanhooksCallback",
    "callback",
    "instrument",
    "is_instrumented",
    "uninstrument",
]

_SUPPORTED = ((0, 9), (0, 10))
INSTALL_HINT = install_hint("llmproc")
SUPPORTED_VERSIONS = supported_range(_SUPPORTED)
"""The LLMProc releases whose callback events and ``run`` this module was written against."""


@dataclass(frozen=True)
class _Open:
    """One call this module started and has not ended: which pair, its call id and span."""

    pair: str
    call_id: str
    span: trace.Span
    manager: CallbackManager
    key: object = None


_OPEN: contextvars.ContextVar[tuple[_Open, ...]] = contextvars.ContextVar(
    "spanhooks_llmproc_open", default=()
)
_PROCESS: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "spanhooks_llmproc_process", default=None
)
_TOOL_IDS: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "spanhooks_llmproc_tool_ids", default=()
)
"""(tool name, call id) of the tool calls the last API response asked for, in order."""


def _agent_name(process: object) -> str:
    name = field(process, "display_name", "model_name")
    return safe_str(name) if name is not None else "llmproc"


class SpanhooksCallback:
    """An LLMProc callback object that turns each LLMProc event into the spanhooks one.

    Pass it to ``process.add_callback(...)``; its methods take LLMProc's own parameter names.
    ``manager`` is the :class:`~spanhooks.CallbackManager` to emit on (the process-wide one by
    default). One instance may serve many processes and threads at once. ``enabled = False``
    makes it a no-op (``uninstrument()`` does that to the handler it installed).
    """

    def __init__(self, manager: CallbackManager | None = None) -> None:
        if manager is not None and not isinstance(manager, CallbackManager):
            raise TypeError(f"manager must be a CallbackManager, got {manager!r}")
        self.manager = manager if manager is not None else get_callback_manager()
        self.enabled = True

    # -- LLMProc's events, by LLMProc's parameter names ------------------------------------------

    def turn_start(self, process: Any, run_result: Any = None) -> None:
        if self.enabled:
            _PROCESS.set(process)
            self._start("turn", None, CallbackEvent.TURN_START, process)

    def turn_end(self, process: Any, response: Any = None, tool_results: Any = None) -> None:
        if self.enabled:
            results = tool_results if tool_results is not None else []
            self._end("turn", None, CallbackEvent.TURN_END, process, response, results)

    def api_request(self, api_request: Any) -> None:
        if not self.enabled:
            return
        opened = self._start("api", None, CallbackEvent.API_REQUEST, api_request)
        if opened is not None:
            self._annotate(opened.span, self._request_extras(api_request))

    def api_response(self, response: Any) -> None:
        if not self.enabled:
            return
        _TOOL_IDS.set(_tool_calls(response))
        self._end("api", None, CallbackEvent.API_RESPONSE, response)

    def tool_start(self, tool_name: Any, args: Any = None) -> None:
        if not self.enabled:
            return
        opened = self._start("tool", tool_name, CallbackEvent.TOOL_START, tool_name, args)
        call_id = _take_tool_id(tool_name)
        if opened is not None and call_id is not None:
            self._annotate(opened.span, {gen_ai.GEN_AI_TOOL_CALL_ID: call_id})

    def tool_end(self, tool_name: Any, result: Any = None) -> None:
        if self.enabled:
            self._end("tool", tool_name, CallbackEvent.TOOL_END, tool_name, result)

    def response(self, content: Any) -> None:
        if self.enabled:
            self.manager.emit(CallbackEvent.RESPONSE, content)

    def stderr_write(self, message: Any) -> None:
        if self.enabled:
            self.manager.emit(CallbackEvent.STDERR_WRITE, message)

    # -- bookkeeping ----------------------------------------------------------------------------

    def _start(self, pair: str, key: object, event: CallbackEvent, *args: Any) -> _Open | None:
        call_id = self.manager.emit(event, *args)
        if call_id is None:  # not traced: the callbacks ran, there is no span to follow
            return None
        # emit made the new span current (spanhooks' start semantics)
        opened = _Open(pair, call_id, trace.get_current_span(), self.manager, key)
        _OPEN.set((*_OPEN.get(), opened))
        return opened

    def _end(self, pair: str, key: object, event: CallbackEvent, *args: Any) -> None:
        entry = _innermost(pair, key)
        if entry is None:
            self.manager.emit(event, *args)
            return
        _OPEN.set(tuple(e for e in _OPEN.get() if e is not entry))
        self.manager.emit(event, *args, call_id=entry.call_id)

    def fail_open(self, depth: int, error: BaseException) -> None:
        """End every call opened in this context past the first ``depth``, innermost first,
        as failed with ``error`` (a run raised while they were open)."""
        for entry in reversed(_OPEN.get()[depth:]):
            _OPEN.set(tuple(e for e in _OPEN.get() if e is not entry))
            manager = entry.manager  # the handler that opened it, maybe one a user added
            if entry.pair == "tool":  # the vocabulary reads an exception result as a failure
                manager.emit(CallbackEvent.TOOL_END, entry.key, error, call_id=entry.call_id)
                continue
            if entry.span.is_recording():
                record_failure(entry.span, error, manager.attribute_policy)
            if entry.pair == "api":
                manager.emit(CallbackEvent.API_RESPONSE, error, call_id=entry.call_id)
            else:
                manager.emit(
                    CallbackEvent.TURN_END, _PROCESS.get(), error, [], call_id=entry.call_id
                )

    def _request_extras(self, api_request: Any) -> dict[str, Any]:
        """What the vocabulary cannot read from the payload alone: the provider and server of
        the process making the call, and OpenAI-style ``params``. (The vocabulary records the
        request's messages, system prompt and tools as content.)"""
        extras: dict[str, Any] = {}
        process = _PROCESS.get()
        provider = field(process, "provider")
        if isinstance(provider, str):
            extras[gen_ai.GEN_AI_PROVIDER_NAME] = provider
        base_url = field(field(process, "client"), "base_url")
        host = field(base_url, "host")
        if isinstance(host, str) and host:
            extras["server.address"] = host
            port = field(base_url, "port")
            if isinstance(port, int):
                extras["server.port"] = port
        params = field(api_request, "params")
        if isinstance(params, Mapping):
            for name, value in request_attributes(params).items():
                extras.setdefault(name, value)
        return extras

    def _annotate(self, span: trace.Span, attrs: Mapping[str, Any]) -> None:
        annotate(self.manager, span, attrs)


def _innermost(pair: str, key: object) -> _Open | None:
    for entry in reversed(_OPEN.get()):
        if entry.pair == pair and (key is None or entry.key == key):
            return entry
    return None


def _tool_calls(response: Any) -> tuple[tuple[str, str], ...]:
    """(name, id) of each tool call in an Anthropic- or OpenAI-shaped response."""
    found: list[tuple[str, str]] = []
    blocks = field(response, "content")
    if isinstance(blocks, list | tuple):
        for block in blocks:
            if field(block, "type") == "tool_use":
                name, call_id = field(block, "name"), field(block, "id")
                if isinstance(name, str) and isinstance(call_id, str):
                    found.append((name, call_id))
    choices = field(response, "choices")
    if isinstance(choices, list | tuple):
        for choice in choices:
            for call in field(field(choice, "message"), "tool_calls") or ():
                name = field(field(call, "function"), "name")
                call_id = field(call, "id")
                if isinstance(name, str) and isinstance(call_id, str):
                    found.append((name, call_id))
    return tuple(found)


def _take_tool_id(tool_name: object) -> str | None:
    pending = _TOOL_IDS.get()
    for index, (name, call_id) in enumerate(pending):
        if name == tool_name:
            _TOOL_IDS.set(pending[:index] + pending[index + 1 :])
            return call_id
    return None


def callback(manager: CallbackManager | None = None) -> SpanhooksCallback:
    """A handler for ``process.add_callback(...)`` that emits on ``manager`` (default: the
    process-wide one). Needs no ``instrument()`` and does not import LLMProc."""
    return SpanhooksCallback(manager)


# -- instrument / uninstrument ---------------------------------------------------------------


class _Installed:
    """What ``instrument()`` changed, so that ``uninstrument()`` can put it back."""

    def __init__(self, process_class: type, original_run: Any, handler: SpanhooksCallback):
        self.process_class = process_class
        self.original_run = original_run
        self.handler = handler
        self.wrapper: Any = None
        self.attached: weakref.WeakSet[Any] = weakref.WeakSet()
        self.attached_lock = threading.Lock()


_lock = threading.Lock()
_installed: _Installed | None = None


def _load_llmproc() -> type:
    """LLMProc's ``LLMProcess`` class, after checking the installed version."""
    module, version, supported = load("llmproc", "llmproc", "llmproc.llm_process", _SUPPORTED)
    process_class = getattr(module, "LLMProcess", None)
    if (
        not supported
        or not isinstance(process_class, type)
        or not callable(getattr(process_class, "add_callback", None))
        or not callable(getattr(process_class, "run", None))
    ):
        raise unsupported("llmproc", "llmproc", version, _SUPPORTED)
    return process_class


def instrument(manager: CallbackManager | None = None) -> None:
    """Trace every LLMProc process from now on, emitting on ``manager`` (default: the
    process-wide one). Idempotent: a second call only points the events at ``manager``
    when one is given."""
    global _installed
    with _lock:
        if _installed is not None:
            if manager is not None:
                _installed.handler.manager = manager
            return
        process_class = _load_llmproc()
        original = process_class.__dict__["run"]
        installed = _Installed(process_class, original, SpanhooksCallback(manager))
        installed.wrapper = _wrap_run(original, installed)
        process_class.run = installed.wrapper  # type: ignore[attr-defined]
        _installed = installed


def uninstrument() -> None:
    """Undo :func:`instrument`: the original ``LLMProcess.run`` is back, the handler is off
    every process it was attached to and emits nothing more. Idempotent."""
    global _installed
    with _lock:
        installed, _installed = _installed, None
        if installed is None:
            return
        installed.handler.enabled = False
        if installed.process_class.__dict__.get("run") is installed.wrapper:
            installed.process_class.run = installed.original_run  # type: ignore[attr-defined]
        # else someone wrapped run over ours: leave theirs; ours now passes straight through
        with installed.attached_lock:
            processes = list(installed.attached)
            installed.attached.clear()
        for process in processes:
            callbacks = getattr(process, "callbacks", None)
            if isinstance(callbacks, list):
                callbacks[:] = [cb for cb in callbacks if cb is not installed.handler]


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _installed is not None


def _wrap_run(original: Callable[..., Any], installed: _Installed) -> Callable[..., Any]:
    handler = installed.handler

    @functools.wraps(original)
    async def run(self: Any, user_input: str, max_iterations: int | None = None) -> Any:
        if not handler.enabled:
            return await original(self, user_input, max_iterations)
        _attach(self, installed)
        manager = handler.manager
        name = _agent_name(self)
        caller = otel_context.get_current()
        depth = len(_OPEN.get())
        inputs = {"user_input": user_input, "max_iterations": max_iterations}
        call_id = manager.emit(GenAIEvent.WORKFLOW_START, name, inputs)
        try:
            result = await original(self, user_input, max_iterations)
        except BaseException as exc:
            handler.fail_open(depth, exc)
            manager.emit(GenAIEvent.WORKFLOW_END, name, None, exc, call_id=call_id)
            _restore(caller)
            raise
        manager.emit(GenAIEvent.WORKFLOW_END, name, result, None, call_id=call_id)
        _restore(caller)
        return result

    return run


def _attach(process: Any, installed: _Installed) -> None:
    """Put the handler on ``process`` through LLMProc's own ``add_callback`` (a forked child
    already has it: LLMProc copies its parent's callbacks)."""
    callbacks = getattr(process, "callbacks", None)
    if not isinstance(callbacks, list):
        return
    if not any(isinstance(cb, SpanhooksCallback) for cb in callbacks):
        process.add_callback(installed.handler)
    with installed.attached_lock:
        installed.attached.add(process)


def _restore(caller: otel_context.Context) -> None:
    if otel_context.get_current() is not caller:
        otel_context.attach(caller)
