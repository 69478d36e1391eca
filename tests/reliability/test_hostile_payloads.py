"""Payloads that fight back, and inputs of any size: whatever an argument's dunders do, its event
still gets its span (an unreadable value recorded as ``<unrepresentable TYPE>``), its end still
finds its start, and nothing recorded exceeds the bounds: span and event names, attribute keys,
values, attribute counts and status descriptions. Exceptions only: KeyboardInterrupt, SystemExit
and cancellation raised by a payload still propagate.

Hostile objects raise only while :func:`armed` (around the emits), so that pytest and
hypothesis can still print them when a test fails.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from spanhooks import (
    AttributePolicy,
    CallbackEvent,
    CallbackType,
    EventSet,
    GenAIEvent,
    MeetingEventType,
    end,
    point,
    start,
)
from spanhooks.export.jsonl import JsonlSpanExporter
from spanhooks.testing import Capture, capture
from spanhooks.tracing.bounds import (
    MAX_ATTRIBUTE_KEY_LENGTH,
    MAX_SPAN_NAME_LENGTH,
    MAX_STATUS_DESCRIPTION_LENGTH,
)
from spanhooks.util.log import rate_limited
from spanhooks.util.redaction import REDACTED
from spanhooks.util.text import truncate
from spanhooks.vocab.logillm import (
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
from spanhooks.vocab.meeting import MeetingEvent

from .test_bad_input import HYPOTHESIS, assert_within_limits

MAX_LENGTH = 64
TEN_MB = 10 * 1024 * 1024
JSONL_LINE_LIMIT = 16 * 1024
"""A span whose tool name is 10 MB: one JSONL line (and one OTLP request) under 16 KiB."""

# -- hostile objects -------------------------------------------------------------------------

_armed = [False]


@contextmanager
def armed() -> Iterator[None]:
    """Make every hostile object's chosen dunders raise, for the duration of the block."""
    _armed[0] = True
    try:
        yield
    finally:
        _armed[0] = False


class HostileError(Exception):
    """An error a payload raises, itself unprintable."""

    def __str__(self) -> str:
        raise RuntimeError("no str for this error either")


@dataclass
class Record:
    """A plain dataclass payload, as a base for hostile ones."""

    name: str = "record"
    size: int = 3


DUNDERS = (
    "__len__",
    "__iter__",
    "__str__",
    "__repr__",
    "__format__",
    "__eq__",
    "__ne__",
    "__hash__",
    "__bool__",
    "__getattribute__",
    "__getattr__",
    "__setattr__",
    "__getitem__",
    "__contains__",
    "__lt__",
    "__index__",
    "__int__",
    "__float__",
)
BASES: dict[type, tuple[Any, ...]] = {
    object: (),
    str: ("payload",),
    int: (7,),
    float: (1.5,),
    list: ([1, "a"],),
    tuple: ((1, "a"),),
    dict: ({"k": "v"},),
    Exception: ("boom",),
    Record: (),
}
ERRORS: tuple[type[Exception], ...] = (
    RuntimeError,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
    StopIteration,
    RecursionError,
    NotImplementedError,
    HostileError,
)
_BENIGN: dict[str, Any] = {
    "__len__": lambda self: 0,
    "__iter__": lambda self: iter(()),
    "__bool__": lambda self: True,
    "__getattr__": object.__getattribute__,
    "__getitem__": lambda self, key: None,
    "__contains__": lambda self, item: False,
    "__index__": lambda self: 0,
    "__int__": lambda self: 0,
    "__float__": lambda self: 0.0,
    "__hash__": object.__hash__,
}


def _method(name: str, base: type, error: type[BaseException]) -> Any:
    """``name`` raising ``error`` while armed, the base's own behaviour otherwise."""
    benign = getattr(base, name, None) or _BENIGN[name]

    def method(self: Any, *args: Any) -> Any:
        if _armed[0]:
            raise error(f"hostile {name}")
        return benign(self, *args)

    method.__name__ = name
    return method


