"""``setup()``: one call (or the environment) that wires spanhooks into OpenTelemetry.

It builds a TracerProvider, or attaches to the SDK provider the application already set, and
adds the JSONL exporter, OTLP export when an endpoint is configured, and the span processor that
runs the user's span callbacks. The standard ``OTEL_*`` variables keep their meaning; spanhooks'
own are ``SPANHOOKS_ENABLED``, ``SPANHOOKS_JSONL_PATH``, ``SPANHOOKS_JSONL_FORMAT`` and
``SPANHOOKS_JSONL`` (``false`` turns the file off).

Flush policy: spans are batched by the SDK's BatchSpanProcessor and written every
``OTEL_BSP_SCHEDULE_DELAY`` milliseconds (5000 by default) or as soon as a batch of
``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` is ready, so a running process's file is at most that far
behind; shutdown and normal interpreter exit flush everything that finished.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client.registry import CollectorRegistry

from spanhooks._accounting import AccountedBatchProcessor, AccountedExporter, SpanMetricsProcessor
from spanhooks._attributes import AttributePolicy, Redactor, redact_pattern_from_env
from spanhooks._context import attach_parent_from_env
from spanhooks._jsonl import JsonlSpanExporter
from spanhooks._manager import CallbackManager, capture_content_from_env, env_flag
from spanhooks._metrics import install_collector
from spanhooks._multiprocess import MultiprocessMirror, multiprocess_dir
from spanhooks._multiprocess import registry as multiprocess_registry
from spanhooks._processors import CallbackSpanProcessor, IsolatedSpanProcessor
from spanhooks._server import MetricsServer, start_metrics_server
from spanhooks._signals import add_termination_hook

__all__ = [
    "Telemetry",
    "add_span_processor",
    "force_flush",
    "get_callback_manager",
    "setup",
    "shutdown",
]

logger = logging.getLogger("spanhooks")

_manager = CallbackManager()
_lock = threading.Lock()
_active: Telemetry | None = None
_atexit_registered = False


def get_callback_manager() -> CallbackManager:
    """The process-wide manager that the module-level functions (``spanhooks.emit``...) use."""
    return _manager


@dataclass
class Telemetry:
    """What :func:`setup` configured; keep it to flush or shut down explicitly."""

    tracer_provider: TracerProvider | None
    manager: CallbackManager
    jsonl_path: Path | None
    otlp_endpoint: str | None
    owns_provider: bool
    processors: list[SpanProcessor] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    """The resolved ``setup()`` arguments, so a spawned child process can repeat them."""
    registry: CollectorRegistry | None = None
    """Where spanhooks' metrics are collected (None unless metrics were asked for)."""
    metrics_server: MetricsServer | None = None
    mirror: MultiprocessMirror | None = None
    """Copies metrics to prometheus_client's multiprocess directory, when that mode is on."""
    exporters: list[AccountedExporter] = field(default_factory=list)
    _closed: bool = False

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every finished span now; True if every processor finished in time."""
        if self.mirror is not None:
            self.mirror.sync()
        ok = True
        for processor in self.processors:
            try:
                ok = bool(processor.force_flush(timeout_millis)) and ok
            except Exception:
                logger.exception("flushing %s failed", type(processor).__name__)
                ok = False
        return ok

    def shutdown(self) -> None:
        """Close open spans as abandoned, flush and stop the exporters. Idempotent."""
        global _active
        with _lock:
            if self._closed:
                return
            self._closed = True
            if _active is self:
                _active = None
        self.manager.close_open_spans("process exit")
        if self.metrics_server is not None:
            self.metrics_server.close()
        if self.mirror is not None:
            self.mirror.close()
        if self.owns_provider and self.tracer_provider is not None:
            self.tracer_provider.shutdown()
            return
        for processor in self.processors:
            try:
                processor.shutdown()
            except Exception:
                logger.exception("shutting down %s failed", type(processor).__name__)


def setup(
    *,
    service_name: str | None = None,
    jsonl: bool | None = None,
    jsonl_path: str | os.PathLike[str] | None = None,
    jsonl_format: str | None = None,
    otlp_endpoint: str | None = None,
    otlp_protocol: str | None = None,
    capture_content: bool | None = None,
    max_attribute_length: int | None = None,
    redactor: Redactor | None = None,
    redact_patterns: Iterable[str | re.Pattern[str]] | None = None,
    tracer_provider: TracerProvider | None = None,
    span_processors: Iterable[SpanProcessor] = (),
    manager: CallbackManager | None = None,
    metrics_port: int | None = None,
    metrics_addr: str = "127.0.0.1",
    registry: CollectorRegistry | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Telemetry:
    """Configure tracing for spanhooks and return what was set up.

    Calling it again returns the active configuration unchanged (call ``shutdown()`` first to
    reconfigure). With ``OTEL_SDK_DISABLED=true`` no provider is built; callbacks still run.
    An existing SDK TracerProvider (global, or passed in) is reused, never replaced.

    Metrics: ``metrics_port`` (or ``SPANHOOKS_METRICS_PORT``) serves ``/metrics`` and
    ``/health`` on ``metrics_addr`` (127.0.0.1 unless you say otherwise; 0 picks a free port);
    ``registry`` collects them into your own ``CollectorRegistry`` instead of a private one.
    With ``PROMETHEUS_MULTIPROC_DIR`` set, every process mirrors its metrics into that directory
    and ``metrics_port`` serves the sum over all workers.

    Redaction, applied as attributes are built, before any processor or exporter sees them:
    ``redact_patterns`` (regular expressions; default ``SPANHOOKS_REDACT_PATTERN``) replace
    every match with ``[REDACTED]``, and ``redactor(key, value)`` returns the value to record or
    None to drop it; a redactor that raises drops the value (see :class:`AttributePolicy`).
    Pass a module-level function if children started with ``ProcessTarget`` must redact too.
    """
    global _active
    with _lock:
        if _active is not None:
            return _active
        target = manager or _manager
        policy = AttributePolicy(
            capture_content=capture_content_from_env()
            if capture_content is None
            else capture_content,
            max_length=max_attribute_length or _env_int("SPANHOOKS_MAX_ATTRIBUTE_LENGTH", 4096),
            redactor=redactor,
            redact_patterns=tuple(redact_patterns)
            if redact_patterns is not None
            else _env_patterns(),
        )
        target.set_attribute_policy(policy)
        if env_flag("OTEL_SDK_DISABLED", False):
            _active = Telemetry(None, target, None, None, owns_provider=False)
            return _active
        provider, owns = _provider(tracer_provider, service_name)
        telemetry = Telemetry(provider, target, None, None, owns_provider=owns)
        port = metrics_port if metrics_port is not None else _env_port()
        if multiprocess_dir() is not None:  # every worker mirrors; one serves the sum
            target.enable_metrics()
            _add(telemetry, SpanMetricsProcessor())
            telemetry.mirror = MultiprocessMirror()
            if port is not None:
                telemetry.registry = multiprocess_registry()
        elif port is not None or registry is not None:
            telemetry.registry = registry if registry is not None else CollectorRegistry()
            install_collector(telemetry.registry)
            target.enable_metrics()
            _add(telemetry, SpanMetricsProcessor())
        telemetry.settings = {
            "service_name": service_name,
            "jsonl": jsonl,
            "jsonl_path": os.fspath(jsonl_path) if jsonl_path is not None else None,
            "jsonl_format": jsonl_format,
            "otlp_endpoint": otlp_endpoint,
            "otlp_protocol": otlp_protocol,
            "capture_content": policy.capture_content,
            "max_attribute_length": policy.max_length,
            "redactor": redactor,
            "redact_patterns": policy.redact_patterns,
        }
        _add(telemetry, CallbackSpanProcessor(target.spans))
        if jsonl if jsonl is not None else env_flag("SPANHOOKS_JSONL", True):
            exporter = JsonlSpanExporter(
                jsonl_path,
                format=jsonl_format or os.environ.get("SPANHOOKS_JSONL_FORMAT", "spanhooks"),
            )
            telemetry.jsonl_path = exporter.path
            _add(telemetry, _accounted(telemetry, exporter, "jsonl"))
        endpoint = otlp_endpoint or _env_endpoint()
        if endpoint:
            _add(
                telemetry,
                _accounted(telemetry, _otlp_exporter(otlp_endpoint, otlp_protocol), "otlp"),
            )
            telemetry.otlp_endpoint = endpoint
        for processor in span_processors:
            _add(telemetry, IsolatedSpanProcessor(processor))
        target.use_tracer_provider(None if provider is trace.get_tracer_provider() else provider)
        attach_parent_from_env()
        if port is not None and telemetry.registry is not None:
            telemetry.metrics_server = start_metrics_server(
                telemetry.registry,
                port=port,
                addr=metrics_addr,
                health=_health,
                ssl_context=ssl_context,
            )
        _register_atexit()
        _active = telemetry
        return telemetry


def _provider(
    explicit: TracerProvider | None, service_name: str | None
) -> tuple[TracerProvider, bool]:
    if explicit is not None:
        return explicit, False
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current, False
    attributes = {SERVICE_NAME: service_name} if service_name else {}
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:  # another provider won the race
        provider.shutdown()
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            return current, False
    return provider, True


def _add(telemetry: Telemetry, processor: SpanProcessor) -> None:
    assert telemetry.tracer_provider is not None
    telemetry.tracer_provider.add_span_processor(processor)
    telemetry.processors.append(processor)


def _accounted(telemetry: Telemetry, exporter: SpanExporter, name: str) -> SpanProcessor:
    accounted = AccountedExporter(exporter, name)
    telemetry.exporters.append(accounted)
    return AccountedBatchProcessor(accounted)


def _env_port() -> int | None:
    raw = os.environ.get("SPANHOOKS_METRICS_PORT")
    return _env_int("SPANHOOKS_METRICS_PORT", 0) if raw else None


def _health() -> dict[str, Any]:
    from spanhooks.ops.health import get_health_monitor

    return get_health_monitor().get_health_status()


def _env_endpoint() -> str | None:
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )


def _otlp_exporter(endpoint: str | None, protocol: str | None) -> SpanExporter:
    """An OTLP exporter for ``protocol`` (``http/protobuf`` by default, or ``grpc``).

    An explicit HTTP endpoint is a base URL, like ``OTEL_EXPORTER_OTLP_ENDPOINT``; the
    ``/v1/traces`` path is added when missing.
    """
    chosen = (
        (
            protocol
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        )
        .strip()
        .lower()
    )
    if chosen == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=endpoint) if endpoint else GrpcExporter()
    if chosen not in ("http/protobuf", "http"):
        raise ValueError(f"unsupported OTLP protocol {chosen!r}: use 'http/protobuf' or 'grpc'")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    if endpoint:
        url = endpoint.rstrip("/")
        return HttpExporter(endpoint=url if url.endswith("/v1/traces") else url + "/v1/traces")
    return HttpExporter()


def _env_patterns() -> tuple[re.Pattern[str], ...]:
    pattern = redact_pattern_from_env()
    return (pattern,) if pattern is not None else ()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        logger.warning("ignoring %s=%r: expected an integer", name, raw)
        return default


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(shutdown)
        add_termination_hook(shutdown)  # SIGTERM skips atexit: flush there too
        _atexit_registered = True


def shutdown() -> None:
    """Flush and stop what :func:`setup` configured (also runs at normal interpreter exit)."""
    telemetry = _active
    if telemetry is not None:
        telemetry.shutdown()


def active() -> Telemetry | None:
    """The configuration :func:`setup` made in this process, if any."""
    return _active


def force_flush(timeout_millis: int = 30_000) -> bool:
    """Export every finished span now; True when done in time (or nothing is configured)."""
    telemetry = _active
    return telemetry.force_flush(timeout_millis) if telemetry is not None else True


def add_span_processor(processor: SpanProcessor) -> None:
    """Add a span processor of your own beside spanhooks' (isolated: it cannot break others).

    Requires :func:`setup` to have run.
    """
    telemetry = _active
    if telemetry is None or telemetry.tracer_provider is None:
        raise RuntimeError("call spanhooks.setup() before add_span_processor()")
    _add(telemetry, IsolatedSpanProcessor(processor))
