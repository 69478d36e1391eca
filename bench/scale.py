"""Scale figures: spans per second per core, end to end, through ``spanhooks.setup()``.

    python bench/scale.py             # full run (a few minutes), writes bench/results-scale.json
    python bench/scale.py --quick     # one round, fewer spans
    python bench/scale.py --smoke     # every row once, a few spans; exit 1 on a lost span

Two paths, each row in a fresh interpreter with the real ``setup()``:

- ``jsonl``: ``setup(jsonl_path=..., otlp_endpoint=None)``, the default local file (its writer
  thread, which holds emitters back rather than drop a span);
- ``otlp``: ``setup(jsonl=False, otlp_endpoint=...)``, OTLP/HTTP (protobuf) through setup's
  accounted BatchSpanProcessor, the SDK's defaults (a queue of 2,048 that drops when full), to
  a real receiver in this process on 127.0.0.1 (the reliability tests' ``Sink``, which decodes
  every request and keeps the span ids);
- ``otlp-bigq``: the same with ``OTEL_BSP_MAX_QUEUE_SIZE`` large enough for every span of the
  row and a shutdown deadline long enough to send them all: what a span costs end to end when
  none is dropped.

Rows: 1, 4 and 16 emitting threads (10 attributes, depth 1); 1, 10 and 100 attributes per span
(1 thread, depth 1); nesting depth 1, 10 and 100 (1 thread, 10 attributes: a unit is ``depth``
nested starts, then their ends). Each span is one start/end pair of a declared event whose
extractor returns the attributes. A row's clock runs from the emitters' start to the return of
``shutdown()``, when every span has been written or sent (or counted as dropped); its CPU time
is the child's (every thread: emitters, writer, exporter; the receiver runs in this process,
outside it). Per row: spans made and spans arrived (distinct span ids in the file or at the
receiver), the accounting's drops by reason, spans made and spans arrived per second of wall
time, spans made per CPU-second ("per core") and CPU us per span made. Rounds are interleaved
in a shuffled order; rates are medians over rounds, counts are sums.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "reliability"))

from _proxy import Sink  # noqa: E402 - the tests' receiver, found through the path above

PATHS = ("jsonl", "otlp", "otlp-bigq")
THREADS = (1, 4, 16)
ATTRIBUTES = (1, 10, 100)
DEPTHS = (1, 10, 100)
BASE_ATTRIBUTES = 10
_SPAN_ID = re.compile(rb'"span_id":"([0-9a-f]{16})"')


def shapes() -> list[dict[str, Any]]:
    """The distinct (threads, attributes, depth) rows, each with the series it belongs to."""
    rows: dict[tuple[int, int, int], list[str]] = {}
    for threads in THREADS:
        rows.setdefault((threads, BASE_ATTRIBUTES, 1), []).append("threads")
    for attributes in ATTRIBUTES:
        rows.setdefault((1, attributes, 1), []).append("attributes")
    for depth in DEPTHS:
        rows.setdefault((1, BASE_ATTRIBUTES, depth), []).append("depth")
    return [
        {"threads": t, "attributes": a, "depth": d, "series": series}
        for (t, a, d), series in rows.items()
    ]


CHILD = """
import json, sys, threading, time
import spanhooks
from spanhooks import EventSet, end, start

path, target, threads, attributes, depth, units = sys.argv[1:7]
threads, attributes, depth, units = int(threads), int(attributes), int(depth), int(units)
values = {f"scale.attr_{index}": f"value {index}" if index % 2 else index
          for index in range(attributes)}
SCALE = EventSet("scale", [
    start("step_start", "level", span_name="step", extract=lambda bound: values,
          record_args=False),
    end("step_end"),
])
if path == "jsonl":
    telemetry = spanhooks.setup(jsonl_path=target, otlp_endpoint=None)
else:  # otlp-bigq: the queue comes from OTEL_BSP_MAX_QUEUE_SIZE, set by the parent
    telemetry = spanhooks.setup(jsonl=False, otlp_endpoint=target, shutdown_timeout=1800)
telemetry.manager.declare(SCALE)
emit = telemetry.manager.emit
(accounted,) = [e for e in telemetry.exporters if e.name == path.split("-")[0]]
for level in range(depth):  # warm-up, outside the figures: first calls, the connection
    emit("step_start", level)
for level in range(depth):
    emit("step_end")
telemetry.force_flush()
warm = accounted.counts()
barrier = threading.Barrier(threads + 1)

def worker():
    barrier.wait()
    for _ in range(units):
        for level in range(depth):
            emit("step_start", level)
        for level in range(depth):
            emit("step_end")

workers = [threading.Thread(target=worker) for _ in range(threads)]
for thread in workers:
    thread.start()
barrier.wait()
wall, cpu = time.perf_counter(), time.process_time()
for thread in workers:
    thread.join()
emitted = time.perf_counter() - wall
telemetry.shutdown()
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
counts = {key: value - warm.get(key, 0) for key, value in accounted.counts().items()}
print(json.dumps({"made": threads * units * depth, "warm_up": depth, "counts": counts,
                  "wall_s": wall, "emit_s": emitted, "cpu_s": cpu}))