@functools.cache
def hostile_class(
    base: type, dunders: frozenset[str], error: type[BaseException] = RuntimeError
) -> type:
    """A subclass of ``base`` whose ``dunders`` raise ``error`` while :func:`armed`."""
    namespace = {name: _method(name, base, error) for name in sorted(dunders)}
    label = "".join(name.strip("_").title() for name in sorted(dunders))[:40]
    return type(f"Hostile{base.__name__.title()}{label}", (base,), namespace)


@dataclass(frozen=True)
class Hostility:
    """A recipe for a hostile object (printable, for hypothesis to report)."""

    base: type
    dunders: frozenset[str]
    error: type[Exception]

    @property
    def cls(self) -> type:
        return hostile_class(self.base, self.dunders, self.error)

    def build(self) -> Any:
        return self.cls(*BASES[self.base])

    def text_unreadable(self) -> bool:
        """Whether ``str()`` of the object raises while armed (so its text is unreadable)."""
        return self.base is object and bool({"__str__", "__repr__"} & self.dunders)


hostilities = st.builds(
    Hostility,
    base=st.sampled_from(list(BASES)),
    dunders=st.frozensets(st.sampled_from(DUNDERS), min_size=1),
    error=st.sampled_from(ERRORS),
)
"""Objects of every base whose chosen set of dunders raise a chosen Exception subclass."""

EVERYTHING = frozenset(DUNDERS)
Hostile = hostile_class(object, EVERYTHING)
"""An object every dunder of which raises."""


def hostile_str(text: str, dunders: frozenset[str] = EVERYTHING) -> Any:
    return hostile_class(str, dunders)(text)


# -- checks ------------------------------------------------------------------------------------


def assert_bounded(spans: Sequence[ReadableSpan], policy: AttributePolicy) -> None:
    """Every value, key, count, name and description within its bound; OTLP-encodable."""
    assert_within_limits(spans, policy)
    for span in spans:
        assert len(span.name) <= MAX_SPAN_NAME_LENGTH, len(span.name)
        description = span.status.description or ""
        assert len(description) <= MAX_STATUS_DESCRIPTION_LENGTH, len(description)
        for event in span.events:
            assert len(event.name) <= MAX_SPAN_NAME_LENGTH
            assert len(event.attributes or {}) <= policy.max_attributes
        groups = [span.attributes or {}, *(event.attributes or {} for event in span.events)]
        for attributes in groups:
            for key, value in attributes.items():
                assert type(key) is str and len(key) <= MAX_ATTRIBUTE_KEY_LENGTH, len(key)
                items = value if isinstance(value, tuple) else (value,)
                assert all(type(item) in (str, bool, int, float) for item in items), key
                strings = [item for item in items if type(item) is str]
                assert sum(map(len, strings)) <= policy.max_length, key


def problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Warnings and errors spanhooks or OpenTelemetry logged on this thread, the one that
    emits (span mapping failed, an end without a start, an invalid attribute...); not an
    export thread an earlier test's collector left retrying."""
    here = threading.get_ident()
    return [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.levelno >= logging.WARNING
        and record.thread == here
        and record.name.split(".")[0] in ("spanhooks", "opentelemetry")
    ]


@pytest.fixture
def cap() -> Iterator[Capture]:
    with capture(capture_content=True, max_attribute_length=MAX_LENGTH) as cap:
        yield cap


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING)
    return caplog


# -- any payload, every vocabulary ----------------------------------------------------------


