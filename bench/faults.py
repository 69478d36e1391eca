"""Emit latency, exit delay and span accounting with the OTLP collector healthy, dead or hanging.

    python bench/faults.py            # full run (about two minutes), writes bench/faults.json
    python bench/faults.py --quick    # fewer rounds and one exit run per case
    python bench/faults.py --smoke    # one small round, spanhooks' exit only; writes nothing

A real OTLP/HTTP sink and the switchable loopback proxy from the reliability tests run in this
process; everything measured runs in child processes with the real ``spanhooks.setup()`` (or
the raw SDK), so the sink's threads never compete with the emitter for the GIL.

- **emit**: per-emit latency (a tool start and its end, each timed alone) through the default
  pipeline (JSONL + OTLP) with the proxy passing, refusing (dead: closed port) or hanging
  (accepts, never answers). Rounds are interleaved across the three; the table gives the median
  over rounds of each round's p50 and p99, and the accounting after shutdown.
- **exit**: seconds from a program's last span to its exit, for the raw SDK (TracerProvider +
  BatchSpanProcessor + OTLPSpanExporter, all defaults) and spanhooks, collector dead or hanging.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "reliability"))

from _proxy import collector  # noqa: E402 - the tests' helper, found through the path above

MODES = {"healthy": "pass", "dead": "refuse", "hanging": "hang"}

EMIT_CHILD = """
import gc, json, sys, time
import spanhooks
from spanhooks import CallbackEvent
telemetry = spanhooks.setup(otlp_endpoint=sys.argv[1], jsonl_path=sys.argv[3])
manager, pairs = telemetry.manager, int(sys.argv[2])
for index in range(200):  # warm-up: first-call costs, exporter connections
    manager.emit(CallbackEvent.TOOL_START, "search", {"q": index})
    manager.emit(CallbackEvent.TOOL_END, "search", "ok")
timings = []
clock = time.perf_counter_ns
gc.disable()
for index in range(pairs):
    started = clock()
    manager.emit(CallbackEvent.TOOL_START, "search", {"q": index})
    middle = clock()
    manager.emit(CallbackEvent.TOOL_END, "search", "ok")
    timings += (middle - started, clock() - middle)
gc.enable()
timings.sort()
started = time.monotonic()
spanhooks.shutdown()
shutdown_seconds = time.monotonic() - started
(otlp,) = [e for e in telemetry.exporters if e.name == "otlp"]
with open(sys.argv[3]) as jsonl:
    written = sum(1 for _ in jsonl)
