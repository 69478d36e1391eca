"""The JSONL exporter's fast encoder writes the very text of the general one.

``span_lines`` writes each ``spanhooks`` line as text directly, for speed; the general way
(``span_to_dict`` then ``json.dumps``) defines the format. Both must give the same bytes for
every span: SDK spans, hand-built ``ReadableSpan`` objects holding odd values, and subclasses.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from spanhooks.export import jsonl
from spanhooks.export.jsonl import JsonlSpanExporter, span_lines, span_to_dict


def general(span: ReadableSpan) -> str:
    return jsonl._compact_json(span_to_dict(span)) + "\n"


def same_text(span: ReadableSpan) -> None:
    try:
        expected = general(span)
    except Exception as exc:  # the fast way must fail where the general one does
        with pytest.raises(type(exc)):
            span_lines([span])
        return
    assert span_lines([span]) == [expected]


@pytest.fixture
def memory() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "shop", "weights": (1.5, math.nan)}),
        span_limits=SpanLimits(max_span_attributes=4, max_events=2, max_links=1),
        shutdown_on_exit=False,
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


ODD_VALUES: list[Any] = [
    "plain",
    "",
    'quotes " and \\ backslash',
    "line\nbreak\ttab\x00nul\x7f\u2028\u2029",
    "café 🙂 文字",
    "lone \ud800 surrogate",
    True,
    False,
    0,
    -7,
    2**63,
    10**30,
    0.0,
    -0.0,
    1.5,
    1e-05,
    1e16,
    5e-324,
    math.nan,
    math.inf,
    -math.inf,
    None,
    (),
    ("a", "b"),
    (1, 2.5, math.nan, True, None),
    (("nested",), 1),
    b"caf\xc3\xa9 \xff",
    {"mapping": {"deep": [1, math.inf]}, "k": b"v"},
    [1, [2, [3]]],
    frozenset({3}),
]


def test_sdk_spans_with_every_kind_of_value_are_written_as_the_general_way_writes_them(
    memory: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = memory
    tracer = provider.get_tracer("spanhooks.llmproc", "0.3")
    for index, value in enumerate(ODD_VALUES):
        kind = list(SpanKind)[index % len(SpanKind)]
        with tracer.start_as_current_span(f"span {index} \ud800", kind=kind) as parent:
            parent.set_attribute("value", value)
            parent.add_event("event", {"value": value, "n": index})
            with tracer.start_as_current_span(
                "child", links=[Link(parent.get_span_context(), {"value": value})]
            ) as child:
                for extra in range(6):  # over the limits: dropped counts
                    child.set_attribute(f"extra.{extra}", extra)
                    child.add_event(f"e{extra}")
                child.set_status(Status(StatusCode.ERROR, f"failed: {value!r}"))
        with tracer.start_as_current_span("ok") as span:
            span.set_status(Status(StatusCode.OK))
    spans = exporter.get_finished_spans()
    assert len(spans) == 3 * len(ODD_VALUES)
    for span in spans:
        same_text(span)
    assert span_lines(spans) == [general(span) for span in spans]


def test_sdk_spans_take_the_fast_way() -> None:
    """Notices an SDK whose spans keep their fields elsewhere (the general way still works,
    at a quarter of the speed)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("a", attributes={"k": "v"}) as span:
        span.add_event("e", {"n": 1})
    [finished] = exporter.get_finished_spans()
    assert jsonl._span_line(finished, {}) == general(finished)
    provider.shutdown()


def _context(trace_id: int, span_id: int) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1))


