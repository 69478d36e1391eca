"""OTLP exporters for spans, metrics and logs, configured by arguments or the
``OTEL_EXPORTER_OTLP_*`` variables as the OpenTelemetry SDK reads them, with a shorter default
timeout.

Each protocol's exporter module is imported only when that protocol is chosen: the gRPC one
pulls in grpcio, which an HTTP-only deployment should not pay for at start-up. The SDK ships
its OTLP log exporters only in underscore modules (``..proto.http._log_exporter``,
``..proto.grpc._log_exporter``, as of SDK 1.45): there is no public name to import them by.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.trace.export import SpanExporter

from spanhooks.util.log import logger

if TYPE_CHECKING:
    import requests
    from opentelemetry.sdk._logs.export import LogRecordExporter

__all__ = [
    "EXPORTER_NAMES",
    "EXPORT_TIMEOUT",
    "NAMED_ONLY",
    "endpoint_configured",
    "env_endpoint",
    "exporters",
    "log_exporter",
    "metric_exporter",
    "protocol_of",
    "span_exporter",
]

EXPORTER_NAMES = ("otlp", "console", "none")
"""The values of ``OTEL_TRACES_EXPORTER``, ``OTEL_METRICS_EXPORTER`` and ``OTEL_LOGS_EXPORTER``
spanhooks acts on."""

NAMED_ONLY = frozenset({"LOGS"})
"""Signals that get no exporter unless ``OTEL_<SIGNAL>_EXPORTER`` names one: an endpoint alone
(in the environment or in code) turns on traces and metrics, never logs, so a program that sets
nothing new exports no log records (the SDK's own default without a distro is ``none``)."""

EXPORT_TIMEOUT = 3.0
"""Seconds one OTLP export may take, retries included, unless the OTEL_* variables say."""


def env_endpoint() -> str | None:
    """The OTLP traces endpoint the environment names, if any."""
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )


