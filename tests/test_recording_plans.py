"""Recording plans: an emit read by position records exactly what the general path records.

A plan (spanhooks.tracing.plans) records an emit that passes its declared arguments
positionally without binding them by name; keyword emits take the general path. These tests
emit every built-in event both ways into two identical pipelines and compare the spans, and
check that plans follow changes of policy and provider made after the first emit. An event
with nothing to do but record goes straight to its plan; the last tests check that callbacks,
counting, history, tracer and policy set up after such emits all take effect at the next one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanhooks import AttributePolicy, CallbackManager, EventSet, FailureIn, end, point, start
from spanhooks.events.spec import EventSpec, Phase
from spanhooks.testing import Capture, capture
from spanhooks.vocab import BUILTIN_EVENT_SETS


def _shape(spans: list[ReadableSpan]) -> list[tuple[Any, ...]]:
    """What a backend sees of each span: ids, name, kind, attributes, events and status."""
    return [
        (
            span.context.span_id,
            span.parent.span_id if span.parent else None,
            span.name,
            span.kind,
            dict(span.attributes or {}),
            [(event.name, dict(event.attributes or {})) for event in span.events],
            span.status.status_code,
            span.status.description,
        )
        for span in spans
    ]


def _values(spec: EventSpec) -> tuple[Any, ...]:
    """One argument per declared name, of the kinds seeds pass: text, numbers, structures."""
    kinds: list[Any] = ["search", 3, {"query": "otel", "limit": 5}, ["a", "b"], 0.5]
    return tuple(
        "k" if name == spec.key else kinds[index % len(kinds)]
        for index, name in enumerate(spec.args)
    )


def _pairs_and_points() -> list[tuple[str, EventSpec, EventSpec | None]]:
    cases: list[tuple[str, EventSpec, EventSpec | None]] = []
    for event_set in BUILTIN_EVENT_SETS:
        specs = [spec for spec in event_set if spec.payload_type is None and spec.member is None]
        specs = specs or [spec for spec in event_set if spec.payload_type is None]
        ends = {spec.pair: spec for spec in specs if spec.phase is Phase.END}
        for spec in specs:
            if spec.phase is Phase.START:
                cases.append((f"{event_set.name}:{spec.pair}", spec, ends[spec.pair]))
            elif spec.phase is Phase.POINT:
                cases.append((f"{event_set.name}:{spec.name}", spec, None))
    return cases


CASES = _pairs_and_points()


def _emit_all(cap: Capture, first: EventSpec, last: EventSpec | None, by_name: bool) -> None:
    manager = cap.manager
    with cap.tracer.start_as_current_span("outer"):  # a point needs a span to land on
        for spec in (first, last) if last is not None else (first,):
            values = _values(spec)
            if by_name:
                manager.emit(spec.name, **dict(zip(spec.args, values, strict=True)))
            else:
                manager.emit(spec.name, *values)


@pytest.mark.parametrize(("first", "last"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("capture_content", [False, True], ids=["no-content", "content"])
def test_every_builtin_event_records_the_same_spans_by_position_and_by_name(
    first: EventSpec, last: EventSpec | None, capture_content: bool
) -> None:
    with capture(capture_content=capture_content) as by_position:
        _emit_all(by_position, first, last, by_name=False)
    with capture(capture_content=capture_content) as by_name:
        _emit_all(by_name, first, last, by_name=True)
    assert len(by_position.spans()) == 2 if last is not None else 1
    assert _shape(by_position.spans()) == _shape(by_name.spans())


TOOLS = EventSet(
    "tools",
    [
        start("call_start", "tool", "args", span_name="execute_tool {tool}", key="tool"),
        end("call_end", "tool", "result", key="tool", content=("result",)),
        point("note", "text"),
    ],
)


def test_content_capture_turned_on_after_emits_records_content_from_the_next_emit() -> None:
    with capture(event_sets=[TOOLS]) as cap:
        cap.manager.emit("call_start", "search", {"q": 1})
        cap.manager.emit("call_end", "search", "hidden")
        cap.manager.set_attribute_policy(AttributePolicy(capture_content=True))
        cap.manager.emit("call_start", "search", {"q": 1})
        cap.manager.emit("call_end", "search", "shown")
    before, after = cap.spans("execute_tool search")
    assert "tools.result" not in (before.attributes or {})
    assert (after.attributes or {})["tools.result"] == "shown"


def test_a_tracer_provider_set_after_emits_receives_the_next_spans() -> None:
    with capture(event_sets=[TOOLS]) as first, capture() as second:
        first.manager.emit("call_start", "search", {})
        first.manager.emit("call_end", "search", None)
        first.manager.use_tracer_provider(second.provider)
        first.manager.emit("call_start", "fetch", {})
        first.manager.emit("call_end", "fetch", None)
        first.manager.use_tracer_provider(first.provider)
    assert [span.name for span in first.spans()] == ["execute_tool search"]
    assert [span.name for span in second.spans()] == ["execute_tool fetch"]


def test_an_end_under_another_open_call_still_closes_its_own_call() -> None:
    with capture(event_sets=[TOOLS]) as cap:
        cap.manager.emit("call_start", "outer", {})
        cap.manager.emit("call_start", "inner", {})
        cap.manager.emit("call_end", "outer", None)  # innermost is "inner": not its call
        cap.manager.emit("call_end", "inner", None)
    outer, inner = cap.span("execute_tool outer"), cap.span("execute_tool inner")
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert cap.manager.stats()["open_spans"] == 0


class _Unformattable:
    def __format__(self, spec: str) -> str:
        raise RuntimeError("no format")

    def __str__(self) -> str:
        return "plain"


def test_a_name_value_that_cannot_be_formatted_names_the_span_by_its_text() -> None:
    tool = _Unformattable()
    with capture(event_sets=[TOOLS]) as cap:
        cap.manager.emit("call_start", tool, {})
        cap.manager.emit("call_end", tool, None)
    assert [span.name for span in cap.spans()] == ["execute_tool plain"]


def test_a_span_name_is_scrubbed_by_the_policys_patterns_on_both_paths() -> None:
    policy = AttributePolicy(redact_patterns=(r"sk-\w+",))
    with capture(event_sets=[TOOLS]) as cap:
        cap.manager.set_attribute_policy(policy)
        cap.manager.emit("call_start", "sk-secret", {})
        cap.manager.emit("call_end", "sk-secret", None)
        cap.manager.emit("call_start", tool="sk-other", args={})
        cap.manager.emit("call_end", tool="sk-other", result=None)
    assert [span.name for span in cap.spans()] == ["execute_tool [REDACTED]"] * 2


def test_a_policy_derived_with_replace_plans_its_events_afresh() -> None:
    base = AttributePolicy()
    call_end = TOOLS["call_end"]
    bound = {"tool": "search", "result": "found"}
    assert base.build(call_end, bound) == {}  # the base has planned call_end: no content
    derived = dataclasses.replace(base, capture_content=True)
    assert derived.build(call_end, bound) == {"tools.result": "found"}


# -- emits that only record: callbacks, counting and the tracer may change between them ------


def _quiet_manager(**options: Any) -> tuple[CallbackManager, InMemorySpanExporter]:
    """A manager whose events have no callbacks at all (Capture would add one)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return CallbackManager([TOOLS], tracer_provider=provider, **options), exporter