def emit_every_vocabulary(cap: Capture, values: Iterator[Any], key: Any) -> int:
    """Starts, points and ends of five vocabularies, every argument a next ``values``; the
    pairing key of each start and its end is ``key``. Returns how many starts there were."""
    m = cap.manager

    def v() -> Any:
        return next(values)

    starts = 0

    def opened(call_id: str | None) -> None:
        nonlocal starts
        starts += 1

    # llmproc: a turn around a chat and a tool call, with span events inside
    opened(m.emit(CallbackEvent.TURN_START, v()))
    opened(m.emit(CallbackEvent.API_REQUEST, v()))
    m.emit(CallbackEvent.API_RESPONSE, v())
    opened(m.emit(CallbackEvent.TOOL_START, key, v()))
    m.emit(CallbackEvent.RESPONSE, v())
    m.emit(CallbackEvent.STDERR_WRITE, v())
    m.emit(CallbackEvent.TOOL_END, key, v())
    # thea: point events (keyword arguments) on the open turn
    m.trigger("on_message", user_id=v(), message=v(), timestamp=v())
    m.trigger("on_state_change", user_id=v(), old_state=v(), new_state=v())
    m.trigger("on_error", user_id=v(), error=v(), traceback=v())
    m.trigger("on_session_timeout", user_id=v(), session_id=v())
    m.trigger("on_intent_detected", user_id=v(), intent=v(), score=v())
    m.trigger("on_agent_delegated", user_id=v(), agent=v(), intent=v())
    m.emit(CallbackEvent.TURN_END, v(), v(), v())
    # genai: nested pairs keyed by name, an unkeyed model call, a point
    for kind in ("WORKFLOW", "AGENT", "TASK", "TOOL_CALL"):
        opened(m.emit(GenAIEvent[f"{kind}_START"], key, v()))
    opened(m.emit(GenAIEvent.LLM_START, v(), v(), v(), v()))
    m.emit(GenAIEvent.FIRST_CHUNK, v(), v())
    m.emit(GenAIEvent.LLM_END, v(), v(), v())
    for kind in ("TOOL_CALL", "TASK", "AGENT", "WORKFLOW"):
        m.emit(GenAIEvent[f"{kind}_END"], key, v(), v())
    # meeting: typed data keyed by meeting id, and a hostile object as the whole event
    opened(m.emit(MeetingEventType.MEETING_STARTED, MeetingEvent(v(), key, v())))
    m.emit(MeetingEventType.TURN_CHANGED, MeetingEvent(v(), key, v()))
    m.emit(MeetingEventType.PARTICIPANT_JOINED, MeetingEvent(v(), key, v()))
    m.emit(MeetingEventType.MEETING_ENDED, MeetingEvent(v(), key, v()))
    opened(m.emit(MeetingEventType.MEETING_STARTED, key))
    m.emit(MeetingEventType.TIMEOUT_OCCURRED, v())
    m.emit(MeetingEventType.MEETING_ENDED, key)
    # logillm: typed events with hostile fields, and hostile objects as the payload
    opened(m.emit(ModuleStartEvent(module=v(), inputs=v())))
    opened(m.emit(OptimizationStartEvent(optimizer=v(), module=v(), dataset=v(), config=v())))
    m.emit(HyperparameterUpdateEvent(optimizer=v(), module=v(), parameters=v(), iteration=v()))
    opened(m.emit(EvaluationStartEvent(optimizer=v(), module=v(), dataset=v())))
    m.emit(EvaluationEndEvent(optimizer=v(), module=v(), score=v(), duration=v()))
    m.emit(OptimizationEndEvent(optimizer=v(), result=v(), duration=v(), success=v()))
    opened(m.emit(ProviderRequestEvent(provider=v(), messages=v(), parameters=v())))
    m.emit(ProviderResponseEvent(provider=v(), response=v(), usage=v(), duration=v()))
    opened(m.emit(ProviderRequestEvent(provider=v(), messages=v(), parameters=v())))
    m.emit(ProviderErrorEvent(provider=v(), error=v(), messages=v()))
    fields = {"prediction": v(), "duration": v(), "success": v(), "error": v()}
    m.emit(ModuleEndEvent(module=v(), outputs=v(), **fields))
    opened(m.emit(CallbackType.MODULE_START, v()))
    m.emit(CallbackType.MODULE_END, v())
    return starts


