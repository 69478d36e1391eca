"""Event declarations: what an event is called, its phase, its arguments and how it maps to a span.

An :class:`EventSpec` is declared once and validated then, so that emitting never has to check
a declaration. Specs are grouped in an :class:`EventSet` (a vocabulary such as LLMProc's
``CallbackEvent``); a start and an end event with the same ``pair`` open and close one span.
"""

from __future__ import annotations

import dataclasses
import difflib
import keyword
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import Enum
from typing import Any

from opentelemetry.trace import SpanKind

from spanhooks.util.text import safe_repr, safe_str

__all__ = [
    "EventSet",
    "EventSpec",
    "FailureIn",
    "Phase",
    "end",
    "point",
    "start",
    "template_fields",
]

Bound = Mapping[str, Any]
"""An event's arguments by name, as bound from an emit call."""

AttributeExtractor = Callable[[Bound], Mapping[str, Any]]
SpanNamer = Callable[[Bound], str]
ErrorExtractor = Callable[[Bound], "BaseException | str | None"]
KeyExtractor = Callable[[Bound], object]


@dataclasses.dataclass(frozen=True)
class FailureIn:
    """An error extractor that reads one argument: ``read(value)`` gives the exception or
    message that marks the event as a failure, or None. Declared so (``error=FailureIn(
    "result", tool_failure)``), the failure of an emit that passes its arguments positionally
    is read without binding them by name; it is an :data:`ErrorExtractor` all the same."""

    argument: str
    read: Callable[[Any], BaseException | str | None]

    def __call__(self, bound: Bound) -> BaseException | str | None:
        return self.read(bound.get(self.argument))


RESERVED_ARGS = frozenset({"call_id"})
"""Argument names an event may not declare: ``call_id`` is ``emit``'s own keyword."""


class Phase(str, Enum):
    """Where an event sits in a call: it opens a span, closes one, or happens inside one."""

    START = "start"
    END = "end"
    POINT = "point"


