"""Bad input: whatever a caller passes, emitting never raises and never records an attribute
past the configured limits, while a caller who misuses a public API gets a clear TypeError or
ValueError; damaged trace files give a one-line message, never a traceback."""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

import spanhooks
from spanhooks import AttributePolicy, CallbackEvent, CallbackManager, EventSet, point
from spanhooks.export.reader import read_spans
from spanhooks.testing import Capture, capture
from spanhooks.tracing.attributes import _compact_encoder, coerce, to_json
from spanhooks.vocab.logillm import ModuleEndEvent, ModuleStartEvent

MAX_LENGTH = 64
EXAMPLES = int(os.environ.get("SPANHOOKS_HYPOTHESIS_EXAMPLES", "150"))
"""Examples per property; each emits several events, so the suite runs in seconds (raise it
with ``SPANHOOKS_HYPOTHESIS_EXAMPLES`` for a longer search)."""

HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    deadline=None,  # two shared cores: no wall-clock limit per example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Unprintable:
    """An object whose ``__str__`` and ``__repr__`` both raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    __repr__ = __str__


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    __repr__ = __str__


class Result:
    """A tool result in LLMProc's shape."""

    def __init__(self, is_error: bool, content: object) -> None:
        self.is_error = is_error
        self.content = content


def cyclic(value: Any) -> Any:
    """A list and a dict that contain themselves, around ``value``."""
    loop: list[Any] = [value]
    loop.append(loop)
    ring: dict[str, Any] = {"value": value}
    ring["self"] = ring
    return [loop, ring]


HUGE = "x" * 1_000_000
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**200)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.binary(max_size=64)
    | st.just(HUGE)
    | st.builds(Unprintable)
    | st.builds(UnprintableError)
    | st.datetimes()
)
payloads = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=6)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=12) | st.integers(), children, max_size=6)
        | st.dictionaries(st.builds(Unprintable), children, max_size=2)
        | st.builds(cyclic, children)
        | st.builds(Result, st.booleans(), children)
    ),
    max_leaves=20,
)


@pytest.fixture
def cap() -> Iterator[Capture]:
    with capture(capture_content=True, max_attribute_length=MAX_LENGTH) as cap:
        yield cap


def assert_within_limits(spans: Sequence[ReadableSpan], policy: AttributePolicy) -> None:
    """Every attribute of every span and span event is a bounded OTLP value."""
    for span in spans:
        groups = [span.attributes or {}, *(event.attributes or {} for event in span.events)]
        assert len(span.attributes or {}) <= policy.max_attributes
        for attributes in groups:
            for key, value in attributes.items():
                items = value if isinstance(value, tuple) else (value,)
                assert len(items) <= 128, key
                for item in items:
                    assert isinstance(item, str | bool | int | float), (key, item)
                    if isinstance(item, str):
                        assert len(item) <= policy.max_length, (key, len(item))
                    elif isinstance(item, int) and not isinstance(item, bool):
                        assert -(2**63) <= item < 2**63, key
    encode_spans(spans)  # the real OTLP encoder: raises on a value OTLP cannot carry


