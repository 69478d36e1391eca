"""``setup()``: one call (or the environment) that wires spanhooks into OpenTelemetry.

It builds a TracerProvider, or attaches to the SDK provider the application already set, and
adds the JSONL exporter, OTLP export when an endpoint is configured, and the span processor that
runs the user's span callbacks. The standard ``OTEL_*`` variables keep their meaning; spanhooks'
own are ``SPANHOOKS_ENABLED``, ``SPANHOOKS_JSONL_PATH``, ``SPANHOOKS_JSONL_FORMAT`` and
``SPANHOOKS_JSONL`` (``false`` turns the file off).

Flush policy: the JSONL file is written by its own writer thread as soon as spans end, in one
write per group of spans that ended meanwhile, and never drops a span for lack of room
(:class:`~spanhooks.export.local_file.LocalFileProcessor`); OTLP export is batched by the SDK's
BatchSpanProcessor every ``OTEL_BSP_SCHEDULE_DELAY`` milliseconds (5000 by default) or as soon
as ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` spans are ready. Shutdown and normal interpreter exit
flush everything that finished.

Bounds with a slow, hanging or dead collector: emitting never waits for an exporter; an OTLP
export attempt (with the SDK's retries) gives up after ``otlp_timeout`` seconds
(:data:`EXPORT_TIMEOUT` unless ``OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT`` says otherwise);
``force_flush(timeout_millis)`` returns within its timeout, shared by every processor; and
shutdown, hence process exit, waits at most ``shutdown_timeout`` seconds
(:data:`SHUTDOWN_TIMEOUT`, or ``SPANHOOKS_SHUTDOWN_TIMEOUT``) for spanhooks' exporters and the
processors added through spanhooks together, then counts what it could not export as dropped.
The JSONL exporter is shut down first; the log records' pipeline (``OTEL_LOGS_EXPORTER``) last,
so that it carries the warnings of the others' shutdown, with what is left of the same time.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from prometheus_client.registry import CollectorRegistry

from spanhooks._version import __version__ as VERSION
from spanhooks.callbacks.manager import CallbackManager, get_callback_manager
from spanhooks.callbacks.processors import CallbackSpanProcessor, IsolatedSpanProcessor
from spanhooks.export.accounting import (
    AccountedBatchProcessor,
    AccountedExporter,
    SpanMetricsProcessor,
)
from spanhooks.export.jsonl import JsonlSpanExporter
from spanhooks.export.jsonl_logs import JsonlLogExporter
from spanhooks.export.local_file import LocalFileProcessor
from spanhooks.instrument.foreign import ForeignSpanBridge
from spanhooks.lifecycle import otlp
from spanhooks.lifecycle.logs import LogExport, start_event_export, start_log_export
from spanhooks.lifecycle.pipeline import Pipeline
from spanhooks.metrics.cost import Prices
from spanhooks.metrics.families import install_collector
from spanhooks.metrics.genai import GenAIMetricsProcessor
from spanhooks.metrics.multiprocess import MultiprocessMirror, multiprocess_dir
from spanhooks.metrics.multiprocess import registry as multiprocess_registry
from spanhooks.metrics.server import DEFAULT_MAX_CONNECTIONS, MetricsServer, start_metrics_server
from spanhooks.metrics.server import DEFAULT_TIMEOUT as DEFAULT_METRICS_TIMEOUT
from spanhooks.ops.health import get_health_monitor
from spanhooks.tracing.attributes import (
    AttributePolicy,
    ContentCapture,
    Redactor,
    content_capture,
    set_active_policy,
)
from spanhooks.tracing.content_events import ContentEvents
from spanhooks.tracing.context import attach_parent_from_env
from spanhooks.tracing.sessions import SessionSpanProcessor
from spanhooks.tracing.stacked import StackedSpans
from spanhooks.util import checks
from spanhooks.util.deadline import SharedDeadline
from spanhooks.util.env import env_flag, env_float, env_int
from spanhooks.util.redaction import installed_pattern, redact_pattern_from_env, scrub_data
from spanhooks.util.signals import add_termination_hook, remove_termination_hook

if TYPE_CHECKING:
    from opentelemetry.sdk._logs.export import LogRecordExporter

__all__ = [
    "Telemetry",
    "add_span_processor",
    "force_flush",
    "get_callback_manager",
    "setup",
    "shutdown",
    "uninstall",
]

logger = logging.getLogger("spanhooks")

SHUTDOWN_TIMEOUT = 3.0
"""Seconds shutdown (and so process exit) may wait for every exporter together."""

_lock = threading.Lock()
_active: Telemetry | None = None
_atexit_registered = False


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
    meter_provider: MeterProvider | None = None
    """The MeterProvider setup built for OTLP metric export, if it had to build one."""
    log_export: LogExport | None = None
    """spanhooks' own log records to the exporters ``OTEL_LOGS_EXPORTER`` names, if any."""
    event_export: LogExport | None = None
    """The GenAI content events (``EVENT_ONLY``, ``SPAN_AND_EVENT``), if captured."""
    pipeline: Pipeline | None = None
    """The one processor on the provider that holds all of the above."""
    policy: AttributePolicy | None = None
    """The manager's attribute policy before :func:`setup`, restored by :func:`uninstall`."""
    active_policy: AttributePolicy | None = None
    """The process-wide policy before :func:`setup`, restored by :func:`uninstall`."""
    shutdown_deadline: SharedDeadline = field(
        default_factory=lambda: SharedDeadline(SHUTDOWN_TIMEOUT)
    )
    """Shared by spanhooks' exporters: their shutdown together takes at most its seconds."""
    _closed: bool = False

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every finished span now; True if every processor finished in time.

        ``timeout_millis`` is one deadline for all processors together, kept even when an export
        hangs or a processor you added ignores its timeout.
        """
        if self.mirror is not None:
            self.mirror.sync()
        ends = time.monotonic() + timeout_millis / 1000
        ok = True
        for processor in self.processors:
            remaining = max(0, int((ends - time.monotonic()) * 1000))
            try:
                ok = bool(processor.force_flush(remaining)) and ok
            except Exception:
                logger.exception("flushing %s failed", type(processor).__name__)
                ok = False
        return ok

    def shutdown(self) -> None:
        """Close open spans as abandoned, flush and stop the exporters. Idempotent.

        spanhooks' exporters take at most ``shutdown_deadline.seconds`` together; spans they
        could not export by then are counted as dropped (``reason="shutdown"``).
        """
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
        if self.event_export is not None:  # while the JSONL file is still open
            self.event_export.flush(self.shutdown_deadline.remaining())
        if self.owns_provider and self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        else:
            for processor in self.processors:
                try:
                    processor.shutdown()
                except Exception:
                    logger.exception("shutting down %s failed", type(processor).__name__)
        if self.meter_provider is not None:  # last, with what is left of the same deadline
            try:
                self.meter_provider.shutdown(max(1, self.shutdown_deadline.remaining_millis()))
            except Exception as exc:  # e.g. no time left for the last metrics export
                logger.warning("the GenAI metrics were not all exported at shutdown: %s", exc)
        if self.event_export is not None:  # after the spans: the last calls' events go too
            self.event_export.close(self.shutdown_deadline.remaining())
        if self.log_export is not None:  # after the others: their shutdown warnings go too
            self.log_export.close(self.shutdown_deadline.remaining())


def setup(
    *,
    service_name: str | None = None,
    jsonl: bool | None = None,
    jsonl_path: str | os.PathLike[str] | None = None,
    jsonl_format: str | None = None,
    otlp_endpoint: str | None = None,
    otlp_protocol: str | None = None,
    capture_content: bool | str | ContentCapture | None = None,
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
    metrics_timeout: float | None = None,
    metrics_max_connections: int | None = None,
    otlp_timeout: float | None = None,
    shutdown_timeout: float | None = None,
    foreign_spans: bool | None = None,
    prices: Mapping[str, Mapping[str, float]] | None = None,
    stacked_spans: str | None = None,
) -> Telemetry:
    """Configure tracing for spanhooks and return what was set up.

    Calling it again returns the active configuration unchanged (call ``shutdown()`` first to
    reconfigure). With ``OTEL_SDK_DISABLED=true`` no provider is built; callbacks still run.
    An existing SDK TracerProvider (global, or passed in) is reused, never replaced.

    Metrics: ``metrics_port`` (or ``SPANHOOKS_METRICS_PORT``) serves ``/metrics`` and
    ``/health`` on ``metrics_addr`` (127.0.0.1 unless you say otherwise; 0 picks a free port);
    ``registry`` collects them into your own ``CollectorRegistry`` instead of a private one.
    With ``PROMETHEUS_MULTIPROC_DIR`` set, every process mirrors its metrics into that directory
    and ``metrics_port`` serves the sum over all workers. The server gives each client
    ``metrics_timeout`` seconds (5 by default, at most 3600) to send its request, TLS handshake
    included, and again to take the reply, and holds at most ``metrics_max_connections``
    connections (64 by default, 1 to 65,536) open at once, hence at most that many handler
    threads; connections it drops are counted in
    ``spanhooks_metrics_server_connections_dropped_total{reason}``. Both are ignored when no
    server is started.

    Logs: ``OTEL_LOGS_EXPORTER`` (``otlp``, ``console``, a comma-separated list of them, or
    ``none``, the default) exports spanhooks' own WARNING and ERROR records (those of the
    ``spanhooks`` logger) as OpenTelemetry log records, tied to the span current when they were
    logged, over OTLP as ``OTEL_EXPORTER_OTLP_[LOGS_]ENDPOINT``, ``_PROTOCOL`` and ``_TIMEOUT``
    say (``otlp_endpoint``, ``otlp_protocol`` and ``otlp_timeout`` apply too, but an endpoint
    alone never turns logs on). The application's other loggers are left alone.

    Faults: ``otlp_timeout`` bounds one OTLP export, retries included (:data:`EXPORT_TIMEOUT`
    seconds unless ``OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT`` is set); ``shutdown_timeout`` bounds
    shutdown and so process exit (:data:`SHUTDOWN_TIMEOUT` seconds, or
    ``SPANHOOKS_SHUTDOWN_TIMEOUT``), however many exporters or added processors hang.

    Spans of other instrumentations that follow the GenAI conventions reach the manager's
    callbacks as ``genai`` events (:class:`~spanhooks.ForeignSpanBridge`) unless
    ``foreign_spans`` (or ``SPANHOOKS_FOREIGN_SPANS``) is false.

    Cost: each model-call span with token usage gets ``gen_ai.usage.cost`` (USD) from
    ``prices`` (USD per million tokens, ``{"gpt-4o-mini": {"input": 0.15, "output": 0.6}}``,
    keys ``model`` or ``provider/model``) and, for models it does not name, ``genai-prices``
    when installed (see :mod:`spanhooks.metrics.cost`); ``SPANHOOKS_COST=false`` turns it off.

    Content (prompts, completions, tool arguments and results) is recorded only on opt-in:
    ``capture_content`` (or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``) is True or
    ``SPAN_ONLY`` for content on spans, ``EVENT_ONLY`` for the conventions'
    ``gen_ai.client.inference.operation.details`` log event only (to the JSONL file and, when
    spans go over OTLP, to the same endpoint's ``/v1/logs``), or ``SPAN_AND_EVENT`` for both
    (see :class:`~spanhooks.ContentCapture`).

    Stacked instrumentations: when another instrumentation's span describes the same model or
    tool call as the spanhooks span it is nested in (openai-v2 under ``@spanhooks.llm``), the
    two become one span (``stacked_spans="merge"``, the default) or are both kept and marked
    (``"keep"``; or ``SPANHOOKS_STACKED_SPANS``); metrics and cost count the call once either
    way (see :mod:`spanhooks.tracing.stacked`).

    Redaction, applied as attributes are built, before any processor or exporter sees them:
    ``redact_patterns`` (regular expressions; default ``SPANHOOKS_REDACT_PATTERN``) replace
    every match with ``[REDACTED]``, and ``redactor(key, value)`` returns the value to record or
    None to drop it; a redactor that raises drops the value (see :class:`AttributePolicy`).
    Pass a module-level function if children started with ``ProcessTarget`` must redact too.
    """
    global _active
    # bad values are refused here, before anything is set up
    mode = content_capture(capture_content)
    stacked = StackedSpans(  # raises for a mode it does not know
        stacked_spans or os.environ.get("SPANHOOKS_STACKED_SPANS", "").strip() or "merge"
    )
    _check_arguments(
        otlp_timeout,
        shutdown_timeout,
        metrics_port,
        max_attribute_length,
        metrics_timeout,
        metrics_max_connections,
        prices,
    )
    with _lock:
        if _active is not None:
            return _active
        target = manager or get_callback_manager()
        previous_policy = target.attribute_policy
        policy = AttributePolicy(
            capture_content=mode is not ContentCapture.NO_CONTENT,
            max_length=max_attribute_length or env_int("SPANHOOKS_MAX_ATTRIBUTE_LENGTH", 4096),
            redactor=redactor,
            redact_patterns=tuple(redact_patterns)
            if redact_patterns is not None
            else _env_patterns(),
        )
        target.set_attribute_policy(policy)
        previous_active = set_active_policy(policy)
        if env_flag("OTEL_SDK_DISABLED", False):
            _active = Telemetry(None, target, None, None, owns_provider=False)
            _active.policy, _active.active_policy = previous_policy, previous_active
            return _active
        provider, owns = _provider(tracer_provider, service_name)
        telemetry = Telemetry(provider, target, None, None, owns_provider=owns)
        telemetry.policy, telemetry.active_policy = previous_policy, previous_active
        telemetry.shutdown_deadline = SharedDeadline(
            shutdown_timeout or env_float("SPANHOOKS_SHUTDOWN_TIMEOUT", SHUTDOWN_TIMEOUT)
        )
        port = metrics_port if metrics_port is not None else _env_port()
        otlp_args = (otlp_endpoint, otlp_protocol, otlp_timeout)
        # First, so that what the rest of setup warns about is exported too.
        telemetry.log_export = start_log_export(
            provider.resource, otlp.exporters("LOGS", otlp_endpoint), otlp_args
        )
        # first: the others see the session's ids
        _add(telemetry, SessionSpanProcessor(), _price_table(prices), stacked)
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
        metric_exporters = otlp.exporters("METRICS", otlp_endpoint)
        if telemetry.registry is not None or metric_exporters:
            _add(telemetry, _genai_metrics(telemetry, metric_exporters, otlp_args))
        telemetry.settings = {
            "service_name": service_name,
            "jsonl": jsonl,
            "jsonl_path": os.fspath(jsonl_path) if jsonl_path is not None else None,
            "jsonl_format": jsonl_format,
            "otlp_endpoint": otlp_endpoint,
            "otlp_protocol": otlp_protocol,
            "capture_content": mode.value,
            "max_attribute_length": policy.max_length,
            "redactor": redactor,
            "redact_patterns": policy.redact_patterns,
            "foreign_spans": foreign_spans,
            "stacked_spans": stacked.mode,
        }
        _add(telemetry, CallbackSpanProcessor(target.spans))
        if (
            foreign_spans
            if foreign_spans is not None
            else env_flag("SPANHOOKS_FOREIGN_SPANS", True)
        ):
            _add(telemetry, ForeignSpanBridge(target))
        _add_exporters(telemetry, jsonl, jsonl_path, jsonl_format, otlp_args, mode)
        for processor in span_processors:
            _add(telemetry, IsolatedSpanProcessor(processor, telemetry.shutdown_deadline))
        target.use_tracer_provider(None if provider is trace.get_tracer_provider() else provider)
        attach_parent_from_env()
        if port is not None and telemetry.registry is not None:
            telemetry.metrics_server = start_metrics_server(
                telemetry.registry,
                port=port,
                addr=metrics_addr,
                health=_health,
                ssl_context=ssl_context,
                timeout=DEFAULT_METRICS_TIMEOUT if metrics_timeout is None else metrics_timeout,
                max_connections=DEFAULT_MAX_CONNECTIONS
                if metrics_max_connections is None
                else metrics_max_connections,
            )
        _register_atexit()
        _active = telemetry
        return telemetry


def _check_arguments(
    otlp_timeout: float | None,
    shutdown_timeout: float | None,
    metrics_port: int | None,
    max_attribute_length: int | None,
    metrics_timeout: float | None,
    metrics_max_connections: int | None,
    prices: Mapping[str, Mapping[str, float]] | None,
) -> None:
    """``ValueError`` for a number or price table :func:`setup` cannot use, before anything is
    set up."""
    Prices(prices, use_genai_prices=False)
    checks.seconds("otlp_timeout", otlp_timeout)
    checks.seconds("shutdown_timeout", shutdown_timeout)
    if metrics_port is not None:
        checks.count("metrics_port", metrics_port, limit=65_535)
    # The server's own bounds (start_metrics_server), checked here to name setup's argument.
    checks.seconds("metrics_timeout", metrics_timeout, limit=3600)
    if metrics_max_connections is not None:
        checks.count("metrics_max_connections", metrics_max_connections, minimum=1, limit=65_536)
    if max_attribute_length is not None:
        checks.count("max_attribute_length", max_attribute_length, minimum=16)


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


def _price_table(prices: Mapping[str, Mapping[str, float]] | None) -> Prices | None:
    return Prices(prices) if env_flag("SPANHOOKS_COST", True) else None


def _add(
    telemetry: Telemetry,
    processor: SpanProcessor,
    prices: Prices | None = None,
    stacked: StackedSpans | None = None,
) -> None:
    assert telemetry.tracer_provider is not None
    if telemetry.pipeline is None:
        telemetry.pipeline = Pipeline(prices, stacked=stacked)
        telemetry.tracer_provider.add_span_processor(telemetry.pipeline)
    telemetry.pipeline.processors += (processor,)
    telemetry.processors.append(processor)


def _add_exporters(
    telemetry: Telemetry,
    jsonl: bool | None,
    jsonl_path: str | os.PathLike[str] | None,
    jsonl_format: str | None,
    otlp_args: tuple[str | None, str | None, float | None],
    mode: ContentCapture,
) -> None:
    """The JSONL file (unless turned off), the OTLP and console span exporters, and the
    content events of ``mode``."""
    jsonl_exporter = None
    if jsonl if jsonl is not None else env_flag("SPANHOOKS_JSONL", True):
        jsonl_exporter = _add_jsonl(telemetry, jsonl_path, jsonl_format)
    trace_exporters = otlp.exporters("TRACES", otlp_args[0])
    _add_trace_exporters(telemetry, trace_exporters, otlp_args)
    _content_events(telemetry, mode, jsonl_exporter, trace_exporters, otlp_args)


def _content_events(
    telemetry: Telemetry,
    mode: ContentCapture,
    jsonl_exporter: JsonlSpanExporter | None,
    trace_exporters: frozenset[str],
    otlp_args: tuple[str | None, str | None, float | None],
) -> None:
    """The GenAI content events of ``mode``: a logs pipeline to the JSONL file and, when spans
    go over OTLP, to the same endpoint; and the pipeline step that sends them (or, in
    ``EVENT_ONLY`` mode, leaves content off the spans). Nothing for the other modes."""
    if not mode.in_events:
        return
    assert telemetry.tracer_provider is not None and telemetry.pipeline is not None
    events_logger = sent = None
    if mode.in_events:
        resource = getattr(telemetry.tracer_provider, "resource", None) or Resource.create()
        telemetry.event_export = start_event_export(
            resource,
            cast("LogRecordExporter", JsonlLogExporter(jsonl_exporter))  # duck-typed
            if jsonl_exporter is not None
            else None,
            otlp_args if "otlp" in trace_exporters else None,
        )
        events_logger = telemetry.event_export.provider.get_logger("spanhooks.genai", VERSION)
        sent = telemetry.event_export.handed
    telemetry.pipeline.content_events = ContentEvents(mode, events_logger, sent)


def _add_jsonl(
    telemetry: Telemetry, path: str | os.PathLike[str] | None, file_format: str | None
) -> JsonlSpanExporter:
    """The local JSONL file, through the processor that never drops a span."""
    exporter = JsonlSpanExporter(
        path, format=file_format or os.environ.get("SPANHOOKS_JSONL_FORMAT", "spanhooks")
    )
    telemetry.jsonl_path = exporter.path
    accounted = AccountedExporter(exporter, "jsonl")
    telemetry.exporters.append(accounted)
    _add(telemetry, LocalFileProcessor(accounted, telemetry.shutdown_deadline))
    return exporter


def _add_trace_exporters(
    telemetry: Telemetry,
    exporters: frozenset[str],
    otlp_args: tuple[str | None, str | None, float | None],
) -> None:
    """OTLP and console span export, as ``OTEL_TRACES_EXPORTER`` (or an endpoint) chose."""
    if "otlp" in exporters:
        _add(telemetry, _accounted(telemetry, otlp.span_exporter(*otlp_args), "otlp"))
        telemetry.otlp_endpoint = otlp_args[0] or otlp.env_endpoint() or "(SDK default)"
    if "console" in exporters:
        _add(telemetry, _accounted(telemetry, ConsoleSpanExporter(), "console"))


def _accounted(telemetry: Telemetry, exporter: SpanExporter, name: str) -> SpanProcessor:
    accounted = AccountedExporter(exporter, name)
    telemetry.exporters.append(accounted)
    return AccountedBatchProcessor(accounted, telemetry.shutdown_deadline)


def _genai_metrics(
    telemetry: Telemetry,
    exporters: frozenset[str],
    otlp_args: tuple[str | None, str | None, float | None],
) -> GenAIMetricsProcessor:
    """The GenAI metrics processor; with metric exporters chosen (OTLP, console), its metrics
    go there too, through the application's SDK MeterProvider or one built here (made global)."""
    provider = metrics.get_meter_provider()
    if not isinstance(provider, MeterProvider) and exporters:
        assert telemetry.tracer_provider is not None
        readers: list[MetricReader] = []
        if "otlp" in exporters:
            readers.append(PeriodicExportingMetricReader(otlp.metric_exporter(*otlp_args)))
        if "console" in exporters:
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
        owned = MeterProvider(
            metric_readers=readers,
            resource=telemetry.tracer_provider.resource,
            shutdown_on_exit=False,
        )
        metrics.set_meter_provider(owned)
        if metrics.get_meter_provider() is owned:
            telemetry.meter_provider = owned
        else:  # another provider won the race
            owned.shutdown()
        provider = metrics.get_meter_provider()
    return GenAIMetricsProcessor(provider)


def _env_port() -> int | None:
    raw = os.environ.get("SPANHOOKS_METRICS_PORT")
    return env_int("SPANHOOKS_METRICS_PORT", 0) if raw else None


def _health() -> dict[str, Any]:
    """The ``/health`` body: component names and check messages are application text, so
    they are scrubbed like everything else spanhooks serves."""
    status = get_health_monitor().get_health_status()
    pattern = installed_pattern()
    return status if pattern is None else cast(dict[str, Any], scrub_data(status, pattern))


def _env_patterns() -> tuple[re.Pattern[str], ...]:
    pattern = redact_pattern_from_env()
    return (pattern,) if pattern is not None else ()


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(shutdown)
        add_termination_hook(shutdown)  # SIGTERM skips atexit: flush there too
        _atexit_registered = True


def uninstall(telemetry: Telemetry) -> None:
    """Undo :func:`setup`: flush and stop its exporters and metrics server, take its
    processors off the provider, give the manager back its attribute policy, and remove its
    exit and SIGTERM hooks (restoring the previous SIGTERM handler).

    A TracerProvider that setup had to create stays the global one, since OpenTelemetry lets
    that be set only once, but nothing of spanhooks' runs on it any more.
    """
    global _atexit_registered
    telemetry.shutdown()
    if telemetry.pipeline is not None:
        telemetry.pipeline.processors = ()
    if telemetry.policy is not None:
        telemetry.manager.set_attribute_policy(telemetry.policy)
    if telemetry.active_policy is not None:
        set_active_policy(telemetry.active_policy)
    telemetry.manager.use_tracer_provider(None)
    with _lock:
        if _active is None and _atexit_registered:
            atexit.unregister(shutdown)
            remove_termination_hook(shutdown)
            _atexit_registered = False


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
    _add(telemetry, IsolatedSpanProcessor(processor, telemetry.shutdown_deadline))
