"""LLMProc's callback system on spanhooks: code written against LLMProc's callback document runs
with only its imports changed (``from llmproc import LLMProgram`` and
``from llmproc.callbacks import CallbackEvent`` both become ``from spanhooks.compat.llmproc
import ...``), and every event it sees is also OpenTelemetry data.

The names: :class:`CallbackEvent` (LLMProc's enum, the values are the class-callback method
names), :class:`LLMProgram` (``from_toml``, ``start``), :class:`LLMProcess` (``add_callback``,
``fork_process``, ``trigger_event``, ``callbacks``) and :class:`LLMProcCallback` (a base with
one no-op method per event, for editors). Callbacks take LLMProc's three shapes: a function
``(event, *args, **kwargs)`` for every event, an object with a method per event named after
the event's value (``tool_start``, ``response``...; others are ignored), and any of them
``async``, sync and async methods mixed on one object. Each event passes its fixed arguments
positionally: ``TOOL_START (tool_name, tool_args)``, ``TOOL_END (tool_name, result)``,
``RESPONSE (text)``, ``API_REQUEST (payload_dict)``, ``API_RESPONSE (response_obj)``,
``TURN_START (process)``, ``TURN_END (process, response_obj, tool_results)``,
``STDERR_WRITE (text)``.

What differs from spanhooks' defaults, and why:

- Callbacks are per process, as in LLMProc: each :class:`LLMProcess` has a
  :class:`~spanhooks.CallbackManager` of its own (``process.callback_manager``), which starts
  with no callbacks. It is made from the process-wide manager
  (:func:`~spanhooks.get_callback_manager`) with :meth:`~spanhooks.CallbackManager.fork`, so
  it shares that manager's span pipeline: the tracer provider and attribute policy ``setup()``
  gives it (content capture, redaction), its open spans, history and ``/metrics`` figures.
  Callbacks registered on the process-wide manager are not called for a process's events.
- ``program.start()`` returns an awaitable that also has ``add_callback`` (chainable), because
  the document chains ``await program.start().add_callback(cb)``; awaiting it gives the
  process with those callbacks registered.
- ``fork_process()`` returns a child process (in this interpreter, as LLMProc's fork does: a
  copy of the parent's conversation ``state``) whose manager is a fork of the parent's: the
  callbacks registered on the parent so far are inherited and the child's events reach them;
  callbacks added later to either side are not shared. The child's spans go through the same
  pipeline and nest under whatever span is current where the child emits (in LLMProc, the
  parent's ``execute_tool fork`` span), so they are in the parent's trace. To run the child in
  an operating-system process, start it there with ``multiprocessing`` and wrap the target in
  :class:`spanhooks.ProcessTarget` (any start method) or fork: the child OS process keeps the
  callbacks and continues the trace.
- The process calls no model: the application (or an agent loop of its own) reports what
  happens with ``process.trigger_event(CallbackEvent.TOOL_START, name, args)``, LLMProc's own
  method, and spanhooks' ``instrument.llmproc`` traces the real LLMProc package instead.
- Async callbacks "run on the process event loop": a ``trigger_event`` made in a running loop
  schedules them as tasks on that loop (``await process.callback_manager.drain()`` waits for
  them); one made where no loop runs runs them to completion on the calling thread's own loop.

Spans (tracer scope ``spanhooks.llmproc``): a turn is ``invoke_agent {display_name}`` with
``gen_ai.agent.name``, ``gen_ai.request.model`` and ``gen_ai.provider.name`` from the process;
an API call a CLIENT ``chat {model}`` span inside it; a tool call ``execute_tool {tool_name}``
(ERROR when its result is an exception or ``is_error``); ``RESPONSE`` and ``STDERR_WRITE`` are
span events. Tool arguments and results, payloads, responses and stderr text are content:
recorded only with content capture on, and through the redaction patterns.

Threading: ``add_callback`` and ``fork_process`` may be called from any thread while others
trigger events (registration is the manager's, under its lock); ``trigger_event`` takes no
lock and runs the callbacks, in registration order, in the calling thread through spanhooks'
dispatch core, which isolates their exceptions. An :class:`LLMProcess` holds no thread of its
own.
"""

from __future__ import annotations

import copy
import importlib
import os
import threading
from collections.abc import Generator, Mapping
from types import ModuleType
from typing import Any

from spanhooks.callbacks.manager import CallbackManager, get_callback_manager
from spanhooks.vocab.llmproc import CallbackEvent, LLMProcCallback

__all__ = ["CallbackEvent", "LLMProcCallback", "LLMProcess", "LLMProgram"]