def span_exporter(
    endpoint: str | None, protocol: str | None, timeout: float | None = None
) -> SpanExporter:
    """An OTLP exporter for ``protocol`` (``http/protobuf`` by default, or ``grpc``).

    An explicit HTTP endpoint is a base URL, like ``OTEL_EXPORTER_OTLP_ENDPOINT``; the
    ``/v1/traces`` path is added when missing. One export, the SDK's retries with backoff
    included, gives up after ``timeout`` seconds (:data:`EXPORT_TIMEOUT` unless an
    ``OTEL_EXPORTER_OTLP_*TIMEOUT`` variable is set; the SDK's own default is 10).
    """
    timeout = _timeout(timeout, "TRACES")
    chosen = protocol_of(protocol, "TRACES")
    if chosen == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return (
            GrpcExporter(endpoint=endpoint, timeout=timeout)
            if endpoint
            else GrpcExporter(timeout=timeout)
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    if endpoint:
        url = endpoint.rstrip("/")
        return HttpExporter(
            endpoint=url if url.endswith("/v1/traces") else url + "/v1/traces",
            timeout=timeout,
            session=_session("TRACES"),
        )
    return HttpExporter(timeout=timeout, session=_session("TRACES"))


def _timeout(timeout: float | None, signal: str) -> float | None:
    """``timeout``, else None when ``OTEL_EXPORTER_OTLP_[signal_]TIMEOUT`` is set (the exporter
    reads it), else :data:`EXPORT_TIMEOUT`."""
    if timeout is None and not (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT")
    ):
        return EXPORT_TIMEOUT
    return timeout


def protocol_of(protocol: str | None, signal: str) -> str:
    """The OTLP protocol for ``signal`` (``TRACES``, ``METRICS``, ``LOGS``); ValueError if
    unsupported."""
    chosen = (
        (
            protocol
            or os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
            or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        )
        .strip()
        .lower()
    )
    if chosen not in ("grpc", "http/protobuf", "http"):
        raise ValueError(f"unsupported OTLP protocol {chosen!r}: use 'http/protobuf' or 'grpc'")
    return chosen


def metric_exporter(
    endpoint: str | None, protocol: str | None, timeout: float | None
) -> MetricExporter:
    """An OTLP metric exporter, configured like :func:`span_exporter` (``/v1/metrics``)."""
    timeout = _timeout(timeout, "METRICS")
    if protocol_of(protocol, "METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        if endpoint:
            return GrpcMetricExporter(endpoint=endpoint, timeout=timeout)
        return GrpcMetricExporter(timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    if endpoint:
        url = endpoint.rstrip("/").removesuffix("/v1/traces")
        return HttpMetricExporter(
            endpoint=url + "/v1/metrics", timeout=timeout, session=_session("METRICS")
        )
    return HttpMetricExporter(timeout=timeout, session=_session("METRICS"))


def log_exporter(
    endpoint: str | None, protocol: str | None, timeout: float | None
) -> LogRecordExporter:
    """An OTLP log record exporter, configured like :func:`span_exporter` (``/v1/logs``;
    ``OTEL_EXPORTER_OTLP_LOGS_*`` before ``OTEL_EXPORTER_OTLP_*``)."""
    timeout = _timeout(timeout, "LOGS")
    if protocol_of(protocol, "LOGS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
            OTLPLogExporter as GrpcLogExporter,
        )

        if endpoint:
            return GrpcLogExporter(endpoint=endpoint, timeout=timeout)
        return GrpcLogExporter(timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (
        OTLPLogExporter as HttpLogExporter,
    )

    if endpoint:
        url = endpoint.rstrip("/").removesuffix("/v1/traces")
        return HttpLogExporter(endpoint=url + "/v1/logs", timeout=timeout, session=_session("LOGS"))
    return HttpLogExporter(timeout=timeout, session=_session("LOGS"))


def _session(signal: str) -> requests.Session | None:
    """A :class:`ForkSafeSession` for an OTLP/HTTP exporter, unless the environment names a
    credential provider (``OTEL_PYTHON_EXPORTER_OTLP_HTTP_[signal_]CREDENTIAL_PROVIDER``), whose
    own session the exporter then loads."""
    if os.environ.get(f"OTEL_PYTHON_EXPORTER_OTLP_HTTP_{signal}_CREDENTIAL_PROVIDER") or (
        os.environ.get("OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER")
    ):
        return None
    from spanhooks.lifecycle.http_session import ForkSafeSession

    return ForkSafeSession()


def endpoint_configured(explicit: str | None) -> bool:
    """Whether spans go over OTLP: an endpoint given, or one in the environment."""
    return bool(explicit or env_endpoint())


def exporters(signal: str, explicit_endpoint: str | None = None) -> frozenset[str]:
    """The exporters ``signal`` (``TRACES``, ``METRICS``, ``LOGS``) gets: ``otlp``,
    ``console``, both or none.

    ``OTEL_<SIGNAL>_EXPORTER`` is read as the SDK reads it, a comma-separated list in which
    ``none`` names nothing; values spanhooks has no exporter for are logged and skipped. Unset,
    OTLP is used only when an endpoint is configured, so a program that names no collector does
    not try to reach one. An endpoint given in code (``setup(otlp_endpoint=...)``) always adds
    OTLP: code says more than the environment. Signals in :data:`NAMED_ONLY` (logs) take
    neither rule: they get exactly what their variable names.
    """
    raw = os.environ.get(f"OTEL_{signal}_EXPORTER", "")
    named_only = signal in NAMED_ONLY
    if not raw.strip():
        if named_only:
            return frozenset()
        return frozenset({"otlp"}) if endpoint_configured(explicit_endpoint) else frozenset()
    names = {name.strip().lower() for name in raw.split(",") if name.strip()}
    unknown = sorted(names - set(EXPORTER_NAMES))
    if unknown:
        logger.warning(
            "ignoring OTEL_%s_EXPORTER values %s: spanhooks exports to %s",
            signal,
            ", ".join(unknown),
            " or ".join(EXPORTER_NAMES),
        )
    chosen = names & {"otlp", "console"}
    return frozenset(chosen | ({"otlp"} if explicit_endpoint and not named_only else set()))