def test_a_callback_registered_after_emits_runs_from_the_next_emit() -> None:
    seen: list[str] = []
    manager, exporter = _quiet_manager()
    manager.emit("call_start", "before", {})
    manager.emit("call_end", "before", None)
    registration = manager.register("call_start", lambda tool, args: seen.append(tool))
    manager.emit("call_start", "after", {})
    manager.emit("call_end", "after", None)
    manager.unregister(registration)
    manager.emit("call_start", "unregistered", {})
    manager.emit("call_end", "unregistered", None)
    assert seen == ["after"]
    assert len(exporter.get_finished_spans()) == 3


def test_metrics_enabled_after_emits_count_the_next_emits() -> None:
    manager, _ = _quiet_manager()
    manager.emit("note", "uncounted")
    manager.enable_metrics()
    manager.emit("note", "counted")
    manager.emit("note", "counted")
    [events] = [f for f in manager.metric_families() if f.name == "spanhooks_events"]
    counted = {sample.labels["event"]: sample.value for sample in events.samples}
    assert counted["note"] == 2


def test_a_manager_with_history_remembers_every_emit_of_a_listener_free_event() -> None:
    manager, _ = _quiet_manager(history_size=4)
    for _ in range(3):
        manager.emit("note", "kept")
    assert [record.name for record in manager.history()] == ["note"] * 3


