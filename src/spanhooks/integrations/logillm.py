"""LogiLLM (0.2.x) traced with one line: ``instrument()``, or a handler to register yourself.

``instrument()`` registers one global callback on LogiLLM's process-wide ``callback_manager``
(its public ``register_global``), which turns every LogiLLM event into the matching typed event
of spanhooks' ``logillm`` vocabulary (:mod:`spanhooks.vocab.logillm`) and emits it: modules,
optimizations and evaluations become spans (``module Predict``, ``optimize LabeledFewShot``,
``evaluate Predict``), provider calls CLIENT ``chat {model}`` spans with the GenAI conventions'
attributes (operation, provider, request and response model, token usage, finish reasons,
errors), hyperparameter updates span events. Callbacks registered on spanhooks for those
events (``LogiLLMCallback`` subclasses, ``callback_types=[...]`` filters) see them as if LogiLLM
had emitted them on spanhooks.

Parents follow LogiLLM's own ``call_id``/``parent_call_id``: a call whose parent LogiLLM names
opens under that parent's span, wherever it runs; a call LogiLLM gives no parent (optimizers
run their evaluations outside their own context) opens under the current span, which is the
call it is running in. Each span carries LogiLLM's ids as ``logillm.call_id`` and
``logillm.parent_call_id``, to join it with LogiLLM's own logs; spanhooks callbacks see
spanhooks' ids in ``event.context``. A module that fails (LogiLLM's ``ErrorEvent``) ends its span
as ``module_end`` with ``success=False`` and the exception; a provider failure is
``provider_error``.

``uninstrument()`` unregisters the callback. Both are idempotent and thread-safe. To register
it yourself instead::

    callback_manager.register_global(spanhooks.integrations.logillm.callback())

Importing this module does not import LogiLLM; ``instrument()`` does, and raises
``ImportError`` (not installed) or ``RuntimeError`` (unsupported version) with the install hint.

Threading: LogiLLM calls callbacks in the task or thread that emits; the open-call table here
is guarded by a lock and bounded.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context

from spanhooks.callbacks.manager import CallbackManager, get_callback_manager
from spanhooks.integrations._framework import install_hint, load, supported_range, unsupported
from spanhooks.integrations._runs import Runs, is_current
from spanhooks.vocab import logillm as vocab
from spanhooks.vocab._genai import field

__all__ = [
    "INSTALL_HINT",
    "SUPPORTED_VERSIONS",
    "AwaitingSpanhooksCallback",
    "SpanhooksCallback",
    "callback",
    "instrument",
    "is_instrumented",
    "uninstrument",
]

_SUPPORTED = ((0, 2), (0, 3))
INSTALL_HINT = install_hint("logillm")
SUPPORTED_VERSIONS = supported_range(_SUPPORTED)
"""The LogiLLM releases whose callback manager and event classes this module was written
against."""

CALL_ID = "logillm.call_id"
PARENT_CALL_ID = "logillm.parent_call_id"


def _timestamp(event: object) -> dict[str, Any]:
    stamp = getattr(event, "timestamp", None)
    if isinstance(stamp, datetime.datetime):
        return {"timestamp": stamp.timestamp()}
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        return {"timestamp": float(stamp)}
    return {}


def _ids(event: object) -> tuple[str | None, str | None]:
    context = getattr(event, "context", None)
    call_id = field(context, "call_id")
    parent = field(context, "parent_call_id")
    return (
        call_id if isinstance(call_id, str) else None,
        parent if isinstance(parent, str) else None,
    )


class SpanhooksCallback:
    """A LogiLLM callback that re-emits each LogiLLM event as spanhooks' typed event.

    Its methods are synchronous, so LogiLLM calls them from ``emit_sync`` and ``emit_async``
    alike. ``manager`` is the :class:`~spanhooks.CallbackManager` to emit on (the process-wide
    one by default); ``enabled = False`` makes it a no-op.
    """

    name = "spanhooks"

    def __init__(self, manager: CallbackManager | None = None) -> None:
        if manager is not None and not isinstance(manager, CallbackManager):
            raise TypeError(f"manager must be a CallbackManager, got {manager!r}")
        self.runs = Runs(manager if manager is not None else get_callback_manager())
        self.enabled = True

    @property
    def manager(self) -> CallbackManager:
        """The manager LogiLLM's events are emitted on."""
        return self.runs.manager

    @manager.setter
    def manager(self, manager: CallbackManager) -> None:
        self.runs.manager = manager

    def __copy__(self) -> SpanhooksCallback:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> SpanhooksCallback:
        # LogiLLM optimizers deep-copy modules, and with them the process-wide callback
        # manager and what is registered on it: the copy must be this same handler.
        return self

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _unpickled, ()  # the manager and open calls stay in this process

    # -- LogiLLM's events -----------------------------------------------------------------------

    def on_module_start(self, event: Any) -> None:
        self._start(
            event,
            vocab.ModuleStartEvent(
                module=event.module, inputs=_dict(event, "inputs"), **_timestamp(event)
            ),
        )

    def on_module_end(self, event: Any) -> None:
        self._end(
            event,
            vocab.ModuleEndEvent(
                module=event.module,
                outputs=_dict(event, "outputs"),
                prediction=getattr(event, "prediction", None),
                duration=getattr(event, "duration", None),
                success=bool(getattr(event, "success", True)),
                **_timestamp(event),
            ),
        )

    def on_error(self, event: Any) -> None:
        """LogiLLM's ``ErrorEvent`` ends the module it names, failed (the vocabulary has no
        error event of its own; a module that raises sends no ``ModuleEndEvent``)."""
        call_id, _ = _ids(event)
        if call_id is None or self.runs.context(call_id) is None:
            return
        error = getattr(event, "error", None)
        self._end(
            event,
            vocab.ModuleEndEvent(
                module=getattr(event, "module", None),
                success=False,
                error=error if isinstance(error, BaseException) else None,
                **_timestamp(event),
            ),
        )

    def on_optimization_start(self, event: Any) -> None:
        self._start(
            event,
            vocab.OptimizationStartEvent(
                optimizer=event.optimizer,
                module=getattr(event, "module", None),
                dataset=getattr(event, "dataset", None),
                config=_dict(event, "config"),
                **_timestamp(event),
            ),
        )

    def on_optimization_end(self, event: Any) -> None:
        error = getattr(event, "error", None)
        self._end(
            event,
            vocab.OptimizationEndEvent(
                optimizer=event.optimizer,
                result=getattr(event, "result", None),
                duration=getattr(event, "duration", None),
                success=bool(getattr(event, "success", True)),
                **_timestamp(event),
            ),
            error=error if isinstance(error, BaseException) else None,
        )

    def on_evaluation_start(self, event: Any) -> None:
        self._start(
            event,
            vocab.EvaluationStartEvent(
                optimizer=getattr(event, "optimizer", None),
                module=event.module,
                dataset=getattr(event, "dataset", None),
                **_timestamp(event),
            ),
        )

    def on_evaluation_end(self, event: Any) -> None:
        self._end(
            event,
            vocab.EvaluationEndEvent(
                optimizer=getattr(event, "optimizer", None),
                module=event.module,
                score=getattr(event, "score", None),
                duration=getattr(event, "duration", None),
                **_timestamp(event),
            ),
        )

    def on_hyperparameter_update(self, event: Any) -> None:
        if not self.enabled:
            return
        call_id, parent = _ids(event)
        target = self.runs.context(call_id) or self.runs.context(parent)
        token = None
        if target is not None and not is_current(target):
            token = otel_context.attach(target)
        try:
            self.manager.emit(
                vocab.HyperparameterUpdateEvent(
                    optimizer=getattr(event, "optimizer", None),
                    module=getattr(event, "module", None),
                    parameters=_dict(event, "parameters"),
                    iteration=getattr(event, "iteration", None),
                    **_timestamp(event),
                )
            )
        finally:
            if token is not None:
                otel_context.detach(token)

    def on_provider_request(self, event: Any) -> None:
        messages = getattr(event, "messages", None)
        self._start(
            event,
            vocab.ProviderRequestEvent(
                provider=event.provider,
                messages=list(messages) if isinstance(messages, list | tuple) else [],
                parameters=_dict(event, "parameters"),
                **_timestamp(event),
            ),
        )

    def on_provider_response(self, event: Any) -> None:
        self._end(
            event,
            vocab.ProviderResponseEvent(
                provider=event.provider,
                response=getattr(event, "response", None),
                usage=getattr(event, "usage", None),
                duration=getattr(event, "duration", None),
                **_timestamp(event),
            ),
        )

    def on_provider_error(self, event: Any) -> None:
        error = getattr(event, "error", None)
        messages = getattr(event, "messages", None)
        self._end(
            event,
            vocab.ProviderErrorEvent(
                provider=event.provider,
                error=error if isinstance(error, BaseException) else None,
                messages=list(messages) if isinstance(messages, list | tuple) else [],
                **_timestamp(event),
            ),
        )

    # -- pairing by LogiLLM's call ids ----------------------------------------------------------

    def _start(self, event: Any, typed: Any) -> None:
        if not self.enabled:
            return
        call_id, parent_id = _ids(event)
        if call_id is None:
            self.manager.emit(typed)  # nothing will name it again: callbacks only, no pairing
            return
        self.runs.start(call_id, parent_id, typed)
        self.runs.annotate(call_id, {CALL_ID: call_id, PARENT_CALL_ID: parent_id})

    def _end(self, event: Any, typed: Any, error: BaseException | None = None) -> None:
        if not self.enabled:
            return
        call_id, _ = _ids(event)
        self.runs.end(call_id, typed, error=error)


