"""What a framework integration costs per model call and per tool call, against the same
framework uninstrumented and against OpenInference's instrumentor for it, in one run.

    python bench/integrations.py            # full run, writes bench/results-integrations.json
    python bench/integrations.py --quick    # one round
    python bench/integrations.py --smoke    # each call a few times, correctness only (tests)

Each framework's workloads live in ``bench/frameworks/<name>.py`` (``VARIANTS``,
``prepare(variant)`` returning ``{"model call": fn, "tool call": fn}``). Instrumentations patch
process-wide hooks, so every (framework, variant) runs in a child process of its own, with a
global TracerProvider exporting through a BatchSpanProcessor to a counting exporter; rounds
shuffle the variants, so a noisy neighbour slows them alike. A child reports per call the median
of its batches, and the spans started and exported: a row whose exported count is short says so.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

HERE = Path(__file__).resolve().parent
FRAMEWORKS = ("langchain", "llamaindex", "openai_agents", "dspy")
WORKLOADS = ("model call", "tool call")
BATCH_SECONDS = 0.25


class _Counting(SpanExporter, SpanProcessor):
    """Counts spans started (as a processor) and exported (as the exporter)."""

    def __init__(self) -> None:
        self.started = 0
        self.exported = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started += 1

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


def child(framework: str, variant: str, batches: int, smoke: bool) -> dict[str, Any]:
    counting = _Counting()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(counting)
    batch = BatchSpanProcessor(counting, max_queue_size=1 << 20)
    provider.add_span_processor(batch)
    trace.set_tracer_provider(provider)
    sys.path.insert(0, str(HERE))
    module = importlib.import_module(f"frameworks.{framework}")
    calls = module.prepare(variant)
    rows: dict[str, Any] = {}
    for workload in WORKLOADS:
        fn = calls[workload]
        before = counting.started
        batch.force_flush()
        exported_before = counting.exported
        for _ in range(1 if smoke else 10):  # warm caches, lazy imports, connection pools
            fn()
        units = 1 if smoke else _calibrate(fn)
        samples = []
        for _ in range(1 if smoke else batches):
            start = time.perf_counter_ns()
            for _ in range(units):
                fn()
            samples.append((time.perf_counter_ns() - start) / units)
        batch.force_flush()
        rows[workload] = {
            "median_ns": statistics.median(samples),
            "calls_per_batch": units,
            "spans_started": counting.started - before,
            "spans_exported": counting.exported - exported_before,
        }
    return rows


def _calibrate(fn: Any) -> int:
    units = 1
    while True:
        start = time.perf_counter()
        for _ in range(units):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed > BATCH_SECONDS / 4 or units >= 1 << 16:
            return max(1, int(units * BATCH_SECONDS / max(elapsed, 1e-9)))
        units *= 2


def variants_of(framework: str) -> tuple[str, ...]:
    """The variants a framework's module offers, asked of a child (importing it here would
    import the framework and its instrumentors into the parent)."""
    done = subprocess.run(
        [sys.executable, __file__, "--variants", framework],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        return ()
    return tuple(json.loads(done.stdout))


def run_child(framework: str, variant: str, batches: int, smoke: bool) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", framework, variant, str(batches)]
    if smoke:
        argv.append("--smoke")
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{framework} / {variant} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round")
    parser.add_argument("--smoke", action="store_true", help="correctness only")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--framework", action="append", choices=FRAMEWORKS)
    parser.add_argument("--child", nargs=3, metavar=("FRAMEWORK", "VARIANT", "BATCHES"))
    parser.add_argument("--variants", metavar="FRAMEWORK")
    args = parser.parse_args()
    if args.variants:
        sys.path.insert(0, str(HERE))
        print(json.dumps(importlib.import_module(f"frameworks.{args.variants}").VARIANTS))
        return 0
    if args.child:
        framework, variant, batches = args.child
        print(json.dumps(child(framework, variant, int(batches), args.smoke)))
        return 0
    rounds = 1 if args.quick or args.smoke else args.rounds
    rng = random.Random(7)
    samples: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    problems: list[str] = []
    for framework in args.framework or FRAMEWORKS:
        variants = variants_of(framework)
        if not variants:
            print(f"{framework}: not installed, skipped")
            continue
        for _ in range(rounds):
            order = list(variants)
            rng.shuffle(order)
            for variant in order:
                result = run_child(framework, variant, args.batches, args.smoke)
                for workload, row in result.items():
                    samples.setdefault((framework, workload, variant), []).append(row)
                    if row["spans_exported"] != row["spans_started"]:
                        problems.append(
                            f"{framework} / {workload} / {variant}: exported "
                            f"{row['spans_exported']} of {row['spans_started']} spans"
                        )
    rows = summarise(samples)
    if args.smoke:
        print(f"smoke: {len(samples)} cases, {len(problems)} problems")
        for problem in problems:
            print("  " + problem)
        return 1 if problems else 0
    print_table(rows)
    for problem in problems:
        print("LOST: " + problem)
    out = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "rounds": rounds,
        "rows": rows,
        "problems": problems,
    }
    (HERE / "results-integrations.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


def summarise(samples: dict[tuple[str, str, str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per (framework, workload, variant): the median over rounds, the time added to
    the uninstrumented call and the spans started and exported in all rounds."""
    medians = {key: statistics.median(r["median_ns"] for r in rs) for key, rs in samples.items()}
    rows = []
    for (framework, workload, variant), runs in samples.items():
        bare = medians.get((framework, workload, "uninstrumented"))
        median = medians[(framework, workload, variant)]
        rows.append(
            {
                "framework": framework,
                "workload": workload,
                "variant": variant,
                "median_us": round(median / 1000, 1),
                "added_us": round((median - bare) / 1000, 1) if bare is not None else None,
                "ratio": round(median / bare, 2) if bare else None,
                "spans_started": sum(r["spans_started"] for r in runs),
                "spans_exported": sum(r["spans_exported"] for r in runs),
            }
        )
    order = {"uninstrumented": 0, "spanhooks": 1, "openinference": 2}
    rows.sort(key=lambda r: (r["framework"], r["workload"], order.get(r["variant"], 9)))
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    header = ("framework", "workload", "variant", "us/call", "added us", "ratio", "spans")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        spans = f"{r['spans_exported']}/{r['spans_started']}"
        added = "" if r["added_us"] is None else f"{r['added_us']:+.1f}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        cells = (r["framework"], r["workload"], r["variant"], f"{r['median_us']:.1f}", added)
        print("| " + " | ".join((*cells, ratio, spans)) + " |")


if __name__ == "__main__":
    sys.exit(main())