@HYPOTHESIS
@given(recipes=st.lists(hostilities, min_size=1, max_size=5), key=hostilities)
def test_hostile_payloads_in_every_argument_still_give_one_bounded_span_per_pair(
    recipes: list[Hostility], key: Hostility, caplog: pytest.LogCaptureFixture
) -> None:
    rate_limited._windows.clear()  # each example sees its own logs, none rate-limited away
    caplog.clear()
    caplog.set_level(logging.WARNING)
    policy = AttributePolicy(capture_content=True, max_length=MAX_LENGTH, redact_patterns=("pay",))
    with capture() as cap:
        cap.manager.set_attribute_policy(policy)
        values = itertools.cycle([recipe.build() for recipe in recipes])
        key_value = key.build()
        with armed():
            starts = emit_every_vocabulary(cap, values, key_value)
        spans = cap.spans()
        stats = cap.manager.stats()
        assert problems(caplog) == []
        assert len(spans) == starts
        assert stats["open_spans"] == 0 and stats["unmatched_ends"] == 0
        assert_bounded(spans, policy)
    if key.text_unreadable():  # its text cannot be read: named and recorded by its type
        placeholder = truncate(f"<unrepresentable {key.cls.__qualname__}>", MAX_LENGTH)
        tools = [span for span in spans if span.name.startswith("execute_tool")]
        assert len(tools) == 2  # llmproc's and genai's
        for tool in tools:
            assert tool.name.startswith("execute_tool <unrepresentable Hostile")
            assert (tool.attributes or {})["gen_ai.tool.name"] == placeholder


def test_keyboard_interrupt_and_cancellation_raised_by_a_payload_still_propagate(
    cap: Capture,
) -> None:
    """spanhooks catches Exception, never BaseException: Ctrl-C, exit and task cancellation
    raised from a payload's dunder reach the caller; the next call is traced as usual."""
    for error in (KeyboardInterrupt, SystemExit, asyncio.CancelledError):
        payload = hostile_class(object, frozenset({"__str__", "__format__"}), error)()
        with pytest.raises(error), armed():
            cap.manager.emit(CallbackEvent.TOOL_START, payload, {})
    assert cap.manager.stats()["open_spans"] == 0  # raised before any span was opened
    cap.manager.emit(CallbackEvent.TOOL_START, "t", {})
    cap.manager.emit(CallbackEvent.TOOL_END, "t", None)
    assert [span.name for span in cap.spans()] == ["execute_tool t"]


async def test_emit_async_with_hostile_payloads_pairs_and_never_raises(
    cap: Capture, logs: pytest.LogCaptureFixture
) -> None:
    key = Hostile()
    with armed():
        await cap.manager.emit_async(GenAIEvent.AGENT_START, key, Hostile())
        await cap.manager.emit_async(GenAIEvent.AGENT_END, key, Hostile(), Hostile())
    [span] = cap.spans()
    assert span.name.startswith("invoke_agent <unrepresentable Hostile")
    assert problems(logs) == []


# -- one dunder at a time ----------------------------------------------------------------------


@pytest.mark.parametrize("dunder", DUNDERS)
def test_a_tool_name_whose_dunder_raises_still_gets_its_span_and_its_end(
    cap: Capture, logs: pytest.LogCaptureFixture, dunder: str
) -> None:
    name = hostile_class(object, frozenset({dunder, "__str__"}))()
    with armed():
        cap.manager.emit(CallbackEvent.TOOL_START, name, {"q": 1})
        cap.manager.emit(CallbackEvent.TOOL_END, name, {"ok": True})
    [span] = cap.spans()
    qualname = type(name).__qualname__
    assert span.name == truncate(f"execute_tool <unrepresentable {qualname}>", 256)
    assert (span.attributes or {})["gen_ai.tool.name"] == truncate(
        f"<unrepresentable {qualname}>", MAX_LENGTH
    )
    assert problems(logs) == []