_EVENT_METHODS = (
    "on_module_start",
    "on_module_end",
    "on_error",
    "on_optimization_start",
    "on_optimization_end",
    "on_evaluation_start",
    "on_evaluation_end",
    "on_hyperparameter_update",
    "on_provider_request",
    "on_provider_response",
    "on_provider_error",
)


class AwaitingSpanhooksCallback(SpanhooksCallback):
    """The handler :func:`instrument` registers: :class:`SpanhooksCallback` with async methods.

    LogiLLM 0.2 emits every event with ``await callback_manager.emit_async(event)``, which
    awaits a callback's async methods. Each method here re-emits the event as the sync handler
    does, then waits for the async spanhooks callbacks that event scheduled as tasks, so they
    have finished when LogiLLM goes on, as they would on LogiLLM's own manager (a module's
    ``await module(...)`` returns after its callbacks ran). LogiLLM's ``emit_sync`` skips
    async methods: for that path, register :func:`callback` (synchronous) by hand.
    """


def _awaiting(name: str) -> Callable[[AwaitingSpanhooksCallback, Any], Awaitable[None]]:
    sync: Callable[[SpanhooksCallback, Any], None] = getattr(SpanhooksCallback, name)

    async def method(self: AwaitingSpanhooksCallback, event: Any) -> None:
        sync(self, event)
        await self.manager.drain()

    method.__name__ = name
    method.__qualname__ = f"AwaitingSpanhooksCallback.{name}"
    return method