def _toml() -> ModuleType:
    """The TOML reader: ``tomllib`` (Python 3.11+), else the ``tomli`` package."""
    for name in ("tomllib", "tomli"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError("LLMProgram.from_toml needs Python 3.11+ or `pip install tomli`")


def _process_manager() -> CallbackManager:
    """A manager with no callbacks on the process-wide manager's span pipeline."""
    manager = get_callback_manager().fork()
    manager.clear()
    return manager


class LLMProgram:
    """What a process runs: model, provider, system prompt and parameters (LLMProc's program).

    ``LLMProgram(model_name="claude-3-5-haiku-20241022", provider="anthropic")`` or
    :meth:`from_toml`; :meth:`start` makes an :class:`LLMProcess` of it.
    """

    def __init__(
        self,
        model_name: str,
        provider: str,
        system_prompt: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        display_name: str | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(model_name, str) or not model_name:
            raise ValueError(f"model_name must be a non-empty str, got {model_name!r}")
        if not isinstance(provider, str) or not provider:
            raise ValueError(f"provider must be a non-empty str, got {provider!r}")
        self.model_name = model_name
        self.provider = provider
        self.system_prompt = system_prompt
        self.parameters: dict[str, Any] = dict(parameters or {})
        self.display_name = display_name or model_name
        self.options: dict[str, Any] = dict(options)
        """The other settings given (tools, MCP...), kept as they are."""

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], **overrides: Any) -> LLMProgram:
        """A program from an LLMProc TOML file: ``[model]`` ``name``, ``provider`` and
        ``display_name``; ``[prompt]`` ``system_prompt``; ``[parameters]``; other tables are
        kept in :attr:`options`. ``overrides`` replace what the file says.

        Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that is
        not TOML or names no model.
        """
        toml = _toml()
        with open(path, "rb") as handle:
            try:
                config: dict[str, Any] = toml.load(handle)
            except toml.TOMLDecodeError as exc:
                raise ValueError(f"{os.fspath(path)}: not a TOML file: {exc}") from None
        model = config.pop("model", {})
        prompt = config.pop("prompt", {})
        if not isinstance(model, dict) or not isinstance(prompt, dict):
            raise ValueError(f"{os.fspath(path)}: [model] and [prompt] must be tables")
        settings: dict[str, Any] = {
            "model_name": model.get("name"),
            "provider": model.get("provider"),
            "display_name": model.get("display_name"),
            "system_prompt": prompt.get("system_prompt"),
            "parameters": config.pop("parameters", None),
            **config,
        }
        settings.update(overrides)
        if not settings.get("model_name") or not settings.get("provider"):
            raise ValueError(f"{os.fspath(path)}: [model] needs name and provider")
        return cls(**settings)

    def start(self) -> ProcessStart:
        """Start a process: ``process = await program.start()``; also chainable,
        ``await program.start().add_callback(cb)``."""
        return ProcessStart(self)

    def start_sync(self) -> LLMProcess:
        """The process :meth:`start` gives, for code outside an event loop."""
        return LLMProcess(self)

    def __repr__(self) -> str:
        return f"LLMProgram(model_name={self.model_name!r}, provider={self.provider!r})"


class ProcessStart:
    """What :meth:`LLMProgram.start` returns: awaitable (giving the :class:`LLMProcess`), with
    ``add_callback`` to register callbacks on that process before it is awaited. Awaiting it
    again gives the same process."""

    def __init__(self, program: LLMProgram) -> None:
        self.program = program
        self._callbacks: list[Any] = []
        self._process: LLMProcess | None = None

    def add_callback(self, callback: Any) -> ProcessStart:
        """Register ``callback`` on the process this start gives; returns this start."""
        if self._process is not None:
            self._process.add_callback(callback)
        else:
            self._callbacks.append(callback)
        return self

    def __await__(self) -> Generator[Any, None, LLMProcess]:
        return self._start().__await__()

    async def _start(self) -> LLMProcess:
        if self._process is None:
            process = LLMProcess(self.program)
            for callback in self._callbacks:
                process.add_callback(callback)
            self._process = process
        return self._process


class LLMProcess:
    """A running program and its callbacks (LLMProc's process); see the module docstring.

    ``callback_manager`` is the process's own :class:`~spanhooks.CallbackManager` (for its
    stats, ``drain()``...); by default one with no callbacks on the process-wide pipeline.
    """

    def __init__(
        self, program: LLMProgram, *, callback_manager: CallbackManager | None = None
    ) -> None:
        if not isinstance(program, LLMProgram):
            raise TypeError(f"LLMProcess needs an LLMProgram, got {program!r}")
        self.program = program
        self.model_name = program.model_name
        self.provider = program.provider
        self.display_name = program.display_name
        self.system_prompt = program.system_prompt
        self.state: list[Any] = []
        """The conversation so far (the application's to fill); copied by :meth:`fork_process`."""
        self.callback_manager = (
            callback_manager if callback_manager is not None else _process_manager()
        )
        self._callbacks: tuple[Any, ...] = ()
        self._lock = threading.Lock()

    @property
    def callbacks(self) -> list[Any]:
        """The callbacks added to this process (inherited ones first), in order."""
        return list(self._callbacks)

    def add_callback(self, callback: Any) -> LLMProcess:
        """Register a function ``(event, *args, **kwargs)`` or an object with a method per
        event; returns this process, for chaining. Raises ``TypeError`` for an object that is
        neither, here rather than when events fire."""
        with self._lock:
            self.callback_manager.register(callback)
            self._callbacks = (*self._callbacks, callback)
        return self

    def trigger_event(self, event: CallbackEvent | str, *args: Any, **kwargs: Any) -> None:
        """Report ``event`` with its fixed arguments: the callbacks run (their exceptions are
        isolated and counted) and the event becomes span data. Never raises for a callback."""
        self.callback_manager.emit(event, *args, **kwargs)

    async def fork_process(self) -> LLMProcess:
        """A child process: a copy of this one's conversation state that inherits the
        callbacks registered so far (see the module docstring)."""
        with self._lock:
            child = LLMProcess(self.program, callback_manager=self.callback_manager.fork())
            child._callbacks = self._callbacks
        child.display_name = self.display_name
        child.state = copy.deepcopy(self.state)
        return child

    def __repr__(self) -> str:
        return f"<LLMProcess {self.display_name!r} ({len(self._callbacks)} callbacks)>"
