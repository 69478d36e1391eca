"""The workloads, each as one unit of work per implementation, plus a check that no span was lost.

Every factory returns a :class:`Case`: ``run()`` does one unit of work (one event, one span
pair, one tree), ``check(units)`` returns a problem string (or None) after ``units`` runs, e.g.
when fewer spans were exported than produced. Peers get the same TracerProvider set-up as
spanhooks: a BatchSpanProcessor in front of a no-op exporter that only counts.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from opentelemetry import context, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import spanhooks
from spanhooks import CallbackEvent, CallbackManager, EventSet, end, point, start

ARGS = ("search", {"query": "opentelemetry", "limit": 5})
RESULT = {"hits": 3}


@dataclass
class Case:
    """One implementation of one workload."""

    workload: str
    name: str
    run: Callable[[], Any]
    check: Callable[[int], str | None] = lambda units: None
    spans_per_unit: int = 0


class CountingExporter(SpanExporter):
    """Exports nowhere; counts what reached it, so a benchmark can prove nothing was dropped.
    With ``shapes`` set to a list (the smoke run does), it also keeps what each span says."""

    def __init__(self) -> None:
        self.count = 0
        self.shapes: list[tuple[Any, ...]] | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        if self.shapes is not None:
            self.shapes.extend(span_shape(span) for span in spans)
        return SpanExportResult.SUCCESS


def span_shape(span: ReadableSpan) -> tuple[Any, ...]:
    """What a span says, ids and times aside: name, kind, attributes, events, status."""
    return (
        span.name,
        span.kind,
        dict(span.attributes or {}),
        [(event.name, dict(event.attributes or {})) for event in span.events],
        span.status.status_code,
    )


SAME_OUTPUT = (
    ("W4 start/end -> 1 span", "spanhooks (current)", "raw SDK (current)"),
    ("W5 agent>turn>tool + 2 events", "spanhooks", "raw SDK"),
)
"""Cases compared for a bar, which must export the same spans (the smoke run checks)."""


def exporter_of(case: Case) -> CountingExporter | None:
    """The exporter of a case that exports through a :class:`Pipeline`, else None."""
    pipe = getattr(case.check, "pipe", None)
    return pipe.exporter if isinstance(pipe, Pipeline) else None


class Pipeline:
    """A TracerProvider with a BatchSpanProcessor and a counting exporter."""

    def __init__(self) -> None:
        self.exporter = CountingExporter()
        self.provider = TracerProvider(shutdown_on_exit=False)
        self.processor = BatchSpanProcessor(self.exporter, max_queue_size=1 << 20)
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("bench")
        self.base = 0

    def check(self, spans_per_unit: int) -> Verifier:
        return Verifier(self, spans_per_unit)


class Verifier:
    """A case's ``check`` on a :class:`Pipeline`: were the spans of the last ``units`` units
    all exported? Keeps the totals of the batches it checked (``made``, ``arrived``) for the
    table; a check of 0 units (the reset after calibration) counts nothing."""

    def __init__(self, pipe: Pipeline, spans_per_unit: int) -> None:
        self.pipe = pipe
        self.spans_per_unit = spans_per_unit
        self.made = 0
        self.arrived = 0

    def __call__(self, units: int) -> str | None:
        pipe = self.pipe
        pipe.processor.force_flush()
        expected = units * self.spans_per_unit
        got = pipe.exporter.count - pipe.base
        pipe.base = pipe.exporter.count
        if units:
            self.made += expected
            self.arrived += got
        return None if got == expected else f"exported {got} of {expected} spans"


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


# -- W0 / W1 -------------------------------------------------------------------------------------


def w0_bare() -> list[Case]:
    return [Case("W0 bare call", "python", lambda: _noop(CallbackEvent.TOOL_START, *ARGS))]


def w1_disabled() -> list[Case]:
    disabled = CallbackManager(enabled=False)
    disabled.register(CallbackEvent.TOOL_START, _noop)
    idle = CallbackManager()
    return [
        Case(
            "W1 emit, disabled", "spanhooks", lambda: disabled.emit(CallbackEvent.TOOL_START, *ARGS)
        ),
        Case(
            "W1 emit, no callbacks, no tracing",
            "spanhooks",
            lambda: idle.emit(CallbackEvent.TOOL_START, *ARGS),
        ),
    ]


# -- W2 / W3: dispatch to 1 and 5 no-op callbacks, tracing off -----------------------------------


def dispatch_cases(receivers: int) -> list[Case]:
    workload = f"W{2 if receivers == 1 else 3} dispatch to {receivers}"
    cases = []

    manager = CallbackManager()
    for _ in range(receivers):
        manager.register(CallbackEvent.TOOL_START, _make_noop())
    cases.append(Case(workload, "spanhooks", lambda: manager.emit(CallbackEvent.TOOL_START, *ARGS)))

    try:
        from pyee import EventEmitter

        emitter = EventEmitter()
        for _ in range(receivers):  # distinct functions: pyee keeps one entry per function
            emitter.on("tool_start", _make_noop())
        cases.append(Case(workload, "pyee", lambda: emitter.emit("tool_start", *ARGS)))
    except ImportError:
        pass
    try:
        from blinker import Namespace

        signal = Namespace().signal("tool_start")
        receivers_kept = [_make_receiver() for _ in range(receivers)]
        for receiver in receivers_kept:
            signal.connect(receiver, weak=False)
        cases.append(
            Case(
                workload, "blinker", lambda: signal.send(None, tool_name=ARGS[0], tool_args=ARGS[1])
            )
        )
    except ImportError:
        pass
    try:
        import pluggy

        spec = pluggy.HookspecMarker("bench")
        impl = pluggy.HookimplMarker("bench")

        class Spec:
            @spec
            def tool_start(self, tool_name: str, tool_args: dict[str, Any]) -> None: ...

        manager_pm = pluggy.PluginManager("bench")
        manager_pm.add_hookspecs(Spec)
        for index in range(receivers):
            plugin = type(
                f"Plugin{index}", (), {"tool_start": impl(lambda self, tool_name, tool_args: None)}
            )
            manager_pm.register(plugin())
        hook = manager_pm.hook.tool_start
        cases.append(Case(workload, "pluggy", lambda: hook(tool_name=ARGS[0], tool_args=ARGS[1])))
    except ImportError:
        pass
    return cases


def _make_noop() -> Callable[..., None]:
    def noop(*args: Any, **kwargs: Any) -> None:
        return None

    return noop


def _make_receiver() -> Callable[..., None]:
    def receiver(sender: Any, **kwargs: Any) -> None:
        return None

    return receiver


# -- W4: a start/end pair that becomes one span ---------------------------------------------------


def span_cases() -> list[Case]:
    workload = "W4 start/end -> 1 span"
    cases = []

    pipe = Pipeline()
    manager = CallbackManager(tracer_provider=pipe.provider)

    def spanhooks_pair() -> None:
        manager.emit(CallbackEvent.TOOL_START, *ARGS)
        manager.emit(CallbackEvent.TOOL_END, ARGS[0], RESULT)

    cases.append(Case(workload, "spanhooks (current)", spanhooks_pair, pipe.check(1), 1))

    raw = Pipeline()

    def raw_current() -> None:
        with raw.tracer.start_as_current_span(
            "execute_tool search",
            attributes={"gen_ai.tool.name": ARGS[0], "gen_ai.operation.name": "execute_tool"},
        ):
            pass

    cases.append(Case(workload, "raw SDK (current)", raw_current, raw.check(1), 1))

    raw2 = Pipeline()

    def raw_plain() -> None:
        raw2.tracer.start_span(
            "execute_tool search",
            attributes={"gen_ai.tool.name": ARGS[0], "gen_ai.operation.name": "execute_tool"},
        ).end()

    cases.append(Case(workload, "raw SDK (not current)", raw_plain, raw2.check(1), 1))

    raw3 = Pipeline()

    def raw_floor() -> None:
        # The SDK and context calls spanhooks makes for a pair, by hand, with nothing around
        # them: the floor for an emit-based span that is made current.
        parent = context.get_current()
        span = raw3.tracer.start_span(
            "execute_tool search",
            context=parent,
            attributes={"gen_ai.tool.name": ARGS[0], "gen_ai.operation.name": "execute_tool"},
        )
        context.attach(trace.set_span_in_context(span, parent))
        span.end()
        context.attach(parent)

    cases.append(Case(workload, "raw SDK (current, by hand)", raw_floor, raw3.check(1), 1))
    for factory in (_langchain_span, _util_genai_span, _llamaindex_span):
        with contextlib.suppress(ImportError):  # a peer that is not installed is left out
            cases.append(factory(workload))
    return cases


def _langchain_span(workload: str) -> Case:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.callbacks import CallbackManager as LCManager

    pipe = Pipeline()

    class OTelHandler(BaseCallbackHandler):
        def __init__(self) -> None:
            self.spans: dict[uuid.UUID, trace.Span] = {}

        def on_tool_start(
            self, serialized: dict[str, Any], input_str: str, *, run_id: uuid.UUID, **kw: Any
        ) -> None:
            self.spans[run_id] = pipe.tracer.start_span(f"execute_tool {serialized['name']}")

        def on_tool_end(self, output: Any, *, run_id: uuid.UUID, **kw: Any) -> None:
            self.spans.pop(run_id).end()

    handler = OTelHandler()
    lc = LCManager(handlers=[handler], inheritable_handlers=[handler])

    def run() -> None:
        run_manager = lc.on_tool_start({"name": ARGS[0]}, "opentelemetry")
        run_manager.on_tool_end(RESULT)

    return Case(workload, "langchain-core", run, pipe.check(1), 1)


def _util_genai_span(workload: str) -> Case:
    from opentelemetry.util.genai.handler import TelemetryHandler

    pipe = Pipeline()
    handler = TelemetryHandler(tracer_provider=pipe.provider)

    def run() -> None:
        handler.inference("openai", request_model="gpt-bench").stop()

    return Case(workload, "opentelemetry-util-genai", run, pipe.check(1), 1)


def _llamaindex_span(workload: str) -> Case:
    import inspect

    from llama_index_instrumentation import get_dispatcher
    from llama_index_instrumentation.span.simple import SimpleSpan
    from llama_index_instrumentation.span_handlers import BaseSpanHandler

    pipe = Pipeline()

    class OTelSpanHandler(BaseSpanHandler[SimpleSpan]):
        def new_span(
            self,
            id_: str,
            bound_args: inspect.BoundArguments,
            instance: Any = None,
            parent_span_id: str | None = None,
            tags: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> SimpleSpan:
            span = SimpleSpan(id_=id_, parent_id=parent_span_id, tags=tags or {})
            span.tags["otel"] = pipe.tracer.start_span(id_.split("-", maxsplit=1)[0])
            return span

        def prepare_to_exit_span(
            self,
            id_: str,
            bound_args: inspect.BoundArguments,
            instance: Any = None,
            result: Any = None,
            **kwargs: Any,
        ) -> SimpleSpan | None:
            span = self.open_spans.get(id_)
            if span is not None:
                span.tags["otel"].end()
            return span

        def prepare_to_drop_span(
            self,
            id_: str,
            bound_args: inspect.BoundArguments,
            instance: Any = None,
            err: BaseException | None = None,
            **kwargs: Any,
        ) -> SimpleSpan | None:
            span = self.open_spans.get(id_)
            if span is not None:
                span.tags["otel"].end()
            return span

    dispatcher = get_dispatcher("spanhooks_bench")
    dispatcher.propagate = False
    dispatcher.span_handlers = []
    dispatcher.add_span_handler(OTelSpanHandler())

    @dispatcher.span
    def tool(tool_name: str, tool_args: dict[str, Any]) -> Any:
        return RESULT

    return Case(workload, "llama-index-instrumentation", lambda: tool(*ARGS), pipe.check(1), 1)


# -- W5: agent -> turn -> tool with two point events ----------------------------------------------

TREE = EventSet(
    "bench",
    [
        start("agent_start", "name", span_name="invoke_agent {name}", operation="invoke_agent"),
        end("agent_end"),
        start("step_start", "index", span_name="turn"),
        end("step_end"),
        start(
            "call_start",
            "tool_name",
            span_name="execute_tool {tool_name}",
            operation="execute_tool",
        ),
        end("call_end", "result"),
        point("note", "text"),
    ],
)


def tree_cases() -> list[Case]:
    workload = "W5 agent>turn>tool + 2 events"
    pipe = Pipeline()
    manager = CallbackManager([TREE], tracer_provider=pipe.provider)
    manager.register("note", _noop)
    emit = manager.emit

    def spanhooks_tree() -> None:
        emit("agent_start", "planner")
        emit("step_start", 1)
        emit("call_start", "search")
        emit("note", "thinking")
        emit("note", "done")
        emit("call_end", RESULT)
        emit("step_end")
        emit("agent_end")

    raw = Pipeline()
    tracer = raw.tracer

    def raw_tree() -> None:
        # The spans spanhooks makes of the same emits, written with the SDK by hand: the same
        # names, attributes and events (the smoke run compares them), the result as compact
        # JSON, and the same user callback called at each note.
        with (
            tracer.start_as_current_span(
                "invoke_agent planner",
                attributes={"bench.name": "planner", "gen_ai.operation.name": "invoke_agent"},
            ),
            tracer.start_as_current_span("turn", attributes={"bench.index": 1}),
            tracer.start_as_current_span(
                "execute_tool search",
                attributes={"bench.tool_name": "search", "gen_ai.operation.name": "execute_tool"},
            ) as span,
        ):
            span.add_event("note", {"bench.text": "thinking"})
            _noop("thinking")
            span.add_event("note", {"bench.text": "done"})
            _noop("done")
            span.set_attribute("bench.result", json.dumps(RESULT, separators=(",", ":")))

    cases = [
        Case(workload, "spanhooks", spanhooks_tree, pipe.check(3), 3),
        Case(workload, "raw SDK", raw_tree, raw.check(3), 3),
    ]
    with contextlib.suppress(ImportError):
        cases.append(_langchain_tree(workload))
    return cases


def _langchain_tree(workload: str) -> Case:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.callbacks import CallbackManager as LCManager

    pipe = Pipeline()

    class OTelHandler(BaseCallbackHandler):
        def __init__(self) -> None:
            self.spans: dict[uuid.UUID, tuple[trace.Span, Any]] = {}

        def _open(self, name: str, run_id: uuid.UUID, parent_run_id: uuid.UUID | None) -> None:
            parent = self.spans.get(parent_run_id) if parent_run_id else None
            ctx = trace.set_span_in_context(parent[0]) if parent else None
            self.spans[run_id] = (pipe.tracer.start_span(name, context=ctx), None)

        def on_chain_start(
            self,
            serialized: dict[str, Any],
            inputs: Any,
            *,
            run_id: uuid.UUID,
            parent_run_id: uuid.UUID | None = None,
            **kw: Any,
        ) -> None:
            self._open(serialized["name"], run_id, parent_run_id)

        def on_tool_start(
            self,
            serialized: dict[str, Any],
            input_str: str,
            *,
            run_id: uuid.UUID,
            parent_run_id: uuid.UUID | None = None,
            **kw: Any,
        ) -> None:
            self._open(f"execute_tool {serialized['name']}", run_id, parent_run_id)

        def on_text(self, text: str, *, run_id: uuid.UUID, **kw: Any) -> None:
            self.spans[run_id][0].add_event("note", {"text": text})

        def on_chain_end(self, outputs: Any, *, run_id: uuid.UUID, **kw: Any) -> None:
            self.spans.pop(run_id)[0].end()

        on_tool_end = on_chain_end

    handler = OTelHandler()
    lc = LCManager(handlers=[handler], inheritable_handlers=[handler])

    def run() -> None:
        agent = lc.on_chain_start({"name": "invoke_agent planner"}, {})
        turn = agent.get_child().on_chain_start({"name": "turn"}, {})
        tool = turn.get_child().on_tool_start({"name": "search"}, "q")
        tool.on_text("thinking")
        tool.on_text("done")
        tool.on_tool_end(RESULT)
        turn.on_chain_end({})
        agent.on_chain_end({})

    return Case(workload, "langchain-core", run, pipe.check(3), 3)


def all_cases() -> list[Case]:
    """Every workload's cases, spanhooks first within each."""
    return [
        *w0_bare(),
        *w1_disabled(),
        *dispatch_cases(1),
        *dispatch_cases(5),
        *span_cases(),
        *tree_cases(),
    ]


def process_for_turn() -> SimpleNamespace:
    return SimpleNamespace(display_name="bench", model_name="m", provider="openai")


__all__ = [
    "SAME_OUTPUT",
    "Case",
    "CountingExporter",
    "Pipeline",
    "Verifier",
    "all_cases",
    "exporter_of",
    "span_shape",
    "spanhooks",
]