@HYPOTHESIS
@given(payload=payloads, name=st.text(max_size=40) | st.builds(Unprintable))
def test_emit_never_raises_and_every_attribute_stays_within_the_limits(
    cap: Capture, payload: Any, name: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cap.clear()
    manager = cap.manager
    manager.emit(CallbackEvent.TOOL_START, name, payload)
    manager.emit(CallbackEvent.RESPONSE, payload)
    manager.emit(CallbackEvent.TOOL_END, name, payload)
    manager.emit(CallbackEvent.API_REQUEST, {"model": payload, "messages": payload})
    manager.emit(CallbackEvent.API_RESPONSE, payload)
    manager.trigger("on_message", user_id=payload, message=payload, timestamp=payload)
    with caplog.at_level(logging.ERROR, logger="opentelemetry"):
        assert_within_limits(cap.spans(), manager.attribute_policy)
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")]
    assert len(cap.spans()) >= 2


@HYPOTHESIS
@given(payload=payloads)
async def test_emit_async_and_typed_events_never_raise_on_any_payload(
    cap: Capture, payload: Any
) -> None:
    cap.clear()
    manager = cap.manager
    await manager.emit_async(CallbackEvent.TOOL_START, "t", payload)
    await manager.emit_async(CallbackEvent.TOOL_END, "t", payload)
    manager.emit(ModuleStartEvent(module=payload, inputs=payload))
    manager.emit(ModuleEndEvent(module=payload, outputs=payload, success=False, error=payload))
    assert_within_limits(cap.spans(), manager.attribute_policy)
    assert {s.name for s in cap.spans()} >= {"execute_tool t"}


@HYPOTHESIS
@given(
    payload=payloads,
    max_length=st.integers(min_value=16, max_value=300),
    max_attributes=st.integers(min_value=8, max_value=20),
)
def test_structured_values_are_valid_json_within_any_configured_length(
    payload: Any, max_length: int, max_attributes: int
) -> None:
    policy = AttributePolicy(
        capture_content=True, max_length=max_length, max_attributes=max_attributes
    )
    with capture(capture_content=True) as cap:
        cap.manager.set_attribute_policy(policy)
        wide = {f"k{i}": payload for i in range(40)}
        cap.manager.emit(CallbackEvent.TOOL_START, "t", [payload, wide])
        cap.manager.emit(CallbackEvent.TOOL_END, "t", None, **wide)
        [span] = cap.spans()
    assert_within_limits([span], policy)
    arguments = (span.attributes or {})["gen_ai.tool.call.arguments"]
    assert isinstance(arguments, str)
    json.loads(arguments)  # valid JSON however it was truncated
    assert (span.attributes or {})["gen_ai.tool.name"] == "t"  # ids survive the count limit


flat_dicts = st.dictionaries(
    st.sampled_from(["q", "hits", "api_key", "token", "pay_to", "Score"]) | st.text(max_size=8),
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    max_size=8,
)


@HYPOTHESIS
@given(value=flat_dicts, patterns=st.sampled_from([(), ("pay",)]))
def test_a_dict_of_scalars_reads_the_same_alone_as_inside_a_structure(
    value: dict[str, Any], patterns: tuple[str, ...]
) -> None:
    # A dict of plain scalars takes a shorter way to its JSON than a nested one: the same text,
    # the same redaction of sensitive keys and patterns, the same odd numbers described.
    policy = AttributePolicy(max_length=100_000, redact_patterns=patterns)
    assert to_json({"outer": value}, policy) == '{"outer":' + to_json(value, policy) + "}"


json_ready = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "é", "\u2028", '"']), inner, max_size=4)
    ),
    max_leaves=12,
)


@HYPOTHESIS
@given(value=st.dictionaries(st.text(alphabet="abcxyz", max_size=5), json_ready, max_size=5))
def test_structured_values_are_written_as_json_dumps_writes_them(value: dict[str, Any]) -> None:
    policy = AttributePolicy(max_length=1_000_000)
    assert to_json(value, policy) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_structured_values_are_written_the_same_where_python_has_no_c_json_encoder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)  # as on PyPy
    encode = _compact_encoder()
    value = {"é": [1, -2.5, None, True, "\u2028"], "n": {}}
    assert "".join(encode(value, 0)) == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    with pytest.raises(ValueError):
        "".join(encode(math.nan, 0))


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, b"\x00\xff" * 10, bytearray(b"abc"), 2**64, -(2**100)],
    ids=["nan", "inf", "-inf", "bytes", "bytearray", "2**64", "-2**100"],
)
def test_odd_primitives_become_representable_values(cap: Capture, value: object) -> None:
    cap.manager.emit(CallbackEvent.TOOL_START, "t", value)
    cap.manager.emit(CallbackEvent.TOOL_END, "t", [value, value])
    [span] = cap.spans()
    assert_within_limits([span], cap.manager.attribute_policy)
    assert isinstance((span.attributes or {})["gen_ai.tool.call.arguments"], str)


def test_a_10_000_digit_int_is_described_not_converted(cap: Capture) -> None:
    cap.manager.emit(CallbackEvent.TOOL_START, "t", 10**10_000)
    cap.manager.emit(CallbackEvent.TOOL_END, "t", {"n": 10**10_000})
    [span] = cap.spans()
    attributes = span.attributes or {}
    assert attributes["gen_ai.tool.call.arguments"] == "<int of 33220 bits>"
    assert json.loads(str(attributes["gen_ai.tool.call.result"])) == {"n": "<int of 33220 bits>"}


def test_an_exception_whose_str_raises_still_closes_its_span_as_an_error(cap: Capture) -> None:
    cap.manager.emit(CallbackEvent.TOOL_START, "t", {})
    cap.manager.emit(CallbackEvent.TOOL_END, "t", UnprintableError())
    [span] = cap.spans()
    assert span.status.status_code.name == "ERROR"
    [event] = [e for e in span.events if e.name == "exception"]
    assert (event.attributes or {})["exception.type"].endswith("UnprintableError")
    assert cap.manager.stats()["open_spans"] == 0


