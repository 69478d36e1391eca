"""Run every workload for spanhooks and its peers in one process, interleaved, and report medians.

    python bench/run.py                # full run (a few minutes), writes bench/results.json
    python bench/run.py --quick        # fewer rounds, for a look
    python bench/run.py --smoke        # each case once, correctness only (used by the tests)

Rounds are interleaved: every round runs each case once, in a shuffled order, so a noisy
neighbour slows all of them alike; the table reports the median over rounds of the
per-unit time and its ratio to the bare call (W0). After each batch the case checks that
every span it produced was exported; the table gives, for every case that exports, the spans
it made and the spans that arrived over the measured batches (W6: in the files written).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import SAME_OUTPUT, Case, all_cases, exporter_of

HERE = Path(__file__).resolve().parent
BATCH_NS = 20_000_000  # aim for ~20 ms per batch


def calibrate(case: Case) -> int:
    """Units per batch for about ``BATCH_NS``. The case's first call (which may import or
    build what later calls reuse) is not a sample, and neither is a loop of fewer than 16
    units, which one collector pause could make look slow."""
    case.run()
    units = 1
    while True:
        start = time.perf_counter_ns()
        for _ in range(units):
            case.run()
        elapsed = time.perf_counter_ns() - start
        if (elapsed > BATCH_NS // 4 and units >= 16) or units >= 1 << 20:
            return max(1, int(units * BATCH_NS / max(elapsed, 1)))
        units *= 4


def measure(case: Case, units: int) -> float:
    run = case.run
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(units):
            run()
        elapsed = time.perf_counter_ns() - start
    finally:
        gc.enable()
    return elapsed / units


def run_cases(rounds: int, smoke: bool) -> tuple[list[dict[str, Any]], list[str]]:
    cases = all_cases()
    problems: list[str] = []
    if smoke:
        for case in cases:
            exporter = exporter_of(case)
            if exporter is not None:
                exporter.shapes = []
            case.run()
            problem = case.check(1)
            if problem:
                problems.append(f"{case.workload} / {case.name}: {problem}")
        problems.extend(_different_output(cases))
        for row in jsonl_throughput(spans=50, repeats=1):
            if row["spans_arrived"] != row["spans_made"]:
                problems.append(
                    f"{row['workload']} / {row['implementation']}: "
                    f"{row['spans_arrived']} of {row['spans_made']} spans arrived"
                )
        return [], problems
    units = {id(case): calibrate(case) for case in cases}
    for case in cases:
        case.check(0)  # reset the counters after calibration
        case.check(0)
    samples: dict[int, list[float]] = {id(case): [] for case in cases}
    rng = random.Random(7)
    for _ in range(rounds):
        order = list(cases)
        rng.shuffle(order)
        for case in order:
            samples[id(case)].append(measure(case, units[id(case)]))
            problem = case.check(units[id(case)])
            if problem:
                problems.append(f"{case.workload} / {case.name}: {problem}")
    bare = statistics.median(samples[id(cases[0])])
    rows = []
    for case in cases:
        median = statistics.median(samples[id(case)])
        rows.append(
            {
                "workload": case.workload,
                "implementation": case.name,
                "median_ns": round(median, 1),
                "min_ns": round(min(samples[id(case)]), 1),
                "ratio_to_bare": round(median / bare, 2),
                "units_per_batch": units[id(case)],
                "rounds": rounds,
                **_span_counts(case),
            }
        )
    return rows, problems


def _different_output(cases: list[Case]) -> list[str]:
    """A problem for each pair of :data:`peers.SAME_OUTPUT` whose exported spans differ: a
    bar compares equal work."""
    by_name = {(case.workload, case.name): case for case in cases}
    problems = []
    for workload, ours, theirs in SAME_OUTPUT:
        shapes = []
        for name in (ours, theirs):
            exporter = exporter_of(by_name[workload, name])
            shapes.append(sorted(map(repr, exporter.shapes or ())) if exporter else None)
        if not shapes[0] or shapes[0] != shapes[1]:
            problems.append(f"{workload}: {ours} and {theirs} export different spans: {shapes}")
    return problems


def _span_counts(case: Case) -> dict[str, int]:
    """Spans the case made and spans its exporter received over the measured batches, for
    a case that exports (its check is a :class:`peers.Verifier`); nothing for one that does
    not."""
    made, arrived = getattr(case.check, "made", None), getattr(case.check, "arrived", None)
    if made is None or arrived is None:
        return {}
    return {"spans_made": made, "spans_arrived": arrived}


def jsonl_throughput(spans: int = 5000, repeats: int = 5) -> list[dict[str, Any]]:
    """W6: spans per second written and flushed, JSONL exporter vs the SDK's console exporter."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from spanhooks import CallbackEvent, CallbackManager, JsonlSpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    manager = CallbackManager(tracer_provider=provider)
    for index in range(spans):
        manager.emit(CallbackEvent.TOOL_START, "search", {"q": index})
        manager.emit(CallbackEvent.TOOL_END, "search", {"hits": index})
    batch = list(memory.get_finished_spans())
    names = ("spanhooks JSONL", "SDK ConsoleSpanExporter", "spanhooks OTLP/JSON lines")
    results: dict[str, list[float]] = {name: [] for name in names}
    arrived = dict.fromkeys(names, 0)
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):
            suffixes = (f"a{repeat}.jsonl", f"c{repeat}.txt", f"o{repeat}.jsonl")
            files = dict(zip(names, suffixes, strict=True))
            jsonl = JsonlSpanExporter(Path(tmp) / files["spanhooks JSONL"])
            otlp = JsonlSpanExporter(Path(tmp) / files["spanhooks OTLP/JSON lines"], format="otlp")
            with open(Path(tmp) / files["SDK ConsoleSpanExporter"], "w") as out:
                console = ConsoleSpanExporter(out=out)
                for name, exporter in (
                    ("spanhooks JSONL", jsonl),
                    ("SDK ConsoleSpanExporter", console),
                    ("spanhooks OTLP/JSON lines", otlp),
                ):
                    start = time.perf_counter()
                    for chunk in range(0, len(batch), 512):  # BatchSpanProcessor's batch size
                        exporter.export(batch[chunk : chunk + 512])
                    exporter.force_flush()
                    results[name].append(len(batch) / (time.perf_counter() - start))
            jsonl.shutdown()
            otlp.shutdown()
            for name, file in files.items():
                arrived[name] += spans_in(Path(tmp) / file)
    return [
        {
            "workload": "W6 exporter throughput",
            "implementation": name,
            "spans_per_second": round(statistics.median(v)),
            "spans_made": len(batch) * repeats,
            "spans_arrived": arrived[name],
        }
        for name, v in results.items()
    ]