def test_an_object_whose_every_dunder_raises_is_unrepresentable_in_json_beside_its_siblings(
    logs: pytest.LogCaptureFixture,
) -> None:
    placeholder = f"<unrepresentable {Hostile.__qualname__}>"
    with capture(capture_content=True) as cap, armed():
        cap.manager.emit(CallbackEvent.TOOL_START, "t", {"bad": Hostile(), "good": 1})
        cap.manager.emit(CallbackEvent.TOOL_END, "t", [Hostile(), "fine"])
    [span] = cap.spans()
    attributes = span.attributes or {}
    arguments = json.loads(str(attributes["gen_ai.tool.call.arguments"]))
    assert arguments == {"bad": placeholder, "good": 1}
    assert json.loads(str(attributes["gen_ai.tool.call.result"])) == [placeholder, "fine"]
    assert problems(logs) == []


def test_str_int_and_float_subclasses_are_recorded_as_their_plain_values(cap: Capture) -> None:
    text = hostile_str("search")
    number = hostile_class(int, EVERYTHING)(42)
    real = hostile_class(float, EVERYTHING)(0.5)
    with armed():
        cap.manager.emit(GenAIEvent.TOOL_CALL_START, text, {"n": number, "x": real})
        cap.manager.emit(GenAIEvent.TOOL_CALL_END, text, (number, real), None)
        cap.manager.emit(CallbackEvent.TOOL_START, "t", number, real)
        cap.manager.emit(CallbackEvent.TOOL_END, "t", None)
    tool, extra = cap.spans()
    assert tool.name == "execute_tool search"
    name = (tool.attributes or {})["gen_ai.tool.name"]
    assert name == "search" and type(name) is str
    assert json.loads(str((tool.attributes or {})["gen_ai.tool.call.arguments"])) == {
        "n": 42,
        "x": 0.5,
    }
    assert (extra.attributes or {})["gen_ai.tool.call.arguments"] == 42
    assert type((extra.attributes or {})["gen_ai.tool.call.arguments"]) is int
    assert (extra.attributes or {})["llmproc.arg2"] == 0.5


def test_a_payload_that_never_stops_iterating_is_read_lazily_and_bounded(cap: Capture) -> None:
    class Endless(list[int]):
        def __iter__(self) -> Iterator[int]:
            return itertools.count()

    class EndlessMapping(dict[str, int]):
        def items(self) -> Any:
            return ((f"k{i}", i) for i in itertools.count())

    cap.manager.emit(CallbackEvent.TOOL_START, "t", Endless())
    cap.manager.emit(CallbackEvent.TOOL_END, "t", EndlessMapping())
    [span] = cap.spans()
    assert_bounded([span], cap.manager.attribute_policy)
    arguments = json.loads(str((span.attributes or {})["gen_ai.tool.call.arguments"]))
    assert arguments["preview"].startswith("[0,1,2")


# -- pairing -----------------------------------------------------------------------------------


def test_a_key_whose_eq_raises_still_pairs_its_end_with_its_start(
    cap: Capture, logs: pytest.LogCaptureFixture
) -> None:
    comparing = hostile_class(object, frozenset({"__eq__", "__ne__", "__hash__", "__str__"}))
    with armed():
        cap.manager.emit(CallbackEvent.TOOL_START, comparing(), {})
        cap.manager.emit(CallbackEvent.TOOL_END, comparing(), None)  # another, equally hostile
    assert len(cap.spans()) == 1
    assert cap.manager.stats()["unmatched_ends"] == 0 and cap.manager.stats()["open_spans"] == 0
    assert problems(logs) == []


