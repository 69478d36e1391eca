"""Health monitor: periodic checks per component, aggregation, debounced alerts, history.

Each check is a polling task (see :mod:`spanhooks.ops.polling`), so it runs with a timeout and
isolation like every other callback. A check returns ``{"status": "healthy" | "degraded" |
"unhealthy", "message": ..., ...}``, a bool, or a :class:`HealthStatus`; raising or timing out
counts as unhealthy. The overall status is the worst component status, except that only a
*critical* component can make the whole unhealthy (a non-critical one degrades it).

Alert callbacks run through the dispatch core when a component's status changes, at most once
per ``alert_debounce_seconds`` per component. History keeps every result for
``history_retention_hours``.

Every check is a ``health_check {component}`` span (tracer ``spanhooks.health``) with
``health.component``, ``health.critical``, ``health.status`` and ``health.message``; an
unhealthy result sets its status to ERROR (the message as description), a change of status is a
``health.status_change`` event and an alert a ``health.alert`` event (severity, previous and
new status, message), and the alert callbacks run inside that span. So the trace tells what
``/metrics`` and ``/health`` tell. The check's other details (latency...) are the
application's data and are not recorded; messages are scrubbed by the redaction patterns.

Threading contract: checks run on the polling pool; the state is guarded by one lock that is
never held while calling out.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode, TracerProvider
from prometheus_client.core import Metric

from spanhooks.callbacks.dispatch import Dispatcher
from spanhooks.metrics.families import (
    HEALTH_ALERTS,
    HEALTH_CHECK_CRITICAL,
    HEALTH_CHECK_DURATION_SECONDS,
    HEALTH_CHECKS,
    HEALTH_OVERALL,
    HEALTH_STATUS,
    counter,
    gauge,
    register_source,
)
from spanhooks.ops.polling import PollingManager
from spanhooks.tracing.attributes import active_policy
from spanhooks.tracing.bounds import MAX_STATUS_DESCRIPTION_LENGTH
from spanhooks.util import checks
from spanhooks.util.lazy import ProcessWide
from spanhooks.util.text import truncate

__all__ = [
    "Alert",
    "AlertSeverity",
    "HealthMonitor",
    "HealthResult",
    "HealthStatus",
    "get_health_monitor",
    "register_health_check",
]

_ALERTS = "alert"


class HealthStatus(str, Enum):
    """A component's or the whole system's health, from best to worst."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


_RANK = {
    HealthStatus.HEALTHY: 0,
    HealthStatus.UNKNOWN: 1,
    HealthStatus.DEGRADED: 2,
    HealthStatus.UNHEALTHY: 3,
}


class AlertSeverity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class HealthResult:
    """One check's outcome."""

    component: str
    status: HealthStatus
    message: str
    timestamp: float
    duration: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Alert:
    """A component changed status; what alert callbacks receive."""

    component: str
    severity: AlertSeverity
    message: str
    previous: HealthStatus
    current: HealthStatus
    critical: bool
    timestamp: float


@dataclass(eq=False)
class _Component:
    name: str
    critical: bool
    status: HealthStatus = HealthStatus.UNKNOWN
    last: HealthResult | None = None
    last_alert: float | None = None
    checks: dict[str, int] = field(default_factory=dict)