ODD_SPANS: list[ReadableSpan] = [
    ReadableSpan("bare"),
    ReadableSpan("no times", context=_context(1, 2)),
    ReadableSpan("zero end", context=_context(1, 2), start_time=5, end_time=0),
    ReadableSpan("negative", context=_context(1, 2), start_time=-(10**12), end_time=-5),
    ReadableSpan("far", context=_context(1, 2), start_time=10**30, end_time=10**30 + 1),
    ReadableSpan("float time", context=_context(1, 2), start_time=1.5, end_time=2),  # type: ignore[arg-type]
    ReadableSpan(
        "edge of iso",
        context=_context(1, 2),
        start_time=253_402_300_800 * 10**9 - 1,
        end_time=253_402_300_800 * 10**9,
    ),
    ReadableSpan(
        "keys",
        context=_context(2**128 - 1, 2**64 - 1),
        parent=_context(3, 4),
        attributes={1: "int key", None: "none key", "ok": "fine"},  # type: ignore[dict-item]
        start_time=1,
        end_time=2,
    ),
    ReadableSpan(
        "mapping attributes",
        context=_context(1, 2),
        attributes={f"v{index}": value for index, value in enumerate(ODD_VALUES)},
        events=[
            Event("evt", {"k": (1, None)}, timestamp=1_700_000_000_000_000_001),
            Event("no attributes", None, timestamp=0),
        ],
        links=[Link(_context(5, 6)), Link(_context(7, 8), {"why": "retry"})],
        status=Status(StatusCode.ERROR, "boom"),
        kind=SpanKind.SERVER,
        start_time=1_700_000_000_000_000_000,
        end_time=1_700_000_000_999_999_999,
        instrumentation_scope=InstrumentationScope("scope", None),
        resource=Resource({"service.name": "x", "bytes": b"\xff"}),
    ),
    ReadableSpan(
        "status description that is not text",
        context=_context(1, 2),
        status=Status(StatusCode.ERROR, 42),  # type: ignore[arg-type]
    ),
    ReadableSpan(42, context=_context(1, 2)),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("span", ODD_SPANS, ids=lambda span: str(span.name))
def test_hand_built_spans_with_odd_fields_are_written_as_the_general_way_writes_them(
    span: ReadableSpan,
) -> None:
    same_text(span)


class _Scrubbed(ReadableSpan):
    """A view whose attributes are not the field's (a subclass overriding a property)."""

    @property
    def attributes(self) -> Any:
        return {"scrubbed": True}


def test_a_subclass_overriding_a_property_is_read_through_its_properties() -> None:
    span = _Scrubbed("view", context=_context(1, 2), attributes={"secret": "s3cr3t"})
    [line] = span_lines([span])
    assert '"scrubbed":true' in line and "s3cr3t" not in line
    assert line == general(span)


scalars = st.one_of(
    st.text(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.none(),
    st.binary(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.tuples(inner, inner),
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
    ),
    max_leaves=6,
)
attribute_maps = st.dictionaries(st.text(min_size=1, max_size=8), values, max_size=5)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.text(),
    attributes=attribute_maps,
    event_attributes=attribute_maps,
    times=st.tuples(st.integers(min_value=0, max_value=2**64), st.integers(0, 10**12)),
    description=st.one_of(st.none(), st.text()),
)
def test_generated_spans_are_written_as_the_general_way_writes_them(
    name: str,
    attributes: dict[str, Any],
    event_attributes: dict[str, Any],
    times: tuple[int, int],
    description: str | None,
) -> None:
    start, length = times
    code = StatusCode.ERROR if description is not None else StatusCode.UNSET
    span = ReadableSpan(
        name,
        context=_context(start + 1, length + 1),
        parent=_context(1, 3) if length % 2 else None,
        attributes=attributes,
        events=[Event("e", event_attributes, timestamp=start)],
        status=Status(code, description),
        start_time=start,
        end_time=start + length,
    )
    same_text(span)


def test_a_batch_is_written_in_one_piece_that_reads_back_line_for_line(tmp_path: Path) -> None:
    spans = [ReadableSpan(f"s{index}", context=_context(1, index + 1)) for index in range(3)]
    spans.append(ReadableSpan("lone \ud800", context=_context(1, 9)))
    exporter = JsonlSpanExporter(tmp_path / "spans.jsonl")
    exporter.export(spans)
    exporter.shutdown()
    expected = "".join(general(span) for span in spans).encode("utf-8", errors="replace")
    assert exporter.path.read_bytes() == expected