def test_a_key_that_compares_equal_is_preferred_to_one_whose_comparison_raises(
    cap: Capture,
) -> None:
    comparing = hostile_class(object, frozenset({"__eq__", "__ne__", "__str__"}))
    with armed():
        cap.manager.emit(GenAIEvent.TOOL_CALL_START, "outer", {})
        cap.manager.emit(GenAIEvent.TOOL_CALL_START, comparing(), {})
        cap.manager.emit(GenAIEvent.TOOL_CALL_END, "outer", None, None)  # skips the inner one
        cap.manager.emit(GenAIEvent.TOOL_CALL_END, comparing(), None, None)
    first, second = cap.spans()
    assert first.name == "execute_tool outer"
    assert second.name.startswith("execute_tool <unrepresentable")


def test_a_key_whose_hash_raises_pairs_like_any_other(cap: Capture) -> None:
    key = hostile_class(str, frozenset({"__hash__", "__eq__"}))("search")
    with armed():
        cap.manager.emit(CallbackEvent.TOOL_START, key, {})
        cap.manager.emit(CallbackEvent.TOOL_END, key, None)
    assert [span.name for span in cap.spans()] == ["execute_tool search"]


def test_an_end_whose_key_cannot_be_read_closes_the_innermost_call_of_its_pair(
    cap: Capture, logs: pytest.LogCaptureFixture
) -> None:
    unreadable = hostile_class(object, frozenset({"__getattribute__"}), LookupError)()
    with armed():
        cap.manager.emit(MeetingEventType.MEETING_STARTED, MeetingEvent("started", "m1"))
        cap.manager.emit(MeetingEventType.MEETING_ENDED, unreadable)  # its meeting_id raises
    [span] = cap.spans()
    assert span.name == "meeting"
    assert (span.attributes or {})["meeting.id"] == "m1"
    assert problems(logs) == []


def test_an_unreadable_call_id_on_an_end_is_reported_in_one_bounded_line(
    cap: Capture, logs: pytest.LogCaptureFixture
) -> None:
    cap.manager.emit(CallbackEvent.TOOL_START, "t", {})
    with armed():
        assert cap.manager.emit(CallbackEvent.TOOL_END, "t", None, call_id=Hostile()) is None
        cap.manager.emit(CallbackEvent.TOOL_END, "t", None, call_id="f" * TEN_MB)
    assert cap.spans() == []  # neither id names the open call
    [unreadable, huge] = [r.getMessage() for r in logs.records if "no open call" in r.getMessage()]
    assert "<unrepresentable Hostile" in unreadable
    assert len(huge) < 200
    cap.manager.emit(CallbackEvent.TOOL_END, "t", None)
    assert [span.name for span in cap.spans()] == ["execute_tool t"]


def test_a_typed_event_whose_setattr_raises_or_that_is_missing_still_gets_its_span(
    cap: Capture, logs: pytest.LogCaptureFixture
) -> None:
    payload = hostile_class(object, frozenset({"__setattr__", "__getattribute__"}))()
    with armed():
        cap.manager.emit(CallbackType.MODULE_START, payload)
        cap.manager.emit(CallbackType.MODULE_END, payload)
        cap.manager.emit(CallbackType.MODULE_START)  # no payload at all
        cap.manager.emit(CallbackType.MODULE_END)
    assert [span.name for span in cap.spans()] == ["module", "module"]
    assert problems(logs) == []


# -- sizes -------------------------------------------------------------------------------------


def test_a_10_mb_tool_name_gives_a_bounded_span_name_and_a_small_jsonl_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spans.jsonl"
    with capture() as cap:  # the default policy: 4,096 characters per value
        cap.provider.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter(path)))
        name = "x" * TEN_MB
        cap.manager.emit(CallbackEvent.TOOL_START, name, {"q": 1})
        cap.manager.emit(CallbackEvent.TOOL_END, name, None)
        [span] = cap.spans()
        assert_bounded([span], cap.manager.attribute_policy)
    assert len(span.name) == MAX_SPAN_NAME_LENGTH
    assert span.name.startswith("execute_tool xxx") and span.name.endswith("…")
    [line] = path.read_bytes().splitlines()
    assert len(line) < JSONL_LINE_LIMIT
    assert json.loads(line)["name"] == span.name
    assert encode_spans([span]).ByteSize() < JSONL_LINE_LIMIT


