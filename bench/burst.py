"""Threads emitting span pairs as fast as they can into the JSONL file: what reaches the file.

    python bench/burst.py                          # both paths, 16 threads, 1,000,000 spans each
    python bench/burst.py --mode local --spans 200000
    python bench/burst.py --smoke                  # both paths, small, exit 1 on a fault

Two paths to the same file, each in a fresh interpreter: ``local``, what ``spanhooks.setup()``
builds (the file's own writer thread, which never drops: ``LocalFileProcessor``), and ``batch``,
the previous design (the SDK's BatchSpanProcessor with its default queue of 2,048, accounted).
Each run reports spans produced, lines in the file, distinct span ids among them, what the
accounting says was dropped, the emit latency (every 64th emit timed: p50, p99), the wall time
and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SAMPLE_EVERY = 64
_SPAN_ID = re.compile(rb'"span_id":"([0-9a-f]{16})"')


def child(mode: str, threads: int, spans: int, path: str) -> dict[str, Any]:
    """Emit ``spans`` spans (one per start/end pair) from ``threads`` threads through
    ``mode``'s pipeline, then shut down and report what the accounting saw."""
    import spanhooks
    from spanhooks import CallbackEvent

    if mode == "local":
        telemetry = spanhooks.setup(jsonl_path=path, otlp_endpoint=None)
        accounted = telemetry.exporters[0]
        shutdown = telemetry.shutdown
    else:
        from opentelemetry.sdk.trace import TracerProvider

        from spanhooks.export.accounting import AccountedBatchProcessor, AccountedExporter
        from spanhooks.export.jsonl import JsonlSpanExporter

        provider = TracerProvider(shutdown_on_exit=False)
        accounted = AccountedExporter(JsonlSpanExporter(path), "jsonl")
        provider.add_span_processor(AccountedBatchProcessor(accounted))
        spanhooks.get_callback_manager().use_tracer_provider(provider)
        shutdown = provider.shutdown
    per_thread = spans // threads
    samples: list[list[int]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)
    emit, start, end = spanhooks.emit, CallbackEvent.TOOL_START, CallbackEvent.TOOL_END
    clock = time.perf_counter_ns

    def worker(n: int) -> None:
        name, mine = f"tool{n}", samples[n]
        barrier.wait()
        for index in range(per_thread):
            if index % SAMPLE_EVERY:
                emit(start, name, None)
                emit(end, name, None)
            else:
                began = clock()
                emit(start, name, None)
                emit(end, name, None)
                mine.append(clock() - began)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in workers:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in workers:
        thread.join()
    emitted = time.perf_counter() - began
    shutdown()
    wall = time.perf_counter() - began
    counts = accounted.counts()
    latencies = sorted(latency for mine in samples for latency in mine)
    return {
        "mode": mode,
        "threads": threads,
        "produced": per_thread * threads,
        "counts": counts,
        "pair_ns_p50": latencies[len(latencies) // 2],
        "pair_ns_p99": latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)],
        "emit_seconds": round(emitted, 2),
        "wall_seconds": round(wall, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def file_figures(path: Path) -> dict[str, int]:
    """Lines in the file and distinct span ids among them, read in chunks (files are large)."""
    lines = 0
    ids: set[bytes] = set()
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            chunk = tail + chunk
            cut = chunk.rfind(b"\n") + 1
            body, tail = chunk[:cut], chunk[cut:]
            lines += body.count(b"\n")
            ids.update(_SPAN_ID.findall(body))
    return {"lines": lines, "distinct_ids": len(ids), "torn_tail_bytes": len(tail)}


def run(mode: str, threads: int, spans: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "burst.jsonl"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
        done = subprocess.run(
            [sys.executable, __file__, "--child", mode, str(threads), str(spans), str(path)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=1800,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{mode} run failed:\n{done.stderr[-4000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        result.update(file_figures(path) if path.exists() else {"lines": 0, "distinct_ids": 0})
        result["lost"] = result["produced"] - result["lines"]
        return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("local", "batch", "both"), default="both")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--smoke", action="store_true", help="small runs; exit 1 on a fault")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, threads, spans, path = args.child
        print(json.dumps(child(mode, int(threads), int(spans), path)))
        return 0
    spans = 4_000 if args.smoke else args.spans
    modes = ("local", "batch") if args.mode == "both" else (args.mode,)
    problems = []
    for mode in modes:
        result = run(mode, args.threads, spans)
        print(json.dumps(result))
        if mode == "local" and (result["lost"] or result["distinct_ids"] != result["produced"]):
            problems.append(f"local: {result['lost']} lost")
    for problem in problems:
        print("PROBLEM", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