@dataclasses.dataclass(frozen=True, eq=False)
class EventSpec:
    """One declared event. Compared and hashed by identity: the dispatch tables key on it.

    Build specs with :func:`start`, :func:`end` and :func:`point`; an :class:`EventSet`
    validates them together and stamps ``event_set`` and ``member``.
    """

    name: str
    phase: Phase
    args: tuple[str, ...] = ()
    pair: str | None = None
    span_name: str | SpanNamer | None = None
    kind: SpanKind = SpanKind.INTERNAL
    operation: str | None = None
    attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Argument name to attribute key, for arguments recorded under a semantic-convention name."""
    extract: AttributeExtractor | None = None
    """Computes further attributes (ids and token counts first) from the bound arguments."""
    extract_content: AttributeExtractor | None = None
    """Like ``extract`` for content (prompts, completions); called only when capture is on."""
    content: frozenset[str] = frozenset()
    """Arguments holding prompt, message or tool content: recorded only when capture is on."""
    key: str | KeyExtractor | None = None
    """What identifies the call on both start and end: an argument name (``tool_name``) or a
    function of the bound arguments."""
    error: ErrorExtractor | None = None
    """Returns the exception or message that marks this event as a failure, else None."""
    payload_type: type | None = None
    """For typed events: the class whose single instance is the whole payload."""
    record_args: bool = True
    """Whether arguments not named in ``attributes`` are recorded as ``<set>.<arg>``."""
    event_set: str = ""
    member: Enum | None = None
    identity: object = None
    """What a generic ``(event, *args, **kwargs)`` callback receives as ``event``: the enum
    member when the set has an enum, else the name. Set by :class:`EventSet`."""
    doc: str = ""

    @property
    def method_names(self) -> tuple[str, ...]:
        """Method names a class callback may use for this event, most specific first."""
        if self.name.startswith("on_"):
            return (self.name,)
        return (self.name, "on_" + self.name)

    def __repr__(self) -> str:
        return f"<EventSpec {self.event_set}:{self.name} {self.phase.value}>"


def _spec(
    phase: Phase,
    name: str,
    args: tuple[str, ...],
    *,
    pair: str | None = None,
    span_name: str | SpanNamer | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    operation: str | None = None,
    attributes: Mapping[str, str] | None = None,
    extract: AttributeExtractor | None = None,
    extract_content: AttributeExtractor | None = None,
    content: Iterable[str] = (),
    key: str | KeyExtractor | None = None,
    error: ErrorExtractor | None = None,
    payload_type: type | None = None,
    record_args: bool = True,
    doc: str = "",
) -> EventSpec:
    return EventSpec(
        name=name,
        phase=phase,
        args=tuple(args),
        pair=pair,
        span_name=span_name,
        kind=kind,
        operation=operation,
        attributes=dict(attributes or {}),
        extract=extract,
        extract_content=extract_content,
        content=frozenset(content),
        key=key,
        error=error,
        payload_type=payload_type,
        record_args=record_args,
        doc=doc,
    )


def start(name: str, *args: str, **options: Any) -> EventSpec:
    """Declare an event that opens a span (``pair`` defaults to the name less ``_start``)."""
    return _spec(Phase.START, name, args, **options)


def end(name: str, *args: str, **options: Any) -> EventSpec:
    """Declare an event that closes the span its paired start opened."""
    return _spec(Phase.END, name, args, **options)


def point(name: str, *args: str, **options: Any) -> EventSpec:
    """Declare an event that becomes a span event on the current span."""
    return _spec(Phase.POINT, name, args, **options)


_PAIR_SUFFIXES = {
    Phase.START: ("_start", "_started", "_begin", "_request"),
    Phase.END: ("_end", "_ended", "_finish", "_response"),
}


def _infer_pair(spec: EventSpec) -> str:
    lowered = spec.name.lower()
    for suffix in _PAIR_SUFFIXES.get(spec.phase, ()):
        if lowered.endswith(suffix):
            return lowered.removeprefix("on_")[: -len(suffix)]
    raise ValueError(
        f"event {spec.name!r} is a {spec.phase.value} event but its pair cannot be inferred "
        f"from its name; pass pair='...' naming the span it {spec.phase.value}s"
    )


def _check_identifier(what: str, name: object) -> None:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"{what} must be a Python identifier, got {name!r}")


def template_fields(template: str) -> set[str]:
    """The argument names a span name template's fields refer to; ValueError if malformed."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad span name template {template!r}: {exc}") from None
    return {field.split(".")[0].split("[")[0] for _, field, _, _ in parsed if field}


def _validate(spec: EventSpec, set_name: str) -> EventSpec:
    if not isinstance(spec, EventSpec):
        raise TypeError(
            f"event set {set_name!r}: events are declared with start(), end() or point(), "
            f"got {spec!r}"
        )
    where = f"event {spec.name!r} in set {set_name!r}"
    _check_identifier(f"{where}: the event name", spec.name)
    if not isinstance(spec.phase, Phase):
        raise ValueError(f"{where}: phase must be a Phase, got {spec.phase!r}")
    if len(set(spec.args)) != len(spec.args):
        raise ValueError(f"{where}: duplicate argument names in {spec.args}")
    for arg in spec.args:
        _check_identifier(f"{where}: argument", arg)
        if arg in RESERVED_ARGS:
            raise ValueError(f"{where}: argument name {arg!r} is reserved by emit()")
    for arg, attribute in spec.attributes.items():
        if not isinstance(attribute, str) or not attribute:
            raise TypeError(
                f"{where}: attributes maps {arg!r} to {attribute!r}; attribute keys are "
                f"non-empty strings"
            )
    known = set(spec.args)
    for label, names in (
        ("attributes", spec.attributes),
        ("content", spec.content),
        ("key", [spec.key] if isinstance(spec.key, str) else []),
        ("error", [spec.error.argument] if isinstance(spec.error, FailureIn) else []),
    ):
        unknown = sorted(set(names) - known)
        if unknown:
            raise ValueError(
                f"{where}: {label} name unknown arguments {unknown}; args are {spec.args}"
            )
    if isinstance(spec.span_name, str):
        unknown = sorted(template_fields(spec.span_name) - known)
        if unknown:
            raise ValueError(
                f"{where}: span name template {spec.span_name!r} uses unknown arguments {unknown}"
            )
    if spec.payload_type is not None and len(spec.args) != 1:
        raise ValueError(f"{where}: a typed event has exactly one argument, its payload object")
    if spec.phase is Phase.POINT:
        if spec.pair is not None:
            raise ValueError(f"{where}: a point event has no pair")
        return dataclasses.replace(spec, event_set=set_name, identity=spec.name)
    pair = spec.pair if spec.pair is not None else _infer_pair(spec)
    _check_identifier(f"{where}: pair", pair)
    return dataclasses.replace(spec, pair=pair, event_set=set_name, identity=spec.name)