def test_names_built_by_namers_and_from_whole_templates_are_cut(cap: Capture) -> None:
    huge = "m" * TEN_MB
    cap.manager.emit(GenAIEvent.LLM_START, huge, {})  # a namer: "chat {model}"
    cap.manager.emit(GenAIEvent.LLM_END, huge, None, None)
    cap.manager.emit(GenAIEvent.TASK_START, huge, {})  # the template "{name}"
    cap.manager.emit(GenAIEvent.TASK_END, huge, None, None)
    chat, task = cap.spans()
    assert chat.name.startswith("chat mmm") and len(chat.name) == MAX_SPAN_NAME_LENGTH
    assert len(task.name) == MAX_SPAN_NAME_LENGTH
    assert_bounded([chat, task], cap.manager.attribute_policy)


def test_a_redact_pattern_is_applied_to_the_whole_name_before_the_cut(cap: Capture) -> None:
    cap.manager.set_attribute_policy(AttributePolicy(redact_patterns=("sk-[a-z]{300}",)))
    secret = "sk-" + "a" * 300
    cap.manager.emit(CallbackEvent.TOOL_START, secret, {})
    cap.manager.emit(CallbackEvent.TOOL_END, secret, None)
    [span] = cap.spans()
    assert span.name == f"execute_tool {REDACTED}"


def test_long_keyword_names_are_cut_after_the_sensitivity_check(cap: Capture) -> None:
    long_token = "x" * 1000 + "_token"
    cap.manager.emit(CallbackEvent.TOOL_START, "t", {}, **{"k" * 10_000: 1, long_token: "secret"})
    cap.manager.emit(CallbackEvent.TOOL_END, "t", None)
    [span] = cap.spans()
    assert_bounded([span], cap.manager.attribute_policy)
    attributes = span.attributes or {}
    long_keys = [key for key in attributes if key.startswith("llmproc.")]
    assert sorted(len(key) for key in long_keys) == [MAX_ATTRIBUTE_KEY_LENGTH] * 2
    assert sorted(map(str, (attributes[key] for key in long_keys))) == ["1", REDACTED]


def test_thousands_of_arguments_are_capped_at_max_attributes_keeping_the_ids(
    cap: Capture,
) -> None:
    cap.manager.emit(CallbackEvent.TOOL_START, "t", {}, **{f"a{i}": i for i in range(10_000)})
    cap.manager.emit(CallbackEvent.TOOL_END, "t", None)
    [span] = cap.spans()
    policy = cap.manager.attribute_policy
    assert len(span.attributes or {}) <= policy.max_attributes
    assert (span.attributes or {})["gen_ai.tool.name"] == "t"
    assert span.dropped_attributes == 0  # spanhooks stopped short: the SDK evicted nothing


def test_start_and_end_attributes_together_stay_within_max_attributes(cap: Capture) -> None:
    cap.manager.set_attribute_policy(AttributePolicy(max_attributes=16))
    failed = SimpleNamespace(is_error=True, error="failed")
    cap.manager.emit(CallbackEvent.TOOL_START, "t", {}, **{f"s{i}": i for i in range(100)})
    cap.manager.emit(CallbackEvent.TOOL_END, "t", failed, **{f"e{i}": i for i in range(100)})
    [span] = cap.spans()
    attributes = span.attributes or {}
    assert len(attributes) <= 16
    assert attributes["gen_ai.tool.name"] == "t" and attributes["error.type"] == "error"
    assert span.dropped_attributes == 0


