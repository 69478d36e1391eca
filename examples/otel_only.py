"""A program that knows only the OpenTelemetry API: no spanhooks import.

python -m spanhooks run examples/otel_only.py          # spans go to spanhooks-traces.jsonl
opentelemetry-instrument python examples/otel_only.py  # the same, through the instrumentor
"""

from __future__ import annotations

from opentelemetry import trace

tracer = trace.get_tracer("otel-only-example")

with tracer.start_as_current_span("handle request") as request:
    request.set_attribute("http.route", "/answer")
    with tracer.start_as_current_span("load profile"):
        pass
    with tracer.start_as_current_span("render"):
        pass
print("done")