def spans_in(path: Path) -> int:
    """Spans written to ``path``: one per JSON document in it (a JSONL line, a console
    exporter's indented object), or every span of one that is an OTLP request."""
    text, decoder, index, count = path.read_text(), json.JSONDecoder(), 0, 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        document, index = decoder.raw_decode(text, index)
        if "resourceSpans" in document:
            count += sum(
                len(scope["spans"])
                for resource in document["resourceSpans"]
                for scope in resource["scopeSpans"]
            )
        else:
            count += 1
    return count


def rss(events: int) -> list[dict[str, Any]]:
    """Peak RSS of ``events`` events, each mode in a fresh interpreter."""
    rows = []
    for mode in ("spanhooks", "raw"):
        done = subprocess.run(
            [sys.executable, str(HERE / "rss.py"), mode, str(events)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(done.stdout))
    return rows


def print_table(
    rows: list[dict[str, Any]], throughput: list[dict[str, Any]], memory: list[dict[str, Any]]
) -> None:
    print(
        f"{'workload':36} {'implementation':30} {'median ns':>11} {'x bare':>8}"
        f" {'spans made':>12} {'arrived':>12}"
    )
    last = None
    for row in rows:
        if row["workload"] != last and last is not None:
            print()
        last = row["workload"]
        label = f"{row['workload']:36} {row['implementation']:30}"
        counts = (
            f" {row['spans_made']:>12,} {row['spans_arrived']:>12,}" if "spans_made" in row else ""
        )
        print(f"{label} {row['median_ns']:>11,.0f} {row['ratio_to_bare']:>8.2f}{counts}")
    print()
    for row in throughput:
        label = f"{row['workload']:36} {row['implementation']:30}"
        print(
            f"{label} {row['spans_per_second']:>11,} spans/s; arrived {row['spans_arrived']:,}"
            f" of {row['spans_made']:,} spans"
        )
    print()
    for row in memory:
        samples = ", ".join(f"{mb:.0f}" for mb in row["rss_mb_samples"])
        print(
            f"RSS {row['events']:,} events {row['mode']:10} peak {row['peak_rss_mb']:.1f} MB "
            f"(samples MB: {samples}); exported {row['exported']:,} of {row['spans']:,} spans"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="5 rounds, 200k events for RSS")
    parser.add_argument(
        "--smoke", action="store_true", help="each case once; exit 1 on a lost span"
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events for the RSS run")
    parser.add_argument("--out", default=str(HERE / "results.json"))
    args = parser.parse_args()
    if args.smoke:
        _, problems = run_cases(1, smoke=True)
        for problem in problems:
            print(problem)
        print(f"smoke: {len(all_cases())} cases ran, {len(problems)} problems")
        return 1 if problems else 0
    rounds = 5 if args.quick else args.rounds
    events = 200_000 if args.quick else args.events
    started = time.perf_counter()
    rows, problems = run_cases(rounds, smoke=False)
    throughput = jsonl_throughput()
    memory = rss(events)
    print_table(rows, throughput, memory)
    machine = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    Path(args.out).write_text(
        json.dumps(
            {
                "machine": machine,
                "rows": rows,
                "throughput": throughput,
                "rss": memory,
                "problems": problems,
            },
            indent=2,
        )
        + "\n"
    )
    print(
        f"\n{len(problems)} problems; {time.perf_counter() - started:.0f} s; results in {args.out}"
    )
    for problem in problems:
        print("problem:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
