"""Peak RSS of N events through spanhooks' default pipeline or the raw SDK, in this process.

    python bench/rss.py spanhooks 1000000
    python bench/rss.py raw 1000000

Both write JSONL through a BatchSpanProcessor with its default (bounded) queue, so the figure
compares what the instrumentation itself keeps alive. Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
from pathlib import Path


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    """This interpreter's peak RSS: ``VmHWM``, which starts afresh at ``exec``. (``ru_maxrss``
    does not: a child of a large parent, ``bench/run.py``, would report the parent's size.)"""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def main() -> None:
    mode, events = sys.argv[1], int(sys.argv[2])
    pairs = events // 2
    samples: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rss.jsonl"
        if mode == "spanhooks":
            import spanhooks
            from spanhooks import CallbackEvent

            telemetry = spanhooks.setup(jsonl_path=path)
            emit = spanhooks.emit
            for index in range(pairs):
                emit(CallbackEvent.TOOL_START, "search", {"q": 1})
                emit(CallbackEvent.TOOL_END, "search", "ok")
                if index % (pairs // 10 or 1) == 0:
                    samples.append(rss_mb())
            telemetry.shutdown()
        else:
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            from spanhooks import JsonlSpanExporter

            provider = TracerProvider(shutdown_on_exit=False)
            provider.add_span_processor(BatchSpanProcessor(JsonlSpanExporter(path)))
            tracer = provider.get_tracer("raw")
            for index in range(pairs):
                with tracer.start_as_current_span(
                    "execute_tool search",
                    attributes={
                        "gen_ai.tool.name": "search",
                        "gen_ai.operation.name": "execute_tool",
                    },
                ):
                    pass
                if index % (pairs // 10 or 1) == 0:
                    samples.append(rss_mb())
            provider.shutdown()
        exported = sum(1 for _ in path.open())
    peak = peak_rss_mb()
    print(
        json.dumps(
            {
                "mode": mode,
                "events": events,
                "spans": pairs,
                "exported": exported,
                "peak_rss_mb": peak,
                "rss_mb_samples": samples,
            }
        )
    )


if __name__ == "__main__":
    main()
