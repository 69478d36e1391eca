"""Thea's ``CallbackManager`` (``src/theaia/core/callbacks.py``) on spanhooks: change one import.

Code written for Thea keeps working with its import pointed here::

    from src.theaia.core.callbacks import CallbackManager   # before
    from spanhooks.compat.thea import CallbackManager       # after

    callbacks = CallbackManager()
    callbacks.register('on_message', log_message)
    callbacks.trigger('on_message', user_id="alvaro_123", message="Agendar", timestamp=now)

What differs from spanhooks' own :class:`spanhooks.CallbackManager`, and why:

- **Any event name.** Thea's manager keeps ``Dict[str, List[Callable]]`` and accepts whatever
  name it is given; spanhooks' manager refuses a name nobody declared (its documented
  strictness, kept). This manager declares an undeclared string name on its first
  ``register`` or ``trigger``, as a point event of set ``thea`` (a span event on the current
  span, or a zero-length span of its own, named after the event and cut to 256 characters),
  whose keyword arguments are recorded by the content rules: identifiers (``*_id``, states,
  intents, agents), numbers, flags and times always; text and structures only when the
  attribute policy captures content; sensitive names redacted. At most ``max_open_events``
  (default 1,024) names are declared that way per manager; past it, a new name is refused
  (``register`` raises ``ValueError``, ``trigger`` is ignored with a warning).
- **Only Thea's vocabulary by default.** Thea's six events are declared (``THEA``), not the
  other seeds': ``tool_start`` or ``response`` here is a name of your own, recorded as above,
  not LLMProc's span pair. Pass ``event_sets=`` to declare more.
- **``callbacks``**, the seed's ``Dict[str, List[Callable]]`` attribute, is a read-only snapshot
  (a new dict per read) of the callbacks registered per event name, in registration order;
  change registrations with ``register`` / ``unregister`` / ``clear``.
- ``register`` returns an id (Thea returns None) and refuses a callback that is not callable
  there and then (Thea would fail, logged, at each trigger).
- ``fork()`` (spanhooks') gives a child manager that keeps accepting any name; it is a plain
  :class:`spanhooks.CallbackManager`, without the ``callbacks`` snapshot.

Everything Thea's "Known Issues" lists as missing works here, because this is spanhooks'
manager: per-callback timeouts (``register(..., timeout=seconds)``, or ``default_timeout=``),
priorities (``register(..., priority=Priority.HIGH)``; higher first, ties in registration order
as in Thea), async callbacks (``async def`` callbacks run to completion on ``trigger``;
``await trigger_async(...)`` awaits them), and history (``CallbackManager(history_size=100)``,
``history()``), besides isolation as Thea's own ``try/except`` (a failing callback is logged
and counted and the next one runs).

``callbacks`` (the module attribute) is one manager for the process, for the examples that call
``callbacks.trigger(...)`` without making one.

Threading contract: that of :class:`spanhooks.CallbackManager`. Registering, unregistering and
the first use of an undeclared name may happen while other threads trigger (the first use
declares the name under the registry's lock; two threads get the same event); ``trigger``
takes no lock and runs the callbacks in the triggering thread, through spanhooks' dispatch core.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

from spanhooks.callbacks.manager import CallbackManager as _SpanhooksManager
from spanhooks.callbacks.registry import DEFAULT_OPEN_EVENTS_LIMIT, OpenEvents
from spanhooks.callbacks.routes import Priority
from spanhooks.events.spec import EventSet, EventSpec
from spanhooks.vocab.thea import THEA, TheaCallback, undeclared_event

__all__ = ["THEA", "CallbackManager", "Priority", "TheaCallback", "callbacks"]


class CallbackManager(_SpanhooksManager):
    """Thea's manager: ``register(event_type, callback)``, ``trigger(event_type, **kwargs)``,
    any event name. Every spanhooks option and method is available too (see the module
    docstring for what differs)."""

    def __init__(
        self,
        event_sets: Iterable[EventSet] = (THEA,),
        *,
        max_open_events: int = DEFAULT_OPEN_EVENTS_LIMIT,
        **options: Any,
    ) -> None:
        self._named: dict[int, tuple[tuple[str, ...], Callable[..., Any]]] = {}
        self._named_lock = threading.Lock()
        self._seen: frozenset[str] = frozenset()  # names emit has made sure are declared
        super().__init__(event_sets, **options)
        self.declare(OpenEvents(THEA.name, undeclared_event, limit=max_open_events))

    def register(self, event_or_callback: Any, callback: Any = None, **options: Any) -> int:
        """Thea's ``register(event_type, callback)``; spanhooks' other styles and options
        (``priority=``, ``timeout=``, ``name=``, a generic or class callback) work too."""
        registration = super().register(event_or_callback, callback, **options)
        if callback is not None:
            events = (
                event_or_callback
                if isinstance(event_or_callback, list | tuple | set | frozenset)
                else [event_or_callback]
            )
            names = tuple(self._event_name(event) for event in events)
            with self._named_lock:
                self._named = {**self._named, registration: (names, callback)}
        return registration

    def unregister(self, callback_id: int) -> bool:
        with self._named_lock:
            self._named = {k: v for k, v in self._named.items() if k != callback_id}
        return super().unregister(callback_id)

    def clear(self) -> None:
        with self._named_lock:
            self._named = {}
        super().clear()

    @property
    def callbacks(self) -> dict[str, list[Callable[..., Any]]]:
        """Thea's ``callbacks`` attribute: event name to its callbacks, in registration order.

        A snapshot (a new dict per read): changing it changes no registration.
        """
        snapshot: dict[str, list[Callable[..., Any]]] = {}
        for names, callback in self._named.values():
            for name in names:
                snapshot.setdefault(name, []).append(callback)
        return snapshot

    def emit(self, event: Any, /, *args: Any, **kwargs: Any) -> str | None:
        """Thea's ``trigger(event_type, **kwargs)``: any name, declared here on first use."""
        if type(event) is str:
            if event not in self._seen:
                self._declare_on_first_use(event)
        elif isinstance(event, str):  # a str subclass: its __hash__ is the user's
            self._declare_on_first_use(event)
        return _emit(self, event, *args, **kwargs)

    trigger = emit

    async def emit_async(self, event: Any, /, *args: Any, **kwargs: Any) -> str | None:
        """``emit`` awaiting async callbacks (``concurrent=True`` runs them together)."""
        if type(event) is str:
            if event not in self._seen:
                self._declare_on_first_use(event)
        elif isinstance(event, str):  # a str subclass: its __hash__ is the user's
            self._declare_on_first_use(event)
        return await _emit_async(self, event, *args, **kwargs)

    trigger_async = emit_async
    """``await callbacks.trigger_async(event_type, **kwargs)`` awaits async callbacks."""

    def _declare_on_first_use(self, event: str) -> None:
        # spanhooks' emit reads a name it does not know as a typed payload and passes it on
        # as the first argument; a name declared before the emit is read as a name.
        try:
            self.spec(event)
        except ValueError:  # no room for another undeclared name: emit warns and ignores it
            return
        if type(event) is str:
            self._seen = self._seen | {event}  # replaced, never mutated: read lock-free

    def _event_name(self, event: object) -> str:
        if isinstance(event, EventSpec):
            return event.name
        if isinstance(event, str):
            return str.__str__(event)
        if isinstance(event, Enum):
            return self.spec(event).name
        return str(event)


_emit = _SpanhooksManager.emit
_emit_async = _SpanhooksManager.emit_async

callbacks = CallbackManager()
"""One Thea manager for the process (the ``callbacks`` the seed's event examples trigger on)."""