def test_a_huge_exception_message_is_cut_to_the_limit(cap: Capture) -> None:
    cap.manager.emit(CallbackEvent.TOOL_START, "t", {})
    cap.manager.emit(CallbackEvent.TOOL_END, "t", ValueError(HUGE))
    [span] = cap.spans()
    assert_within_limits([span], cap.manager.attribute_policy)
    assert span.status.status_code.name == "ERROR"


@pytest.mark.parametrize(
    "args",
    [(), ("only-name",), ("t", {}, "extra", "positionals", 4, 5)],
    ids=["no-args", "too-few", "too-many"],
)
def test_wrong_argument_counts_still_emit_a_span(cap: Capture, args: tuple[Any, ...]) -> None:
    cap.manager.emit(CallbackEvent.TOOL_START, *args)
    cap.manager.emit(CallbackEvent.TOOL_END, *args[:1])
    [span] = cap.spans()
    assert span.name.startswith("execute_tool")
    assert_within_limits([span], cap.manager.attribute_policy)


@pytest.mark.parametrize("event", ["no_such_event", 42, None, object(), CallbackEvent])
def test_emitting_an_unknown_event_is_logged_and_ignored(
    cap: Capture, event: Any, spanhooks_logs: pytest.LogCaptureFixture
) -> None:
    assert cap.manager.emit(event, "x") is None
    assert cap.manager.trigger(event, x=1) is None
    assert cap.spans() == []
    assert any("unknown event" in r.getMessage() for r in spanhooks_logs.records)


def test_an_unknown_event_name_in_register_and_on_is_a_value_error(cap: Capture) -> None:
    with pytest.raises(ValueError, match="unknown event 'no_such_event'"):
        cap.manager.register("no_such_event", print)
    with pytest.raises(ValueError, match="unknown event"):
        cap.manager.on("no_such_event")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda m: m.register(42), TypeError, "not callable"),
        (lambda m: m.register(CallbackEvent.TOOL_START, 42), TypeError, "not callable"),
        (
            lambda m: m.register(CallbackEvent.TOOL_START, print, priority="x"),
            TypeError,
            "priority",
        ),
        (lambda m: m.register(CallbackEvent.TOOL_START, print, timeout=-1), ValueError, "timeout"),
        (
            lambda m: m.register(CallbackEvent.TOOL_START, print, timeout="1"),
            (TypeError, ValueError),
            "timeout",
        ),
        (lambda m: m.declare("not an event set"), TypeError, "EventSet"),
        (
            lambda m: m.declare(EventSet("llmproc2", [point("tool_start")])),
            ValueError,
            "already declared",
        ),
        (lambda m: CallbackManager(history_size=-1), ValueError, "history_size"),
        (lambda m: CallbackManager(max_attribute_length=3), ValueError, "max_attribute_length"),
        (lambda m: AttributePolicy(max_length=0), ValueError, "max_length"),
        (lambda m: AttributePolicy(max_attributes=2), ValueError, "max_attributes"),
        (lambda m: AttributePolicy(redactor="nope"), TypeError, "callable"),  # type: ignore[arg-type]
        (lambda m: AttributePolicy(redact_patterns=("(",)), ValueError, "does not compile"),
        (lambda m: AttributePolicy(redact_patterns=(".*",)), ValueError, "empty string"),
        (lambda m: AttributePolicy(redact_patterns=(42,)), TypeError, "str or re.Pattern"),  # type: ignore[arg-type]
        (
            lambda m: EventSet("bad", [point("a", "x"), point("a", "y")]),
            ValueError,
            "declares 'a' twice",
        ),
        (lambda m: EventSet("bad", [1]), TypeError, "declared with start"),
        (lambda m: EventSet("bad", [point(3)]), ValueError, "Python identifier"),  # type: ignore[arg-type]
        (lambda m: EventSet("bad", [point("p", "a b")]), ValueError, "Python identifier"),
        (
            lambda m: EventSet("bad", [point("p", "x", attributes={"x": 5})]),
            TypeError,
            "non-empty strings",
        ),
        (
            lambda m: EventSet("bad", [point("p", "x", content={"y"})]),
            ValueError,
            "unknown arguments",
        ),
    ],
    ids=[
        "register-non-callable",
        "register-event-non-callable",
        "priority-not-int",
        "negative-timeout",
        "string-timeout",
        "declare-non-set",
        "declare-clash",
        "negative-history",
        "tiny-attribute-length",
        "policy-zero-length",
        "policy-too-few-attributes",
        "redactor-not-callable",
        "pattern-does-not-compile",
        "pattern-matches-empty",
        "pattern-not-str",
        "duplicate-event-names",
        "event-not-a-spec",
        "event-name-not-identifier",
        "argument-not-identifier",
        "attribute-key-not-str",
        "content-names-unknown-argument",
    ],
)
def test_public_apis_reject_wrong_arguments_clearly(
    cap: Capture, call: Any, error: Any, message: str
) -> None:
    with pytest.raises(error, match=message):
        call(cap.manager)


