"""LogiLLM's callback API on spanhooks: every name the callback documentation imports from
``logillm.core.callbacks``, ``logillm.core.jsonl_callback`` and ``logillm.core.jsonl_logger``,
at one path, so that code written for LogiLLM's callbacks runs with only those import lines
changed::

    from logillm.core.callbacks import CallbackManager, AbstractCallback   # before
    from spanhooks.compat.logillm import CallbackManager, AbstractCallback  # after

Only the callback system is replaced. ``Predict``, ``MockProvider``, ``register_provider``, the
optimizers and everything else stay the real LogiLLM (``from logillm.core.predict import
Predict`` is not changed): this module has no stand-in for any of them.

How the real package reaches these callbacks: LogiLLM's modules, optimizers and providers
emit on LogiLLM's own process-wide ``callback_manager``; :func:`spanhooks.integrations.logillm.
instrument` registers one handler there that re-emits each event as the matching typed event
below on spanhooks' process-wide manager, which :class:`CallbackManager` is. This module calls
``instrument()`` itself, so that the changed import line is all a user needs (the document's
blocks call no spanhooks function, and must not have to). It does so lazily and safely:

- not at import: at the first ``CallbackManager()`` call, ``register_jsonl_logger(...)`` or
  ``OptimizationLogger.log_optimization(...)`` (every document block that expects a callback
  to fire goes through one of them), and again at each later one, which re-registers the
  handler if LogiLLM's callbacks were cleared (``callback_manager.clear()``) in between;
- only when LogiLLM is installed: its presence is checked with ``importlib.util.find_spec``,
  which does not import it (and, once found absent, not checked again); without it nothing
  is imported and these callbacks work on spanhooks alone (``spanhooks.emit``, the
  decorators);
- never against an explicit choice: after ``spanhooks.integrations.logillm.uninstrument()``
  it does not instrument again; a failure (an unsupported LogiLLM version, LogiLLM's manager
  disabled) is logged once and retried at the next call, never raised into the caller.

What differs from spanhooks' defaults, and why:

- ``CallbackManager()`` is the process-wide manager, as LogiLLM's is a singleton: every call
  returns the same object, and that object shares its state (registrations, switch, tracer
  provider) with :func:`spanhooks.get_callback_manager`, so ``CallbackManager().register(cb)``
  fires for events emitted through it, through ``spanhooks.emit`` and through the LogiLLM
  instrumentation alike. This is the Borg idiom (instances that share one ``__dict__``)
  rather than a second singleton: spanhooks' process-wide manager already exists, is a plain
  :class:`spanhooks.CallbackManager`, and must stay the one object everything emits on, while
  LogiLLM's code needs ``CallbackManager()`` to construct "the" manager. Sharing the state,
  not copying it, means neither face can drift from the other. It takes no options (it is
  not a new manager); use :class:`spanhooks.CallbackManager` for a private one.
- The enable switch honours the seed's variable, ``LOGILLM_CALLBACKS_ENABLED`` (``0``,
  ``false``, ``no``, ``off`` disable; unset, empty, ``1``, ``true``... enable). It is read when
  this module is imported, at each ``CallbackManager()`` call (which is how LogiLLM code reaches
  the manager) and at each ``is_enabled()``; a value different from the last one read switches
  the manager. ``enable()`` and ``disable()`` switch it explicitly and win over a value already
  in place, until the variable changes again. It is not read by ``emit``: the hot path reads
  one flag. (LogiLLM itself reads the variable, exactly ``"1"`` meaning on, when each module,
  optimizer or provider is constructed: a component built while it is ``0`` emits nothing.)
- Priorities: the document says both "``Priority.HIGH``: executes before normal" (its code
  example and its API reference) and "lower priority callbacks run earlier" (a best-practice
  line). This module follows the code example, as LogiLLM does: :class:`~spanhooks.Priority`
  levels run ``HIGHEST``, ``HIGH``, ``NORMAL``, ``LOW``, ``LOWEST`` (a higher value runs first;
  equal priorities keep registration order).
- Callbacks get spanhooks' typed events (:mod:`spanhooks.vocab.logillm`), not LogiLLM's
  objects: the same fields (``module``, ``inputs``, ``outputs``, ``prediction``, ``duration``,
  ``success``, ``score``, ``result``...), and ``event.context`` with ``call_id``,
  ``parent_call_id`` (and ``trace_id``), which are the OpenTelemetry span ids, so they are only
  known while tracing is configured (``setup()``); LogiLLM's own ids are on each span as
  ``logillm.call_id`` and ``logillm.parent_call_id``.

:class:`OptimizationLogger` is the legacy wrapper of ``logillm.core.jsonl_logger``, now a thin
shell over :class:`OptimizationJSONLCallback` around any optimizer's ``optimize``.

Threading contract: ``CallbackManager()`` may be called from any thread (its first call takes
a lock, and so does the instrumentation check); registering, unregistering and switching are
thread-safe as on :class:`spanhooks.CallbackManager`, and the variable's last value is kept
under a lock. Events are emitted, and callbacks run, in the calling thread or task.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
import threading
from typing import Any, ClassVar

from spanhooks.callbacks.manager import CallbackManager as _Manager
from spanhooks.callbacks.manager import get_callback_manager
from spanhooks.callbacks.routes import Priority
from spanhooks.export.logillm_jsonl import (
    JSONLCallback,
    OptimizationJSONLCallback,
)
from spanhooks.export.logillm_jsonl import (
    register_jsonl_logger as _register_jsonl_logger,
)
from spanhooks.util.env import env_flag
from spanhooks.vocab import AbstractCallback
from spanhooks.vocab.logillm import (
    CallbackType,
    EvaluationEndEvent,
    EvaluationStartEvent,
    HyperparameterUpdateEvent,
    ModuleEndEvent,
    ModuleStartEvent,
    OptimizationEndEvent,
    OptimizationStartEvent,
    ProviderErrorEvent,
    ProviderRequestEvent,
    ProviderResponseEvent,
)

__all__ = [
    "ENABLED_ENV",
    "AbstractCallback",
    "CallbackManager",
    "CallbackType",
    "EvaluationEndEvent",
    "EvaluationStartEvent",
    "HyperparameterUpdateEvent",
    "JSONLCallback",
    "ModuleEndEvent",
    "ModuleStartEvent",
    "OptimizationEndEvent",
    "OptimizationJSONLCallback",
    "OptimizationLogger",
    "OptimizationStartEvent",
    "Priority",
    "ProviderErrorEvent",
    "ProviderRequestEvent",
    "ProviderResponseEvent",
    "register_jsonl_logger",
]

ENABLED_ENV = "LOGILLM_CALLBACKS_ENABLED"
"""LogiLLM's switch: ``0`` disables callbacks process-wide (see the module docstring)."""