class EventSet:
    """A named vocabulary of events, validated as a whole when it is created.

    Every start needs an end with the same pair and the reverse; names are unique; an
    ``enum`` (e.g. LLMProc's ``CallbackEvent``) must have a spec for each member value,
    and its members are what generic callbacks then receive as ``event``.
    Immutable once built; safe to share between threads and managers.
    """

    def __init__(
        self, name: str, events: Iterable[EventSpec], *, enum: type[Enum] | None = None
    ) -> None:
        _check_identifier("an event set name", name)
        self.name = name
        specs = [_validate(spec, name) for spec in events]
        by_name: dict[str, EventSpec] = {}
        for spec in specs:
            if spec.name in by_name:
                raise ValueError(f"event set {name!r} declares {spec.name!r} twice")
            by_name[spec.name] = spec
        if enum is not None:
            by_name = self._bind_enum(enum, by_name)
        self._check_pairs(by_name.values())
        self._specs = by_name
        self.enum = enum

    def _bind_enum(self, enum: type[Enum], by_name: dict[str, EventSpec]) -> dict[str, EventSpec]:
        bound = dict(by_name)
        for member in enum:
            value = member.value
            if value not in by_name:
                raise ValueError(
                    f"event set {self.name!r}: enum member {member!r} has no event named {value!r}"
                )
            bound[value] = dataclasses.replace(by_name[value], member=member, identity=member)
        return bound

    def _check_pairs(self, specs: Iterable[EventSpec]) -> None:
        phases: dict[str, set[Phase]] = {}
        keys: dict[str, set[object]] = {}
        for spec in specs:
            if spec.pair is not None:
                phases.setdefault(spec.pair, set()).add(spec.phase)
                keys.setdefault(spec.pair, set()).add(spec.key)
        for pair, seen in phases.items():
            if Phase.START not in seen:
                raise ValueError(f"event set {self.name!r}: pair {pair!r} has an end but no start")
            if Phase.END not in seen:
                raise ValueError(f"event set {self.name!r}: pair {pair!r} has a start but no end")
            if len(keys[pair]) > 1:
                raise ValueError(
                    f"event set {self.name!r}: pair {pair!r} uses different keys {keys[pair]}"
                )

    def __iter__(self) -> Iterator[EventSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __getitem__(self, name: str) -> EventSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(unknown_event_message(name, self._specs)) from None

    def __repr__(self) -> str:
        return f"<EventSet {self.name} ({len(self)} events)>"


def unknown_event_message(name: object, known: Iterable[str]) -> str:
    """A clear "unknown event" message with the closest declared names as suggestions."""
    names = sorted({str(k) for k in known})
    close = difflib.get_close_matches(safe_str(name), names, n=3)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    shown = safe_repr(name, 200)
    return f"unknown event {shown}{hint} (declared: {len(names)} events; declare it first)"