def test_an_extractor_returning_thousands_of_attributes_or_long_keys_is_capped(
    cap: Capture,
) -> None:
    many = {f"x.{i}": i for i in range(10_000)} | {"y" * 10_000: "long key"}
    events = EventSet(
        "wide",
        [
            start("op_start", "a", extract=lambda bound: {"y" * 10_000: 1, **many}),
            end("op_end", "a", extract=lambda bound: None),  # not a mapping at all
            point("p" * 1_000, "a", extract=lambda bound: many),
        ],
    )
    cap.manager.declare(events)
    cap.manager.emit("op_start", 1)
    cap.manager.emit("p" * 1_000, 2)
    cap.manager.emit("op_end", 3)
    [span] = cap.spans()
    assert_bounded([span], cap.manager.attribute_policy)
    assert len(span.attributes or {}) <= cap.manager.attribute_policy.max_attributes
    [event] = span.events
    assert len(event.name) == MAX_SPAN_NAME_LENGTH


def test_a_huge_failure_gives_a_bounded_status_description(cap: Capture) -> None:
    cap.manager.emit(CallbackEvent.TOOL_START, "a", {})
    cap.manager.emit(CallbackEvent.TOOL_END, "a", ValueError("v" * TEN_MB))
    cap.manager.emit(CallbackEvent.TOOL_START, "b", {})
    cap.manager.emit(
        CallbackEvent.TOOL_END, "b", SimpleNamespace(is_error=True, error="e" * TEN_MB)
    )
    spans = cap.spans()
    assert [span.status.status_code.name for span in spans] == ["ERROR", "ERROR"]
    for span in spans:
        assert len(span.status.description or "") == MAX_STATUS_DESCRIPTION_LENGTH
    assert_bounded(spans, cap.manager.attribute_policy)


def test_an_exception_class_with_a_hostile_module_and_a_huge_name_is_recorded_safely(
    cap: Capture, logs: pytest.LogCaptureFixture
) -> None:
    odd = type("E" * 10_000, (HostileError,), {"__module__": Hostile()})
    with armed():
        cap.manager.emit(CallbackEvent.TOOL_START, "t", {})
        cap.manager.emit(CallbackEvent.TOOL_END, "t", odd())
    [span] = cap.spans()
    assert span.status.status_code.name == "ERROR"
    error_type = (span.attributes or {})["error.type"]
    assert isinstance(error_type, str) and error_type.startswith("…EEE")
    assert_bounded([span], cap.manager.attribute_policy)
    assert problems(logs) == []


# -- the event itself fights back --------------------------------------------------------------


@pytest.mark.parametrize("dunders", [{"__hash__"}, {"__eq__", "__hash__"}, {"__str__", "__repr__"}])
def test_an_event_object_that_fights_back_is_ignored_with_one_warning_and_emit_returns_none(
    cap: Capture, logs: pytest.LogCaptureFixture, dunders: set[str]
) -> None:
    rate_limited._windows.clear()
    event = hostile_class(object, frozenset(dunders))()
    with armed():
        assert cap.manager.emit(event, "x") is None
        assert asyncio.run(cap.manager.emit_async(event, "x")) is None
    warnings = [r.getMessage() for r in logs.records if "emit ignored" in r.getMessage()]
    assert warnings and all("unknown event" in w for w in warnings)
    cap.manager.emit(CallbackEvent.TOOL_START, "t", {})  # the manager is unharmed
    cap.manager.emit(CallbackEvent.TOOL_END, "t", None)
    assert [span.name for span in cap.spans()] == ["execute_tool t"]


def test_registering_for_an_event_whose_hash_raises_is_a_clear_value_error(cap: Capture) -> None:
    event = hostile_class(object, frozenset({"__hash__", "__repr__"}))()
    with armed(), pytest.raises(ValueError, match="unknown event <unrepresentable"):
        cap.manager.register(event, lambda *args: None)