_log = logging.getLogger(__name__)


class _AutoInstrument:
    """Whether this module has routed the real LogiLLM into spanhooks, and the rule for
    doing it (see the module docstring): lazily, only when LogiLLM is installed, once unless
    LogiLLM's registrations were cleared, never after an explicit ``uninstrument()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._warned = False
        self._absent = False

    def ensure(self) -> None:
        with self._lock:
            if self._absent:
                return
            if not _logillm_installed():
                self._absent = True  # checked once: no path scan at every CallbackManager()
                return
            # Imported here: the integration is only needed (and loaded) with LogiLLM.
            from spanhooks.integrations import logillm as integration

            if self._done and not integration.is_instrumented():
                return  # uninstrument() was called: the user's choice stands
            try:
                integration.instrument()  # idempotent; re-registers after a LogiLLM clear()
            except (ImportError, RuntimeError) as exc:
                if not self._warned:
                    self._warned = True
                    _log.warning("spanhooks.compat.logillm: LogiLLM is not traced: %s", exc)
                return
            self._done = True


def _logillm_installed() -> bool:
    """Whether LogiLLM can be imported, found without importing it."""
    try:
        return importlib.util.find_spec("logillm") is not None
    except (ImportError, ValueError):  # a broken or stubbed entry in sys.modules
        return False


_auto = _AutoInstrument()


class _EnvSwitch:
    """The last value of :data:`ENABLED_ENV` read, and the rule that applies a change of it."""

    _UNREAD: ClassVar[object] = object()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: object = self._UNREAD

    def apply(self, manager: _Manager) -> None:
        """Switch ``manager`` if the variable changed since it was last read (or is set and
        was never read)."""
        with self._lock:
            raw = os.environ.get(ENABLED_ENV)
            if raw == self._seen or (self._seen is self._UNREAD and raw is None):
                self._seen = raw
                return
            self._seen = raw
            if raw is None or not raw.strip():
                manager.enabled = True  # the seed's default is "1"
            else:  # an unrecognised value keeps the switch as it is, and is logged
                manager.enabled = env_flag(ENABLED_ENV, manager.enabled)

    def note(self) -> None:
        """Take the variable's current value as read, without applying it (an explicit
        ``enable()`` or ``disable()`` is about to win over it)."""
        with self._lock:
            self._seen = os.environ.get(ENABLED_ENV)


_switch = _EnvSwitch()
_create = threading.Lock()


class CallbackManager(_Manager):
    """LogiLLM's singleton manager: ``CallbackManager()`` is always the process-wide one.

    Every instance shares its state with :func:`spanhooks.get_callback_manager` (one set of
    registrations, one switch, one tracer provider), so registering here and emitting there,
    or the other way round, meet. ``register(callback, callback_types=None, priority=None)``
    returns an id for ``unregister(callback_id)``; ``enable()``, ``disable()``, ``clear()``,
    ``is_enabled()`` and ``get_registered_callbacks()`` are spanhooks' own, with the
    :data:`ENABLED_ENV` rules of the module docstring.
    """

    _instances: ClassVar[dict[type, CallbackManager]] = {}

    def __new__(cls) -> CallbackManager:
        instance = cls._instances.get(cls)
        if instance is None:
            with _create:
                instance = cls._instances.get(cls)
                if instance is None:
                    instance = object.__new__(cls)
                    # One state, two faces: the process-wide manager's attributes are this
                    # object's, so neither can drift from the other.
                    instance.__dict__ = get_callback_manager().__dict__
                    cls._instances[cls] = instance
        return instance

    def __init__(self) -> None:
        # The state exists: a call reads the switch, and routes the real LogiLLM here.
        _switch.apply(self)
        _auto.ensure()

    def is_enabled(self) -> bool:
        """Whether callbacks run (after applying a change of :data:`ENABLED_ENV`)."""
        _switch.apply(self)
        return self.enabled

    def enable(self) -> None:
        """Run callbacks again, whatever :data:`ENABLED_ENV` says now (until it changes)."""
        _switch.note()
        super().enable()

    def disable(self) -> None:
        """Stop running callbacks (and recording events), until :meth:`enable` or a change
        of :data:`ENABLED_ENV` to a true value."""
        _switch.note()
        super().disable()


_switch.apply(get_callback_manager())  # LOGILLM_CALLBACKS_ENABLED=0 in the environment at start


def register_jsonl_logger(
    filepath: str | os.PathLike[str],
    include_module_events: bool = True,
    include_optimization_events: bool = True,
    include_provider_events: bool = True,
    *,
    manager: _Manager | None = None,
    append_mode: bool = True,
) -> int:
    """LogiLLM's convenience function: register a :class:`JSONLCallback` on ``filepath`` (on
    the process-wide manager, which ``CallbackManager()`` is, by default) and return its id for
    ``unregister``. Routes the real LogiLLM here first, as ``CallbackManager()`` does."""
    _auto.ensure()
    return _register_jsonl_logger(
        filepath,
        include_module_events,
        include_optimization_events,
        include_provider_events,
        manager=manager,
        append_mode=append_mode,
    )


class OptimizationLogger:
    """LogiLLM's legacy optimization logger (``logillm.core.jsonl_logger``), kept for code
    that still uses it.

    ``await OptimizationLogger("optimization.jsonl").log_optimization(optimizer, module,
    dataset)`` runs ``optimizer.optimize(module, dataset, **kwargs)`` (awaited if it is a
    coroutine; any optimizer, LogiLLM's own included) with an
    :class:`OptimizationJSONLCallback` on ``filepath`` registered for the duration of the run,
    and returns its result: the events the optimizer emits are the log. The lines are
    spanhooks' JSONL records (the same as :class:`OptimizationJSONLCallback` writes), not the
    legacy wrapper's own format.
    """

    def __init__(self, filepath: str | os.PathLike[str] = "optimization_log.jsonl") -> None:
        self.filepath = filepath

    async def log_optimization(
        self, optimizer: Any, module: Any, dataset: Any, **kwargs: Any
    ) -> Any:
        callback = OptimizationJSONLCallback(self.filepath)
        manager = CallbackManager()
        registration = manager.register(callback)
        try:
            result = optimizer.optimize(module, dataset, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result
        finally:
            manager.unregister(registration)
            callback.close()