"""


def _env(path: str, spans: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    if path == "otlp-bigq":
        env["OTEL_BSP_MAX_QUEUE_SIZE"] = str(spans + 1_000)
    return env


def _file_ids(path: Path) -> tuple[int, set[bytes]]:
    """Lines in the file and the distinct span ids among them, read in chunks."""
    lines, ids, tail = 0, set(), b""
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            chunk = tail + chunk
            cut = chunk.rfind(b"\n") + 1
            body, tail = chunk[:cut], chunk[cut:]
            lines += body.count(b"\n")
            ids.update(_SPAN_ID.findall(body))
    return lines, ids


def run_row(path: str, shape: dict[str, Any], spans: int) -> dict[str, Any]:
    """One row in a fresh interpreter; what it made, what arrived, and what it cost."""
    threads, depth = shape["threads"], shape["depth"]
    units = max(1, spans // (threads * depth))
    with tempfile.TemporaryDirectory() as tmp:
        sink = Sink() if path.startswith("otlp") else None
        target = f"http://127.0.0.1:{sink.port}" if sink else str(Path(tmp) / "scale.jsonl")
        try:
            args = [path, target, threads, shape["attributes"], depth, units]
            done = subprocess.run(
                [sys.executable, "-c", CHILD, *map(str, args)],
                capture_output=True,
                text=True,
                env=_env(path, threads * units * depth),
                check=False,
                timeout=1800,
            )
            if done.returncode != 0:
                raise RuntimeError(f"{path} {shape} failed:\n{done.stderr[-4000:]}")
            result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
            if sink is not None:  # received counts a span sent twice (a retry) twice
                received, arrived = len(sink.span_ids), len(sink.received())
            else:
                received, ids = _file_ids(Path(target))
                arrived = len(ids)
            received -= result["warm_up"]
            arrived -= result["warm_up"]
        finally:
            if sink is not None:
                sink.close()
    made = result["made"]
    return {
        "path": path,
        **{key: shape[key] for key in ("threads", "attributes", "depth")},
        "made": made,
        "arrived": arrived,
        "duplicates": received - arrived,
        "dropped": {k: result["counts"].get(k, 0) for k in ("queue_full", "export_failed")}
        | {"shutdown": result["counts"].get("shutdown", 0)},
        "wall_s": result["wall_s"],
        "emit_s": result["emit_s"],
        "cpu_s": result["cpu_s"],
    }


def summarise(samples: list[dict[str, Any]], shape: dict[str, Any], path: str) -> dict[str, Any]:
    made = sum(s["made"] for s in samples)
    arrived = sum(s["arrived"] for s in samples)
    dropped = {k: sum(s["dropped"][k] for s in samples) for k in samples[0]["dropped"]}
    return {
        "path": path,
        **{key: shape[key] for key in ("threads", "attributes", "depth", "series")},
        "rounds": len(samples),
        "made": made,
        "arrived": arrived,
        "lost": made - arrived,
        "dropped": dropped,
        "spans_per_second": round(statistics.median(s["made"] / s["wall_s"] for s in samples)),
        "arrived_per_second": round(statistics.median(s["arrived"] / s["wall_s"] for s in samples)),
        "spans_per_cpu_second": round(statistics.median(s["made"] / s["cpu_s"] for s in samples)),
        "cpu_us_per_span": round(
            statistics.median(1e6 * s["cpu_s"] / s["made"] for s in samples), 1
        ),
        "cpu_per_wall": round(statistics.median(s["cpu_s"] / s["wall_s"] for s in samples), 2),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'path':10} {'series':24} {'thr':>4} {'attrs':>5} {'depth':>5} {'made/s':>8} "
        f"{'arrived/s':>9} {'made/cpu-s':>10} {'cpu us/span':>11} {'cpu/wall':>8} {'made':>9} "
        f"{'arrived':>9}  dropped"
    )
    print(header)
    for row in rows:
        dropped = ", ".join(f"{k} {v:,}" for k, v in row["dropped"].items() if v) or "0"
        print(
            f"{row['path']:10} {'+'.join(row['series']):24} {row['threads']:>4} "
            f"{row['attributes']:>5} {row['depth']:>5} {row['spans_per_second']:>8,} "
            f"{row['arrived_per_second']:>9,} {row['spans_per_cpu_second']:>10,} "
            f"{row['cpu_us_per_span']:>11} "
            f"{row['cpu_per_wall']:>8} {row['made']:>9,} {row['arrived']:>9,}  {dropped}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spans", type=int, default=100_000, help="spans per row and round")
    parser.add_argument("--quick", action="store_true", help="1 round of 20,000 spans per row")
    parser.add_argument("--smoke", action="store_true", help="every row once; exit 1 on a loss")
    parser.add_argument("--out", default=str(HERE / "results-scale.json"))
    args = parser.parse_args()
    rounds, spans = args.rounds, args.spans
    if args.quick:
        rounds, spans = 1, 20_000
    if args.smoke:
        rounds, spans = 1, 1_600
    plan = [(path, index) for path in PATHS for index in range(len(shapes()))]
    samples: dict[tuple[str, int], list[dict[str, Any]]] = {key: [] for key in plan}
    rng = random.Random(17)
    for _ in range(rounds):
        order = list(plan)
        rng.shuffle(order)
        for path, index in order:
            shape = shapes()[index]
            # 100 attributes cost about ten times what 10 do: fewer spans, the same time.
            count = spans // 10 if shape["attributes"] >= 100 and not args.smoke else spans
            samples[path, index].append(run_row(path, shape, count))
    rows = [summarise(samples[key], shapes()[key[1]], key[0]) for key in plan]
    print_table(rows)
    problems = [
        f"{row['path']} threads={row['threads']} attributes={row['attributes']} "
        f"depth={row['depth']}: {row['lost']:,} of {row['made']:,} spans lost"
        for row in rows
        if row["lost"] and (row["path"] != "otlp" or args.smoke)
    ]
    if not args.smoke:
        machine = {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        }
        document = {"machine": machine, "rounds": rounds, "spans": spans, "rows": rows}
        Path(args.out).write_text(json.dumps(document, indent=2) + "\n")
    for problem in problems:
        print("problem:", problem)
    print(f"scale: {len(rows)} rows, {len(problems)} problems")
    if args.smoke:
        print(json.dumps(rows))  # for tests/test_bench_smoke.py
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
