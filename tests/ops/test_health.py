"""Health monitor: statuses, aggregation, debounced alerts, history, and the HTTP endpoint."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.registry import CollectorRegistry

from spanhooks.metrics.families import install_collector
from spanhooks.metrics.server import start_metrics_server
from spanhooks.ops import Alert, HealthMonitor
from spanhooks.testing import Capture


@pytest.fixture
def monitor() -> Iterator[HealthMonitor]:
    health = HealthMonitor(alert_debounce_seconds=0.0)
    yield health
    health.shutdown()


def settle(monitor: HealthMonitor, components: int, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = monitor.get_health_status()
        if (
            all(c["last_check"] for c in status["components"].values())
            and len(status["components"]) == components
        ):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.01)


def test_statuses_aggregate_worst_first_and_only_critical_fails_the_whole(
    monitor: HealthMonitor,
) -> None:
    monitor.register_health_check(
        "api", lambda: {"status": "healthy", "message": "ok"}, interval=60
    )
    monitor.register_health_check(
        "cache", lambda: {"status": "unhealthy"}, interval=60, critical=False
    )
    status = settle(monitor, 2)
    assert status["status"] == "degraded"  # a non-critical failure degrades
    monitor.register_health_check("db", lambda: False, interval=60, critical=True)
    status = settle(monitor, 3)
    assert status["status"] == "unhealthy"
    assert status["components"]["db"]["message"] == "check returned False"


def test_a_raising_or_hanging_check_is_unhealthy(monitor: HealthMonitor) -> None:
    release = threading.Event()

    def boom() -> None:
        raise RuntimeError("no route to host")

    monitor.register_health_check("raises", boom, interval=60)
    monitor.register_health_check("hangs", lambda: release.wait(5), interval=60, timeout=0.05)
    status = settle(monitor, 2)
    release.set()
    assert status["components"]["raises"]["status"] == "unhealthy"
    assert status["components"]["hangs"]["message"] == "check timed out"


def test_alert_callbacks_hear_status_changes_with_severity(monitor: HealthMonitor) -> None:
    alerts: list[Alert] = []
    got = threading.Event()

    def handle_alert(alert: Alert) -> None:
        alerts.append(alert)
        got.set()

    monitor.register_alert_callback(handle_alert)
    monitor.register_health_check(
        "payments", lambda: {"status": "unhealthy", "message": "503"}, interval=60, critical=True
    )
    assert got.wait(5)
    [alert] = alerts
    assert alert.severity.value == "critical" and alert.component == "payments"
    assert "unknown -> unhealthy" in alert.message


def test_alerts_are_debounced() -> None:
    monitor = HealthMonitor(alert_debounce_seconds=3600)
    flips = iter(["unhealthy", "healthy", "unhealthy", "healthy"] * 10)
    alerts: list[Alert] = []
    monitor.register_alert_callback(alerts.append)
    monitor.register_health_check("flappy", lambda: {"status": next(flips)}, interval=0.01)
    deadline = time.monotonic() + 5
    while len(monitor.get_history("flappy")) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    monitor.shutdown()
    assert len(monitor.get_history("flappy")) >= 6
    assert len(alerts) == 1  # one alert per hour per component, however often it flaps


def test_history_is_kept_and_filtered(monitor: HealthMonitor) -> None:
    monitor.register_health_check("queue", lambda: {"status": "healthy", "depth": 3}, interval=0.01)
    deadline = time.monotonic() + 5
    while len(monitor.get_history("queue")) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    [first, *_] = monitor.get_history("queue")
    assert first.details == {"depth": 3}
    assert monitor.get_history("other") == []


def test_the_health_endpoint_answers_200_or_503_with_the_json_status(
    monitor: HealthMonitor,
) -> None:
    server = start_metrics_server(install_and_registry(), port=0, health=monitor.get_health_status)
    try:
        monitor.register_health_check(
            "api", lambda: {"status": "degraded"}, interval=60, critical=True
        )
        settle(monitor, 1)
        with urllib.request.urlopen(f"{server.url}/health", timeout=5) as response:
            assert response.status == 200
            assert json.load(response)["status"] == "degraded"
        monitor.register_health_check(
            "db", lambda: {"status": "unhealthy"}, interval=60, critical=True
        )
        settle(monitor, 2)
        with pytest.raises(urllib.error.HTTPError) as failure:
            urllib.request.urlopen(f"{server.url}/health", timeout=5)
        assert failure.value.code == 503
        assert json.loads(failure.value.read())["status"] == "unhealthy"
        assert server.host == "127.0.0.1"
    finally:
        server.close()


def install_and_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    install_collector(registry)
    return registry


def spans_named(cap: Capture, name: str, count: int, timeout: float = 5.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(cap.spans(name)) < count:
        assert time.monotonic() < deadline, [s.name for s in cap.spans()]
        time.sleep(0.01)
    return cap.spans(name)


def test_each_check_is_a_span_with_its_status_and_an_alert_event(
    spanhooks_capture: Capture,
) -> None:
    results = iter([{"status": "healthy", "message": "API is responsive", "latency": 0.05}])
    alerts: list[Alert] = []
    health = HealthMonitor(alert_debounce_seconds=0.0, tracer_provider=spanhooks_capture.provider)
    try:
        health.register_alert_callback(alerts.append)
        health.register_health_check(
            "api",
            lambda: next(results, {"status": "unhealthy", "message": "API error: refused"}),
            interval=60,
            critical=True,
        )
        [first] = spans_named(spanhooks_capture, "health_check api", 1)
        health.run_check("api")
        first, second = spans_named(spanhooks_capture, "health_check api", 2)
    finally:
        health.shutdown()
    assert first.status.status_code.name == "UNSET"
    assert dict(first.attributes or {}) == {
        "spanhooks.polling.task": "api",
        "spanhooks.polling.outcome": "success",
        "health.component": "api",
        "health.status": "healthy",
        "health.critical": True,
        "health.message": "API is responsive",
    }
    assert [e.name for e in first.events] == ["health.status_change"]  # unknown -> healthy
    assert second.status.status_code.name == "ERROR"
    assert second.status.description == "API error: refused"
    assert dict(second.attributes or {})["health.status"] == "unhealthy"
    change, alert = second.events
    assert dict(change.attributes or {}) == {
        "health.component": "api",
        "health.status": "unhealthy",
        "health.previous_status": "healthy",
    }
    assert alert.name == "health.alert"
    assert dict(alert.attributes or {})["health.alert.severity"] == "critical"
    assert [a.severity.value for a in alerts] == ["critical"]
    assert second.instrumentation_scope is not None
    assert second.instrumentation_scope.name == "spanhooks.health"