for _name in _EVENT_METHODS:
    setattr(AwaitingSpanhooksCallback, _name, _awaiting(_name))


def _unpickled() -> SpanhooksCallback:
    handler = SpanhooksCallback()
    handler.enabled = False
    return handler


def _dict(event: object, name: str) -> dict[str, Any]:
    value = getattr(event, name, None)
    return dict(value) if isinstance(value, Mapping) else {}


def callback(manager: CallbackManager | None = None) -> SpanhooksCallback:
    """A LogiLLM callback emitting on ``manager`` (default: the process-wide one), for
    ``callback_manager.register_global(...)``. Needs no ``instrument()``."""
    return SpanhooksCallback(manager)


# -- instrument / uninstrument ---------------------------------------------------------------


class _Installed:
    def __init__(self, callbacks: Any, handler: SpanhooksCallback, registration: str) -> None:
        self.callbacks = callbacks
        self.handler = handler
        self.registration = registration


_lock = threading.Lock()
_installed: _Installed | None = None


def _load_logillm() -> Any:
    """LogiLLM's ``logillm.core.callbacks`` module, after checking the installed version."""
    module, version, supported = load("logillm", "logillm", "logillm.core.callbacks", _SUPPORTED)
    manager = getattr(module, "callback_manager", None)
    hooks = (
        "register_global",
        "unregister",
        "unregister_by_name",
        "get_registered_callbacks",
        "is_enabled",
    )
    if (
        not supported
        or getattr(module, "Priority", None) is None
        or not all(callable(getattr(manager, hook, None)) for hook in hooks)
    ):
        raise unsupported("logillm", "logillm", version, _SUPPORTED)
    return module


def _register(module: Any, handler: SpanhooksCallback) -> str:
    manager = module.callback_manager
    if not manager.is_enabled():
        raise RuntimeError(
            "logillm's callback_manager is disabled (callback_manager.disable()); enable it "
            "before spanhooks.integrations.logillm.instrument()"
        )
    # Highest priority: the span is open before LogiLLM's other callbacks run.
    registration: str = manager.register_global(
        handler, priority=module.Priority.HIGHEST, name=SpanhooksCallback.name
    )
    return registration


def _still_registered(installed: _Installed) -> bool:
    try:
        registered = installed.callbacks.callback_manager.get_registered_callbacks()
    except Exception:
        return True
    return SpanhooksCallback.name in (registered.get("global") or ())


def instrument(manager: CallbackManager | None = None) -> None:
    """Trace every LogiLLM module, optimizer, evaluation and provider call from now on,
    emitting on ``manager`` (default: the process-wide one). Idempotent: a second call points
    the events at ``manager`` when one is given, and registers again if LogiLLM's callbacks
    were cleared (``callback_manager.clear()``) in between."""
    global _installed
    with _lock:
        if _installed is not None:
            if manager is not None:
                _installed.handler.manager = manager
            if not _still_registered(_installed):
                _installed.registration = _register(_installed.callbacks, _installed.handler)
            return
        module = _load_logillm()
        handler = AwaitingSpanhooksCallback(manager)
        _installed = _Installed(module, handler, _register(module, handler))


def uninstrument() -> None:
    """Undo :func:`instrument`: the callback is unregistered and emits nothing more."""
    global _installed
    with _lock:
        installed, _installed = _installed, None
        if installed is None:
            return
        installed.handler.enabled = False
        manager = installed.callbacks.callback_manager
        # A deep copy of a module rebuilds LogiLLM's registrations (new ids): then by name.
        if not manager.unregister(installed.registration):
            manager.unregister_by_name(SpanhooksCallback.name)


def is_instrumented() -> bool:
    """Whether :func:`instrument` is in effect."""
    return _installed is not None