def test_tracing_turned_off_after_emits_stops_recording_and_callbacks_still_run() -> None:
    seen: list[str] = []
    manager, exporter = _quiet_manager()
    manager.emit("call_start", "traced", {})
    manager.emit("call_end", "traced", None)
    manager.use_tracer_provider(None)  # the global one from now on, not this exporter
    manager.register("call_start", lambda tool, args: seen.append(tool))
    manager.emit("call_start", "untraced", {})
    manager.emit("call_end", "untraced", None)
    assert [span.name for span in exporter.get_finished_spans()] == ["execute_tool traced"]
    assert seen == ["untraced"]


def test_a_listener_free_event_follows_a_new_tracer_provider_and_policy() -> None:
    manager, first = _quiet_manager()
    manager.emit("call_start", "search", {})
    manager.emit("call_end", "search", "hidden")
    second = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(second))
    manager.use_tracer_provider(provider)
    manager.set_attribute_policy(AttributePolicy(capture_content=True))
    manager.emit("call_start", "search", {})
    manager.emit("call_end", "search", "shown")
    [before], [after] = first.get_finished_spans(), second.get_finished_spans()
    assert "tools.result" not in (before.attributes or {})
    assert (after.attributes or {})["tools.result"] == "shown"


def test_a_forked_manager_keeps_its_own_callbacks_and_follows_the_shared_policy() -> None:
    parent, exporter = _quiet_manager()
    parent.emit("note", "warm")
    child = parent.fork()
    child.emit("note", "warm")
    heard: list[str] = []
    child.register("note", heard.append)
    parent.set_attribute_policy(AttributePolicy(max_length=16))  # the recorder is shared
    child.emit("note", "child " + "x" * 40)
    assert heard == ["child " + "x" * 40]
    last = exporter.get_finished_spans()[-1]  # a point with no open span gets one of its own
    assert len(str((last.events[0].attributes or {})["tools.text"])) <= 16


def test_callbacks_of_an_untraced_manager_follow_registration_and_counting_changes() -> None:
    manager = CallbackManager([TOOLS])
    heard: list[str] = []
    registration = manager.register("note", heard.append)
    manager.emit("note", "one")
    manager.enable_metrics()
    manager.emit("note", "two")
    manager.unregister(registration)
    manager.emit("note", "three")
    assert heard == ["one", "two"]
    [events] = [f for f in manager.metric_families() if f.name == "spanhooks_events"]
    assert {s.labels["event"]: s.value for s in events.samples}["note"] == 2


def test_a_failure_read_from_an_undeclared_argument_is_refused_at_declaration() -> None:
    with pytest.raises(ValueError, match="error name unknown arguments"):
        EventSet("bad", [start("a_start"), end("a_end", "result", error=FailureIn("oops", str))])


def test_a_failure_in_an_argument_marks_the_span_on_both_paths() -> None:
    calls = EventSet(
        "calls",
        [
            start("call_start", "name"),
            end("call_end", "error", error=FailureIn("error", lambda e: e or None)),
        ],
    )
    with capture(event_sets=[calls]) as cap:
        cap.manager.emit("call_start", "positional")
        cap.manager.emit("call_end", ValueError("by position"))
        cap.manager.emit("call_start", name="keyword")
        cap.manager.emit("call_end", error=ValueError("by name"))
        cap.manager.emit("call_start", "fine")
        cap.manager.emit("call_end", None)
    assert [(s.status.status_code.name, s.status.description) for s in cap.spans()] == [
        ("ERROR", "ValueError: by position"),
        ("ERROR", "ValueError: by name"),
        ("UNSET", None),
    ]
