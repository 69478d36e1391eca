"""What each step of a W4 span pair costs in time: spanhooks' steps against a hand-written floor.

    python bench/steps.py              # 15 interleaved rounds of 5,000 pairs per variant
    python bench/steps.py --rounds 5   # quicker
    python bench/steps.py --smoke      # each variant once, checking its span was exported

A diagnostic for work on the emit path, not a comparison with peers. "floor" is the pair that
spanhooks' emit performs for ``CallbackEvent.TOOL_START``/``TOOL_END``, written out by hand in
two functions: it binds the arguments, builds the attributes, names the span, opens it under
the current context with a frame, registers the frame, and at the end pairs, checks for a
failure, ends the span and restores the context. Each other variant puts one of spanhooks'
own steps back in place of its hand-written form; "spanhooks" is the real ``emit``. All run
in one process, interleaved in a shuffled order every round (a noisy machine then slows them
alike), with a SimpleSpanProcessor and a no-op exporter so that no export thread competes.
It reaches into spanhooks' internals on purpose and must follow them when they change.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry import context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from spanhooks import CallbackEvent, CallbackManager, __version__
from spanhooks.events.scope import scope_name
from spanhooks.tracing.attributes import coerce
from spanhooks.tracing.spans import _ENDED, FRAME_KEY, Frame, OpenSpans, failure_of, span_name
from spanhooks.vocab.llmproc import _tool_failure

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import ARGS, RESULT, CountingExporter

PAIRS = 5_000
STEPS = {
    "attribute plan at the start": "build",
    "attribute plan at the end": "build_end",
    "span naming": "name",
    "failure check wrapper": "failure",
    "open-span registry methods": "registry",
}


class _Pipeline:
    """A manager on a synchronous pipeline, warmed up, and the internals the floor uses."""

    def __init__(self) -> None:
        provider = TracerProvider(shutdown_on_exit=False)
        self.exporter = CountingExporter()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.manager = CallbackManager(tracer_provider=provider)
        self.manager.emit(CallbackEvent.TOOL_START, *ARGS)  # creates the tracer and the plans
        self.manager.emit(CallbackEvent.TOOL_END, ARGS[0], RESULT)
        self.tracer = provider.get_tracer(scope_name("llmproc"), __version__)
        self.policy = self.manager.attribute_policy
        self.registry = OpenSpans()
        self.start_spec = self.manager.spec(CallbackEvent.TOOL_START)
        self.end_spec = self.manager.spec(CallbackEvent.TOOL_END)


def _start(pipe: _Pipeline, steps: frozenset[str], *args: Any) -> str:
    spec, policy = pipe.start_spec, pipe.policy
    bound = dict(zip(spec.args, args))  # noqa: B905
    parent_ctx = context.get_current()
    parent = parent_ctx.get(FRAME_KEY)
    if "build" in steps:
        attributes = policy.build(spec, bound)
    else:
        attributes = {}
        value = coerce(bound.get("tool_name"), policy)
        if value is not None:
            attributes["gen_ai.tool.name"] = value
    attributes["gen_ai.operation.name"] = "execute_tool"
    if "name" in steps:
        name = span_name(spec, bound)
    else:
        name = "execute_tool {tool_name}".format_map(bound)
    span = pipe.tracer.start_span(
        name, context=parent_ctx, kind=SpanKind.INTERNAL, attributes=attributes
    )
    frame = Frame(
        spec,
        span,
        span.get_span_context().span_id,
        parent_ctx,
        parent if isinstance(parent, Frame) else None,
        bound.get("tool_name"),
    )
    context.attach(frame.ctx)
    if "registry" in steps:
        pipe.registry.add(frame)
    else:
        pipe.registry._frames[frame.span_id] = frame
    return frame.call_id


def _end(pipe: _Pipeline, steps: frozenset[str], *args: Any) -> None:
    spec = pipe.end_spec
    bound = dict(zip(spec.args, args))  # noqa: B905
    frame = context.get_current().get(FRAME_KEY)
    assert isinstance(frame, Frame) and frame.matches(spec, bound.get("tool_name"))
    if "build_end" in steps:
        pipe.policy.build(spec, bound)
    if "failure" in steps:
        failure_of(spec, bound)
    else:
        _tool_failure(bound.get("result"))
    frame.ended = True
    frame.span.end()
    if "registry" in steps:
        pipe.registry.discard(frame)
    else:
        pipe.registry._frames.pop(frame.span_id, None)
    ctx, frame.ctx = frame.ctx, _ENDED
    if context.get_current() is ctx:
        context.attach(frame.parent_ctx)


def variants(pipe: _Pipeline) -> dict[str, Callable[[], None]]:
    """The floor, the floor with each of spanhooks' steps put back, and spanhooks itself."""

    def pair(steps: frozenset[str]) -> Callable[[], None]:
        def run() -> None:
            _start(pipe, steps, *ARGS)
            _end(pipe, steps, ARGS[0], RESULT)

        return run

    def spanhooks_pair() -> None:
        pipe.manager.emit(CallbackEvent.TOOL_START, *ARGS)
        pipe.manager.emit(CallbackEvent.TOOL_END, ARGS[0], RESULT)

    found = {"floor": pair(frozenset())}
    for label, step in STEPS.items():
        found[f"+ {label}"] = pair(frozenset({step}))
    found["+ all five"] = pair(frozenset(STEPS.values()))
    found["spanhooks emit"] = spanhooks_pair
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--smoke", action="store_true", help="each variant once; exit 1 on a fault")
    args = parser.parse_args()
    pipe = _Pipeline()
    cases = variants(pipe)
    if args.smoke:
        problems = 0
        for name, run in cases.items():
            before = pipe.exporter.count
            run()
            if pipe.exporter.count != before + 1 or len(pipe.registry) != 0:
                problems += 1
                print(f"{name}: {pipe.exporter.count - before} spans, {len(pipe.registry)} open")
        print(f"smoke: {len(cases)} variants, {problems} problems")
        return 1 if problems else 0
    for run in cases.values():
        for _ in range(PAIRS):
            run()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    rng = random.Random(7)
    for _ in range(args.rounds):
        order = list(cases)
        rng.shuffle(order)
        for name in order:
            run = cases[name]
            gc.disable()
            try:
                started = time.perf_counter_ns()
                for _ in range(PAIRS):
                    run()
                samples[name].append((time.perf_counter_ns() - started) / PAIRS)
            finally:
                gc.enable()
    floor = statistics.median(samples["floor"])
    print(f"{'variant':32} {'median ns/pair':>15} {'vs floor':>10}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:32} {median:15,.0f} {median - floor:+10,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