def test_module_level_api_rejects_wrong_arguments_without_emitting() -> None:
    with pytest.raises(ValueError, match="unknown event"):
        spanhooks.register("definitely_not_declared", print)
    with pytest.raises(ValueError, match="unknown event"):
        spanhooks.on(object())


# -- damaged trace files ---------------------------------------------------------------------

GOOD = {
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "span_id": "00f067aa0ba902b7",
    "parent_span_id": None,
    "name": "good span",
    "kind": "INTERNAL",
    "start_time_unix_nano": 1,
    "end_time_unix_nano": 2,
    "status": {"status_code": "UNSET"},
    "attributes": {},
    "events": [],
    "links": [],
}

DAMAGED = {
    "empty": b"",
    "only-blank-lines": b"\n\n  \n",
    "truncated-line": b'{"trace_id": "4bf92f3577b34da6',
    "binary-garbage": bytes(range(256)) * 4,
    "array": b"[1, 2, 3]\n",
    "number": b"42\n",
    "string": b'"a string"\n',
    "null": b"null\n",
    "object-not-a-span": b'{"hello": "world"}\n',
    "wrong-field-types": b'{"name": 5, "trace_id": [1], "span_id": {}, "attributes": "x", "events": 7}\n',
    "nested-too-deep": b"[" * 100_000 + b"]" * 100_000 + b"\n",
}


def run_view(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spanhooks", "view", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_view_on_a_damaged_file_prints_one_clear_line_and_no_traceback(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "traces.jsonl"
    path.write_bytes(content)
    done = run_view(path)
    assert "Traceback" not in done.stderr + done.stdout
    if done.returncode == 0:  # nothing to show is not an error
        assert done.stdout.strip() == f"{path}: no spans"
    else:
        assert done.returncode == 1
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("spanhooks view: ") and str(path) in line


def test_view_shows_the_good_spans_of_a_partly_damaged_file_and_says_what_it_skipped(
    tmp_path: Path,
) -> None:
    path = tmp_path / "traces.jsonl"
    lines = [json.dumps(GOOD).encode(), b"\x00\xff garbage", b"[1]", json.dumps(GOOD)[:30].encode()]
    path.write_bytes(b"\n".join(lines))
    done = run_view(path)
    assert done.returncode == 0, done.stderr
    assert "good span" in done.stdout
    assert "Traceback" not in done.stderr
    assert "2 unreadable line(s) skipped" in done.stderr
    assert "a torn last line skipped" in done.stderr


def test_view_on_a_directory_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    done = run_view(tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == f"spanhooks view: cannot read {tmp_path}: Is a directory"


@settings(max_examples=EXAMPLES, deadline=None)
@given(content=st.binary(max_size=2000) | st.text(max_size=2000).map(str.encode))
def test_read_spans_on_any_bytes_returns_or_raises_value_error(
    tmp_path_factory: pytest.TempPathFactory, content: bytes
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "traces.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + content)
    try:
        result = read_spans(path)
    except ValueError as error:
        assert str(path) in str(error)
    else:
        assert result.spans[0]["name"] == "good span"


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    record=st.dictionaries(
        st.sampled_from([*GOOD, "resource", "scope", "duration_ns", "status_code"]),
        st.none()
        | st.integers()
        | st.text(max_size=8)
        | st.lists(st.integers(), max_size=2)
        | st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    )
)
def test_read_spans_on_any_object_shaped_line_returns_or_raises_value_error(
    tmp_path_factory: pytest.TempPathFactory, record: dict[str, Any]
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "traces.jsonl"
    path.write_text(json.dumps({**GOOD, **record}) + "\n", encoding="utf-8")
    try:
        result = read_spans(path)
    except ValueError as error:
        assert str(path) in str(error)
    else:
        [span] = result.spans
        assert isinstance(span["name"], str)
        assert isinstance(span["attributes"], dict)


def test_dates_and_times_are_iso_strings(cap: Capture) -> None:
    when = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc)
    cap.manager.emit(CallbackEvent.TOOL_START, "t", when)
    cap.manager.emit(CallbackEvent.TOOL_END, "t", None)
    [span] = cap.spans()
    assert (span.attributes or {})["gen_ai.tool.call.arguments"] == "2024-05-01T12:30:00+00:00"


def test_a_date_is_cut_to_the_length_limit_too() -> None:
    policy = AttributePolicy(max_length=16)
    assert coerce(datetime.datetime(2000, 1, 1), policy) == "2000-01-01T00:0…"
