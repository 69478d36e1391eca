"""The event registry: which events a manager knows, and which callbacks run for each.

Everything that can be decided about a callback is decided here, when it is registered: its
style (a function for one event, a generic ``(event, *args, **kwargs)`` function, or an object
with a method per event), the methods it implements, its priority. The result is a route per
event in the :class:`~spanhooks.callbacks.dispatch.Dispatcher`, which emit reads without a lock.

Open event names: a registry is strict by default (an undeclared name fails at register and is
ignored, with a warning, at emit). One given :class:`OpenEvents` (as a constructor option or
through :meth:`EventRegistry.declare`) instead declares an undeclared string name on first use,
register or emit, as the spec its factory makes (Thea's manager accepts any name; see
``spanhooks.compat.thea``). Only the path that already failed (the lookup miss) does this work,
so emit's hot path is unchanged; at most ``OpenEvents.limit`` names are declared that way, and
names are cut to the span-name bound where they are recorded.

Threading: declaring, registering and unregistering take the registry's lock and replace the
tables they change; ``specs``, ``by_type`` and the dispatcher's ``table`` are read freely. Two
threads that use the same undeclared name first get the one spec (declared under the lock).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import threading
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any, cast

from spanhooks.callbacks.dispatch import Dispatcher
from spanhooks.callbacks.routes import Priority, Registration
from spanhooks.events.spec import EventSet, EventSpec, Phase, unknown_event_message
from spanhooks.tracing.attributes import active_policy
from spanhooks.tracing.bounds import MAX_SPAN_NAME_LENGTH, bounded_name
from spanhooks.util.log import rate_limited
from spanhooks.util.text import safe_str, type_name
from spanhooks.vocab import AbstractCallback

__all__ = ["EventRef", "EventRegistry", "OpenEvents"]

EventRef = str | Enum | EventSpec | type
"""An event as callers name it: its name, an enum member, its spec, or its payload type."""

DEFAULT_OPEN_EVENTS_LIMIT = 1024
"""How many undeclared names one registry declares on first use, by default."""


class OpenEvents(EventSet):
    """A declaration that makes a registry accept event names nobody declared.

    It declares no event itself: ``factory(name)`` makes the spec of each undeclared string
    name when it is first registered or emitted (a point event; its ``event_set`` should be
    ``name`` of this object, which is also the instrumentation scope of its span data). At most
    ``limit`` names are declared that way; past it an undeclared name is refused again, as by a
    strict registry, so that a name built from data cannot grow the tables (or the ``event``
    label on ``/metrics``) without end.
    """

    def __init__(
        self,
        name: str,
        factory: Callable[[str], EventSpec],
        *,
        limit: int = DEFAULT_OPEN_EVENTS_LIMIT,
    ) -> None:
        super().__init__(name, [])
        if not callable(factory):
            raise TypeError(f"OpenEvents factory must be callable (name) -> EventSpec: {factory!r}")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ValueError(f"OpenEvents limit must be an int >= 0, got {limit!r}")
        self.factory = factory
        self.limit = limit

    def __repr__(self) -> str:
        return f"<OpenEvents {self.name} (up to {self.limit} undeclared names)>"


class EventRegistry:
    """Declared events and the callbacks registered for them, compiled into dispatch routes.

    ``specs`` maps every way of naming an event (its name, its enum member) to its spec, and
    ``by_type`` maps typed payload classes (LogiLLM's events) to theirs. Both are replaced on
    :meth:`declare`, never mutated, so the emit path reads them without locking.
    """

    def __init__(
        self,
        dispatcher: Dispatcher[EventSpec],
        name: str = "spanhooks",
        *,
        open_events: OpenEvents | None = None,
    ) -> None:
        self.name = name
        self.dispatcher = dispatcher
        self.specs: dict[object, EventSpec] = {}
        self.by_type: dict[type, EventSpec] = {}
        self._sets: dict[str, EventSet] = {}
        self.lock = threading.RLock()
        """Held while declarations or registrations change; emit never takes it."""
        # Generic and class callbacks registered for "every event" also get the events declared
        # after them: what each asked for (None: all) is kept to extend its routes.
        self._wildcards: dict[int, tuple[object, frozenset[EventSpec] | None]] = {}
        self.open_events: OpenEvents | None = None
        """Whether (and how) undeclared names are declared on first use; None: strict."""
        self._opened: dict[str, EventSpec] = {}  # undeclared names declared so far
        self._before_publish: Callable[[list[EventSpec]], None] | None = None
        if open_events is not None:
            self.declare(open_events)

    # -- declarations -------------------------------------------------------------------------

    def declare(
        self,
        *event_sets: EventSet,
        before_publish: Callable[[list[EventSpec]], None] | None = None,
    ) -> list[EventSpec]:
        """Make these sets' events known; returns the specs that are new.

        ``before_publish(new_specs)`` runs before emit can see them (the manager's metrics
        make their counters there). Raises ``TypeError`` for a non-set and ``ValueError`` when
        a name clashes with a declared one; nothing is declared then.
        """
        with self.lock:
            if before_publish is not None:  # kept for the names declared on first use
                self._before_publish = before_publish
            specs = dict(self.specs)
            by_type = dict(self.by_type)
            added: list[EventSpec] = []
            sets: dict[str, EventSet] = {}
            for event_set in event_sets:
                if not isinstance(event_set, EventSet):
                    raise TypeError(f"declare() takes EventSet objects, got {event_set!r}")
                if isinstance(event_set, OpenEvents):
                    self.open_events = event_set
                    continue
                if self._sets.get(event_set.name) is event_set:
                    continue
                for spec in event_set:
                    clash = specs.get(spec.name)
                    if clash is not None:
                        raise ValueError(
                            f"event {spec.name!r} of set {event_set.name!r} is already declared "
                            f"by set {clash.event_set!r}"
                        )
                    specs[spec.name] = spec
                    if spec.member is not None:
                        specs[spec.member] = spec
                    if spec.payload_type is not None:
                        by_type[spec.payload_type] = spec
                    added.append(spec)
                sets[event_set.name] = event_set
            self._sets.update(sets)
            self._publish(specs, by_type, added, before_publish)
        return added

    def _publish(
        self,
        specs: dict[object, EventSpec],
        by_type: dict[type, EventSpec],
        added: list[EventSpec],
        before_publish: Callable[[list[EventSpec]], None] | None,
    ) -> None:
        """Make new tables visible to emit (under the lock): counters first, then the tables,
        then the routes of callbacks registered for every event."""
        if before_publish is not None and added:
            before_publish(added)
        self.specs, self.by_type = specs, by_type
        for reg_id, (callback, only) in self._wildcards.items():
            targets = _targets_for(callback, [s for s in added if only is None or s in only])
            self.dispatcher.extend(reg_id, targets)

    def _open(self, event: object) -> EventSpec | None:
        """The spec of an undeclared name, declared now if this registry accepts such names
        (and has room for one more); None for a strict registry, a non-string, or no room."""
        opener = self.open_events
        if opener is None or not isinstance(event, str):
            return None
        name = str.__str__(event)  # a str subclass (a str enum of the user's) as its text
        with self.lock:
            spec = self.specs.get(name)
            if spec is not None:
                return spec
            if len(self._opened) >= opener.limit:
                return None
            short = bounded_name(name)
            if short != name and short in self.specs:  # a long name cut to a declared one
                return None
            try:
                spec = opener.factory(name)
                if not isinstance(spec, EventSpec) or spec.phase is not Phase.POINT:
                    raise TypeError(f"the factory returned {spec!r}, not a point EventSpec")
            except Exception as exc:  # a factory of the user's: refuse the name, say why
                rate_limited.log(
                    logging.ERROR, "open-events", "%s: %r failed: %r", self.name, opener, exc
                )
                return None
            spec = dataclasses.replace(spec, name=short, identity=name)
            specs = {**self.specs, name: spec, short: spec}
            self._opened = {**self._opened, name: spec}
            self._publish(specs, self.by_type, [spec], self._before_publish)
        return spec

    def events(self) -> list[EventSpec]:
        """Every declared event, in declaration order."""
        return [
            spec for name, spec in self.specs.items() if isinstance(name, str) and name == spec.name
        ]

    def spec(self, event: EventRef) -> EventSpec:
        """The declaration of ``event`` (a name, an enum member or a spec); raises if unknown."""
        if isinstance(event, EventSpec):
            if self.specs.get(event.name) is not event:
                raise ValueError(f"{event!r} is not declared on this manager")
            return event
        if isinstance(event, type) and event in self.by_type:
            return self.by_type[event]
        try:
            return self.specs[event]
        except Exception:  # unknown, unhashable, or a __hash__ / __eq__ that raises
            opened = self._open(event)
            if opened is not None:
                return opened
            raise ValueError(self._unknown(event)) from None

    def resolve_payload(self, event: object) -> EventSpec | None:
        """The spec of a typed event object (an emit of a LogiLLM event); logs if unknown."""
        spec = self.by_type.get(type(event)) or self._open(event)
        if spec is None:
            rate_limited.log(
                logging.WARNING,
                f"unknown:{type_name(event)}:{safe_str(event)[:64]}",
                "%s: emit ignored: %s",
                self.name,
                active_policy().scrub(self._unknown(event)),
            )
        return spec

    def opened(self) -> list[str]:
        """The undeclared names declared on first use so far, in that order."""
        return list(self._opened)

    def _unknown(self, event: object) -> str:
        message = unknown_event_message(event, self._names())
        opener = self.open_events
        if opener is not None and isinstance(event, str):
            message += (
                f"; undeclared names are accepted ({opener!r}) but not this one: "
                f"{len(self._opened)} are declared already, or its first "
                f"{MAX_SPAN_NAME_LENGTH} characters name a declared event"
            )
        return message

    def _names(self) -> list[str]:
        return [name for name in self.specs if isinstance(name, str)]

    # -- registration -------------------------------------------------------------------------

    def register(
        self,
        event_or_callback: Any,
        callback: Any = None,
        *,
        only: Iterable[EventRef | type] | None = None,
        priority: int | None = None,
        timeout: float | None = None,
        name: str | None = None,
    ) -> Registration:
        """Register in any style (see :meth:`CallbackManager.register`); raises on bad input."""
        if callback is not None:
            if only is not None:
                raise TypeError("register(event, callback) names its events; drop events=")
            named = (
                list(event_or_callback)
                if isinstance(event_or_callback, list | tuple | set | frozenset)
                else [event_or_callback]
            )
            specs = [self.spec(e) for e in named]
            if not callable(callback):
                raise TypeError(f"callback for {specs[0].name!r} is not callable: {callback!r}")
            return self.dispatcher.add(
                callback,
                dict.fromkeys(specs, callback),
                priority=_priority(callback, priority),
                timeout=timeout,
                name=name,
                keys=[spec.name for spec in specs],
            )
        target = event_or_callback
        if isinstance(target, str | Enum | EventSpec):
            raise TypeError(f"register({target!r}) needs a callback: register(event, callback)")
        filtered = frozenset(self.spec(e) for e in only) if only is not None else None
        with self.lock:  # no declare() between choosing the events and recording the wildcard
            chosen = [s for s in self.events() if filtered is None or s in filtered]
            is_function = _is_function(target)
            targets = _targets_for(target, chosen)
            if not is_function and not targets:
                raise TypeError(
                    f"{target!r} is not callable and has no methods named after the declared "
                    f"events (e.g. tool_start or on_tool_start)"
                )
            registration = self.dispatcher.add(
                target,
                targets,
                passes_key=is_function,
                priority=_priority(target, priority),
                timeout=timeout,
                name=name,
                keys=[s.name for s in filtered] if filtered is not None else None,
                meta={"style": "function" if is_function else "class"},
            )
            self._wildcards[registration.id] = (target, filtered)
        return registration

    def unregister(self, registration_id: int) -> bool:
        """Remove a registration; True if it was one of this registry's."""
        with self.lock:
            self._wildcards.pop(registration_id, None)
            return self.dispatcher.remove(registration_id)

    def clear(self) -> None:
        """Remove every registration (declarations stay)."""
        with self.lock:
            self._wildcards.clear()
            self.dispatcher.clear()

    def copy(self) -> EventRegistry:
        """An independent registry with the same declarations and registrations."""
        with self.lock:
            twin = EventRegistry(self.dispatcher.copy(), self.name)
            twin.specs, twin.by_type = self.specs, self.by_type
            twin._sets = dict(self._sets)
            twin._wildcards = dict(self._wildcards)
            twin.open_events, twin._opened = self.open_events, self._opened
            twin._before_publish = self._before_publish
        return twin


def _targets_for(target: object, specs: Iterable[EventSpec]) -> dict[EventSpec, Callable[..., Any]]:
    """What ``target`` runs for each of ``specs``: itself, or its method named for the event."""
    if _is_function(target):
        return dict.fromkeys(specs, cast("Callable[..., Any]", target))
    methods = _event_methods(target)
    targets: dict[EventSpec, Callable[..., Any]] = {}
    for spec in specs:
        for method_name in spec.method_names:
            if method_name in methods:
                targets[spec] = methods[method_name]
                break
    return targets


def _is_function(target: object) -> bool:
    return (
        inspect.isfunction(target)
        or inspect.ismethod(target)
        or inspect.isbuiltin(target)
        or hasattr(target, "func")  # functools.partial
        or (callable(target) and not _event_methods(target))
    )


# The vocabularies' no-op methods: a class callback that inherits one does not handle that event.
_BASE_METHODS = {
    name: getattr(AbstractCallback, name)
    for name in dir(AbstractCallback)
    if name.startswith("on_")
}


def _event_methods(target: object) -> dict[str, Callable[..., Any]]:
    """Methods of a class callback that could handle events, minus the bases' no-ops."""
    if inspect.isfunction(target) or inspect.ismethod(target) or isinstance(target, type):
        return {}
    methods: dict[str, Callable[..., Any]] = {}
    cls = type(target)
    for attr in dir(cls):
        if attr.startswith("_"):
            continue
        raw = inspect.getattr_static(cls, attr, None)
        if (
            raw is None
            or not callable(raw)
            or isinstance(raw, staticmethod | classmethod | property)
        ):
            continue
        if _BASE_METHODS.get(attr) is raw:
            continue
        methods[attr] = getattr(target, attr)
    for attr, value in getattr(target, "__dict__", {}).items():  # handlers set per instance
        if not attr.startswith("_") and callable(value):
            methods[attr] = value
    return methods


def _priority(target: object, explicit: int | None) -> int:
    if explicit is not None:
        return explicit
    value = getattr(target, "priority", None)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return int(Priority.NORMAL)