print(json.dumps({
    "p50_us": timings[len(timings) // 2] / 1000,
    "p99_us": timings[int(len(timings) * 0.99)] / 1000,
    "shutdown_s": shutdown_seconds,
    "counts": otlp.counts(),
    "jsonl": written,
}))
"""

EXIT_SPANHOOKS = """
import sys
import spanhooks
from spanhooks import CallbackEvent
spanhooks.setup(otlp_endpoint=sys.argv[1], jsonl_path=sys.argv[3])
for index in range(int(sys.argv[2])):
    spanhooks.emit(CallbackEvent.TOOL_START, "search", {"q": index})
    spanhooks.emit(CallbackEvent.TOOL_END, "search", "ok")
print("ready", flush=True)
"""

EXIT_RAW = """
import sys
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
provider = TracerProvider()
exporter = OTLPSpanExporter(endpoint=sys.argv[1] + "/v1/traces")
provider.add_span_processor(BatchSpanProcessor(exporter))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("bench")
for index in range(int(sys.argv[2])):
    with tracer.start_as_current_span("execute_tool search"):
        pass
print("ready", flush=True)
"""

DROPPED = re.compile(
    r"otlp exporter dropped (\d+) spans \(export_failed=(\d+), queue_full=(\d+), shutdown=(\d+)\)"
)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}


def emit_round(endpoint: str, pairs: int, tmp: Path) -> dict[str, Any]:
    jsonl = tmp / "emit.jsonl"
    jsonl.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", EMIT_CHILD, endpoint, str(pairs), str(jsonl)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def exit_delay(script: str, endpoint: str, spans: int, tmp: Path) -> dict[str, Any]:
    """Seconds from the program's last span to its exit, and what spanhooks said it dropped."""
    jsonl = tmp / "exit.jsonl"
    jsonl.unlink(missing_ok=True)
    with subprocess.Popen(
        [sys.executable, "-c", script, endpoint, str(spans), str(jsonl)],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        ready = time.monotonic()
        _, stderr = child.communicate(timeout=300)
        seconds = time.monotonic() - ready
    dropped = [tuple(map(int, found)) for found in DROPPED.findall(stderr)]
    return {
        "exit_s": round(seconds, 3),
        "jsonl": sum(1 for _ in jsonl.open()) if jsonl.exists() else None,
        "dropped_logged": [
            dict(zip(("total", "export_failed", "queue_full", "shutdown"), d, strict=True))
            for d in dropped
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="correctness only, for the tests")
    options = parser.parse_args()
    rounds, pairs, exit_runs = (2, 2000, 1) if options.quick else (5, 5000, 2)
    exit_spans = 2000  # four batches of 512: the raw SDK's exit waits for each in turn
    exits = {"raw SDK": EXIT_RAW, "spanhooks": EXIT_SPANHOOKS}
    if options.smoke:  # the raw SDK's exit alone would take 30 s per case
        rounds, pairs, exit_runs, exits = 1, 200, 1, {"spanhooks": EXIT_SPANHOOKS}
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "emit": {mode: [] for mode in MODES},
        "exit": {},
    }
    with tempfile.TemporaryDirectory() as tmpdir, collector("pass") as (_, proxy):
        tmp = Path(tmpdir)
        for _round in range(rounds):
            for mode, proxy_mode in MODES.items():
                proxy.set_mode(proxy_mode)
                results["emit"][mode].append(emit_round(proxy.endpoint, pairs, tmp))
        for mode in ("dead", "hanging"):
            proxy.set_mode(MODES[mode])
            for name, script in exits.items():
                results["exit"][f"{name}, collector {mode}"] = [
                    exit_delay(script, proxy.endpoint, exit_spans, tmp) for _ in range(exit_runs)
                ]
    summary = summarise(results, pairs)
    results["summary"] = summary
    if options.smoke:
        print(json.dumps(summary))
    else:
        (HERE / "faults.json").write_text(json.dumps(results, indent=2) + "\n")


def summarise(results: dict[str, Any], pairs: int) -> dict[str, Any]:
    print(f"emit: {pairs * 2} emits per round, median over rounds (µs per emit)")
    header = f"{'collector':<10} {'p50':>7} {'p99':>7} {'p99 / healthy':>14}"
    print(header + "  accounting after shutdown")
    healthy_p99 = statistics.median(r["p99_us"] for r in results["emit"]["healthy"])
    summary: dict[str, Any] = {"emit": {}, "exit": {}}
    for mode, runs in results["emit"].items():
        p50 = statistics.median(r["p50_us"] for r in runs)
        p99 = statistics.median(r["p99_us"] for r in runs)
        last = runs[-1]["counts"]
        accounting = (
            f"produced {last['handed']}, exported {last['exported']}, dropped {last['dropped']} "
            f"(export_failed {last['export_failed']}, queue_full {last['queue_full']}, "
            f"shutdown {last['shutdown']}); jsonl {runs[-1]['jsonl']}; "
            f"shutdown {runs[-1]['shutdown_s']:.2f} s"
        )
        print(f"{mode:<10} {p50:>7.1f} {p99:>7.1f} {p99 / healthy_p99:>13.2f}x  {accounting}")
        summary["emit"][mode] = {
            "p50_us": round(p50, 2),
            "p99_us": round(p99, 2),
            "p99_ratio_to_healthy": round(p99 / healthy_p99, 3),
            "last_round_counts": last,
            "exact": all(
                r["counts"]["handed"] == r["counts"]["exported"] + r["counts"]["dropped"]
                for r in runs
            ),
        }
    print("\nexit: seconds from the last span to process exit (2000 spans)")
    for case, runs in results["exit"].items():
        worst = max(r["exit_s"] for r in runs)
        jsonl = runs[-1]["jsonl"]
        print(f"{case:<32} {worst:>6.2f} s" + (f"   jsonl {jsonl}" if jsonl is not None else ""))
        summary["exit"][case] = {"max_exit_s": worst, "jsonl": jsonl}
    return summary


if __name__ == "__main__":
    main()