class HealthMonitor:
    """Registers health checks, keeps their latest results and history, raises alerts."""

    def __init__(
        self,
        *,
        alert_debounce_seconds: float = 30.0,
        history_retention_hours: float = 24.0,
        default_timeout: float = 10.0,
        max_history: int = 10_000,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        checks.seconds("alert_debounce_seconds", alert_debounce_seconds, zero=True)
        checks.seconds(
            "history_retention_hours",
            history_retention_hours,
            limit=checks.MAX_SECONDS / 3600,
            unit="hours",
        )
        checks.seconds("default_timeout", default_timeout)
        checks.count("max_history", max_history, minimum=1)
        self.alert_debounce_seconds = alert_debounce_seconds
        self.history_retention_hours = history_retention_hours
        self.default_timeout = default_timeout
        self._polling = PollingManager(
            name="health",
            on_result=self._record,
            metrics=False,
            span_prefix="health_check",
            tracer_provider=tracer_provider,
        )
        self._alerts: Dispatcher[str] = Dispatcher(name="health.alerts")
        self._lock = threading.Lock()
        self._components: dict[str, _Component] = {}
        self._history: deque[HealthResult] = deque(maxlen=max_history)
        self._alert_counts: dict[tuple[str, str], int] = {}
        self._started: dict[str, float] = {}
        register_source(self)

    def register_health_check(
        self,
        component: str,
        check_function: Callable[[], Any],
        interval: float = 60.0,
        critical: bool = False,
        *,
        timeout: float | None = None,
    ) -> None:
        """Check ``component`` every ``interval`` seconds; ``critical`` lets it fail the whole."""
        if not callable(check_function):
            raise TypeError(f"check_function must be callable, got {check_function!r}")
        checks.seconds("interval", interval)
        checks.seconds("timeout", timeout)
        with self._lock:
            if component in self._components:
                raise ValueError(f"a health check for {component!r} is already registered")
            self._components[component] = _Component(component, bool(critical))
        self._polling.register_polling_task(
            component,
            check_function,
            interval,
            timeout=timeout if timeout is not None else self.default_timeout,
            max_retries=0,
        )

    def unregister_health_check(self, component: str) -> bool:
        with self._lock:
            found = self._components.pop(component, None) is not None
        self._polling.unregister_polling_task(component)
        return found

    def register_alert_callback(
        self, callback: Callable[[Alert], Any], *, priority: int = 0, timeout: float | None = None
    ) -> int:
        """Call ``callback(alert)`` on status changes (sync or async); returns an id."""
        return self._alerts.add(
            callback, {_ALERTS: callback}, priority=priority, timeout=timeout
        ).id

    def unregister_alert_callback(self, callback_id: int) -> bool:
        return self._alerts.remove(callback_id)

    def run_check(self, component: str) -> None:
        """Run a component's check now instead of waiting for its interval."""
        self._polling.start_task(component)

    def shutdown(self, timeout: float = 5.0) -> None:
        self._polling.shutdown(timeout)

    # -- results ----------------------------------------------------------------------------

    def _record(self, component: str, result: Any, outcome: str) -> None:
        """One check's result (called inside its span): state, history, span, alert."""
        now = time.time()
        status, message, details = _interpret(result, outcome)
        entry = HealthResult(component, status, message, now, self._duration(component), details)
        alert: Alert | None = None
        with self._lock:
            state = self._components.get(component)
            if state is None:
                return
            previous = state.status
            state.status, state.last = status, entry
            state.checks[status.value] = state.checks.get(status.value, 0) + 1
            self._history.append(entry)
            self._expire(now)
            if status is not previous and self._may_alert(state, now):
                alert = _alert_for(state, previous, status, message, now)
                state.last_alert = now
                key = (component, alert.severity.value)
                self._alert_counts[key] = self._alert_counts.get(key, 0) + 1
            critical = state.critical
        span = trace.get_current_span()
        _trace_result(span, entry, previous, critical, alert)
        if alert is not None:
            routes = self._alerts.routes(_ALERTS)
            self._alerts.dispatch(
                routes, _ALERTS, (alert,), {}, span if span.is_recording() else None
            )

    def _duration(self, component: str) -> float | None:
        try:
            return self._polling.get_task_status(component)["last_duration"]  # type: ignore[no-any-return]
        except KeyError:
            return None

    def _may_alert(self, state: _Component, now: float) -> bool:
        if state.last_alert is None:
            return state.status is not HealthStatus.HEALTHY  # the first result alerts only if bad
        return now - state.last_alert >= self.alert_debounce_seconds

    def _expire(self, now: float) -> None:
        horizon = now - self.history_retention_hours * 3600
        while self._history and self._history[0].timestamp < horizon:
            self._history.popleft()

    # -- reports ------------------------------------------------------------------------------

    def get_health_status(self) -> dict[str, Any]:
        """The overall status and each component's latest result, as the application gave
        them (the ``/health`` body that :func:`spanhooks.setup` serves is scrubbed there)."""
        with self._lock:
            components = {
                name: {
                    "status": c.status.value,
                    "critical": c.critical,
                    "message": c.last.message if c.last else "not checked yet",
                    "last_check": c.last.timestamp if c.last else None,
                    "duration": c.last.duration if c.last else None,
                }
                for name, c in self._components.items()
            }
            overall = self._overall()
        return {"status": overall.value, "components": components, "timestamp": time.time()}

    def _overall(self) -> HealthStatus:
        worst = HealthStatus.HEALTHY
        for component in self._components.values():
            status = component.status
            if status is HealthStatus.UNHEALTHY and not component.critical:
                status = HealthStatus.DEGRADED
            if _RANK[status] > _RANK[worst]:
                worst = status
        return worst

    def get_history(
        self, component: str | None = None, since: float | None = None
    ) -> list[HealthResult]:
        """Results kept within the retention window, oldest first, optionally filtered."""
        with self._lock:
            return [
                r
                for r in self._history
                if (component is None or r.component == component)
                and (since is None or r.timestamp >= since)
            ]

    def metric_families(self) -> Iterable[Metric]:
        with self._lock:
            states = [
                ((c.name, s.value), float(c.status is s))
                for c in self._components.values()
                for s in HealthStatus
            ]
            overall = self._overall()
            checks = [
                ((c.name, k), float(v))
                for c in self._components.values()
                for k, v in c.checks.items()
            ]
            alerts = [(key, float(v)) for key, v in self._alert_counts.items()]
            critical = [((c.name,), float(c.critical)) for c in self._components.values()]
        yield gauge(
            HEALTH_STATUS,
            states,
        )
        yield gauge(
            HEALTH_OVERALL,
            [((s.value,), float(s is overall)) for s in HealthStatus],
        )
        yield gauge(
            HEALTH_CHECK_CRITICAL,
            critical,
        )
        yield counter(
            HEALTH_CHECKS,
            checks,
        )
        yield counter(
            HEALTH_ALERTS,
            alerts,
        )
        yield self._polling.durations.family(HEALTH_CHECK_DURATION_SECONDS)


def _interpret(result: Any, outcome: str) -> tuple[HealthStatus, str, Mapping[str, Any]]:
    if outcome == "timeout":
        return HealthStatus.UNHEALTHY, "check timed out", {}
    if outcome == "failure":
        return HealthStatus.UNHEALTHY, "check raised an exception", {}
    if isinstance(result, HealthStatus):
        return result, result.value, {}
    if isinstance(result, bool):
        return (
            (HealthStatus.HEALTHY, "ok", {})
            if result
            else (HealthStatus.UNHEALTHY, "check returned False", {})
        )
    if isinstance(result, Mapping):
        raw = str(result.get("status", "unknown")).lower()
        try:
            status = HealthStatus(raw)
        except ValueError:
            status = HealthStatus.UNKNOWN
        details = {k: v for k, v in result.items() if k not in ("status", "message")}
        return status, str(result.get("message", raw)), details
    return HealthStatus.UNKNOWN, f"unrecognised check result {type(result).__name__}", {}


def _trace_result(
    span: trace.Span,
    entry: HealthResult,
    previous: HealthStatus,
    critical: bool,
    alert: Alert | None,
) -> None:
    """Put one result on its check's span: ids and status always, a change and an alert as
    events; unhealthy is the span's ERROR status."""
    if not span.is_recording():
        return
    policy = active_policy()  # messages may quote what redaction must hide
    ids = {"health.component": entry.component, "health.status": entry.status.value}
    span.set_attributes(
        policy.recorded({**ids, "health.critical": critical, "health.message": entry.message})
    )
    if entry.status is not previous:
        change = {**ids, "health.previous_status": previous.value}
        span.add_event("health.status_change", policy.recorded(change))
    if alert is not None:
        raised = {
            **ids,
            "health.previous_status": alert.previous.value,
            "health.alert.severity": alert.severity.value,
            "health.alert.message": alert.message,
        }
        span.add_event("health.alert", policy.recorded(raised))
    if entry.status is HealthStatus.UNHEALTHY:
        description = truncate(policy.scrub(entry.message), MAX_STATUS_DESCRIPTION_LENGTH)
        span.set_status(Status(StatusCode.ERROR, description))


def _alert_for(
    state: _Component, previous: HealthStatus, current: HealthStatus, message: str, now: float
) -> Alert:
    if current is HealthStatus.UNHEALTHY:
        severity = AlertSeverity.CRITICAL if state.critical else AlertSeverity.WARNING
    elif current is HealthStatus.DEGRADED:
        severity = AlertSeverity.WARNING
    else:
        severity = AlertSeverity.INFO
    text = f"{state.name}: {previous.value} -> {current.value}: {message}"
    return Alert(state.name, severity, text, previous, current, state.critical, now)


_default = ProcessWide(HealthMonitor)


def get_health_monitor() -> HealthMonitor:
    """The process-wide health monitor (created on first use)."""
    return _default.get()


def register_health_check(
    component: str,
    check_function: Callable[[], Any],
    interval: float = 60.0,
    critical: bool = False,
    **options: Any,
) -> None:
    """Register a check on the process-wide monitor (seed 000's module-level function)."""
    get_health_monitor().register_health_check(
        component, check_function, interval, critical, **options
    )
