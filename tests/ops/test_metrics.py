"""/metrics: a real HTTP scrape of the running endpoint, parsed with prometheus_client's parser."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from spanhooks import CallbackEvent, CallbackManager, EventSet, point
from spanhooks.metrics import families as _metrics
from spanhooks.metrics.families import install_collector
from spanhooks.metrics.server import start_metrics_server


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        family.name: [(sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(text)
    }


def test_events_and_callback_errors_are_counted_exactly() -> None:
    registry = CollectorRegistry()
    install_collector(registry)
    manager = CallbackManager()
    manager.enable_metrics()

    def broken(text: str) -> None:
        raise ValueError("bug")

    manager.register(CallbackEvent.RESPONSE, broken, name="broken_response")
    for _ in range(7):
        manager.emit(CallbackEvent.RESPONSE, "x")
    server = start_metrics_server(registry, port=0)
    try:
        metrics = scrape(server.url)
    finally:
        server.close()
    events = {
        (labels["event_set"], labels["event"]): value
        for labels, value in metrics["spanhooks_events"]
    }
    assert events[("llmproc", "response")] == 7
    assert ({"callback": "broken_response"}, 7.0) in metrics["spanhooks_callback_errors"]
    counts = [
        value
        for labels, value in metrics["spanhooks_callback_duration_seconds"]
        if labels.get("le") == "+Inf" and labels["event"] == "response"
    ]
    assert counts == [7.0]


def test_events_declared_while_other_threads_emit_with_metrics_on_are_counted() -> None:
    manager = CallbackManager()
    manager.enable_metrics()
    sets = [EventSet(f"extra{i}", [point(f"ping{i}")]) for i in range(20)]
    failures: list[BaseException] = []

    def emit_every_declared_ping() -> None:
        try:
            for _ in range(200):
                for spec in manager.events():
                    if spec.name.startswith("ping"):
                        manager.emit(spec.name)
        except BaseException as exc:  # an emit must never raise, even mid-declare
            failures.append(exc)

    emitters = [threading.Thread(target=emit_every_declared_ping) for _ in range(4)]
    for thread in emitters:
        thread.start()
    for event_set in sets:
        manager.declare(event_set)
    for thread in emitters:
        thread.join()
    manager.emit("ping19")
    assert failures == []
    counted = {
        labels[1]: value
        for metric in manager.metric_families()
        if metric.name == "spanhooks_events"
        for labels, value in ((tuple(s.labels.values()), s.value) for s in metric.samples)
    }
    assert counted["ping19"] >= 1


def test_setup_serves_metrics_on_localhost_with_spans_and_exporter_figures(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    port_file = tmp_path / "port"
    script.write_text(
        textwrap.dedent(
            f"""
            import time
            from types import SimpleNamespace
            import spanhooks
            from spanhooks import CallbackEvent
            telemetry = spanhooks.setup(metrics_port=0)
            for _ in range(3):
                spanhooks.emit(CallbackEvent.TOOL_START, "search", {{}})
                spanhooks.emit(CallbackEvent.TOOL_END, "search", "ok")
            spanhooks.force_flush()
            open({str(port_file)!r}, "w").write(str(telemetry.metrics_server.port))
            time.sleep(30)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text()):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        metrics = scrape(f"http://127.0.0.1:{port_file.read_text()}")
    finally:
        process.kill()
        process.wait()
    events = {labels["event"]: value for labels, value in metrics["spanhooks_events"]}
    assert events["tool_start"] == events["tool_end"] == 3
    exported = {labels["exporter"]: value for labels, value in metrics["spanhooks_spans_exported"]}
    assert exported == {"jsonl": 3.0}
    durations = {
        (labels["event_set"], labels["operation"], labels.get("le")): value
        for labels, value in metrics["spanhooks_span_duration_seconds"]
        if "le" in labels
    }
    assert durations[("llmproc", "execute_tool", "+Inf")] == 3
    dropped = {labels["exporter"]: value for labels, value in metrics["spanhooks_spans_dropped"]}
    assert dropped == {"jsonl": 0.0}


def test_every_subsystem_reports_its_figures_on_a_real_scrape(tmp_path: Path) -> None:
    from spanhooks.ops import (
        CleanupPriority,
        ErrorContext,
        ErrorHandler,
        ErrorSeverity,
        EventRouter,
        HealthMonitor,
        PollingManager,
        ResourceManager,
        ResourceType,
        SessionState,
        SessionStatus,
    )

    registry = CollectorRegistry()
    install_collector(registry)
    errors = ErrorHandler()
    only_here = ErrorContext.define("metrics_check")  # label values no other test uses
    errors.handle_error(ValueError("x"), only_here, ErrorSeverity.HIGH)
    errors.handle_error(ValueError("y"), only_here, ErrorSeverity.HIGH)
    session = SessionState("metrics-session", manager=CallbackManager())
    session.update_status(SessionStatus.ACTIVE)
    router = EventRouter("metrics")
    router.register_realtime_handler("metrics.ping", lambda data: None)
    router.route("metrics.ping", 1)
    router.route("metrics.pong", 2)
    resources = ResourceManager(handle_exit=False)
    resources.register_cleanup(lambda: None, ResourceType.PROCESS, CleanupPriority.LOW)
    resources.cleanup_all()
    from spanhooks.ops import (
        HandlerContext,
        MeetingEventHandler,
        MessageContext,
        clear_handlers,
        invoke_handler_sync,
        register_message_notification_handler,
    )
    from spanhooks.vocab.meeting import MeetingEvent, MeetingEventType

    clear_handlers()
    register_message_notification_handler(lambda message, ctx: "notified")
    notify = MessageContext("a", "b", "org", HandlerContext.MESSAGE_NOTIFICATION)
    invoke_handler_sync(HandlerContext.MESSAGE_NOTIFICATION, {"text": "hi"}, notify)
    clear_handlers()
    meetings = MeetingEventHandler()
    meetings.emit_sync(MeetingEvent(MeetingEventType.PARTICIPANT_JOINED, 1, None))
    polling = PollingManager(name="metrics-polling")
    monitor = HealthMonitor(alert_debounce_seconds=0)
    try:
        polling.register_polling_task("metrics_probe", lambda: None, interval=60)
        monitor.register_health_check(
            "metrics_db", lambda: {"status": "unhealthy"}, interval=60, critical=True
        )
        deadline = time.monotonic() + 10
        while not (
            polling.get_task_status("metrics_probe")["runs"]
            and monitor.get_health_status()["components"]["metrics_db"]["last_check"]
        ):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        server = start_metrics_server(registry, port=0)
        try:
            metrics = scrape(server.url)
        finally:
            server.close()
    finally:
        polling.shutdown()
        monitor.shutdown()

    def value(family: str, **labels: str) -> float:
        return sum(v for got, v in metrics[family] if labels.items() <= got.items())

    assert value("spanhooks_errors", context="metrics_check", severity="high") == 2
    assert value("spanhooks_sessions", status="active") >= 1
    assert value("spanhooks_router_events", event_type="metrics.ping", outcome="handled") == 1
    assert value("spanhooks_router_events", event_type="metrics.pong", outcome="unhandled") == 1
    assert value("spanhooks_cleanups", resource_type="process", outcome="success") == 1
    assert value("spanhooks_polling_runs", task="metrics_probe", outcome="success") == 1
    assert value("spanhooks_health_status", component="metrics_db", status="unhealthy") == 1
    assert value("spanhooks_health_overall", status="unhealthy") >= 1  # other live monitors add up
    assert value("spanhooks_health_alerts", component="metrics_db", severity="critical") == 1
    assert value("spanhooks_health_check_duration_seconds", component="metrics_db", le="+Inf") == 1
    assert (
        value("spanhooks_messages_handled", context="message_notification", outcome="handled") >= 1
    )
    assert value("spanhooks_events", event_set="meeting", event="participant_joined") >= 1
    assert meetings is not None


def test_two_managers_never_expose_the_same_series_twice() -> None:
    registry = CollectorRegistry()
    install_collector(registry)
    first, second = CallbackManager(), CallbackManager()
    first.enable_metrics()
    second.enable_metrics()
    first.emit(CallbackEvent.RESPONSE, "a")
    second.emit(CallbackEvent.RESPONSE, "b")
    second.emit(CallbackEvent.RESPONSE, "c")
    server = start_metrics_server(registry, port=0)
    try:
        metrics = scrape(server.url)
    finally:
        server.close()
    responses = [
        value for labels, value in metrics["spanhooks_events"] if labels["event"] == "response"
    ]
    assert len(responses) == 1
    assert responses[0] >= 3  # both managers (and any other live one), added up


def test_every_exposed_family_is_defined_in_the_metrics_module() -> None:
    from spanhooks.metrics import families as _metrics

    defined = {
        value.name for value in vars(_metrics).values() if isinstance(value, _metrics.MetricDef)
    }
    exposed = {family.name for family in _metrics.SpanhooksCollector().collect()}
    assert exposed <= defined
    assert all(name.startswith(("spanhooks_", "gen_ai_")) for name in defined)
    assert not any(name.endswith("_total") for name in defined)  # the suffix is added on exposition


class _LatencySource:
    """A metric source with 800 operations of its own."""

    def __init__(self, offset: int) -> None:
        self.histogram = _metrics.BucketHistogram()
        for i in range(800):
            self.histogram.observe(("merge-test", f"op-{offset + i}", "ok"), 0.01)

    def metric_families(self) -> Iterator[Metric]:
        yield self.histogram.family(_metrics.SPAN_DURATION_SECONDS)


def test_merged_sources_stay_within_the_series_limit_of_one_family() -> None:
    sources = [_LatencySource(0), _LatencySource(800)]  # within the limit alone, not together
    for source in sources:
        _metrics.register_source(source)
    [family] = [
        found
        for found in _metrics.SpanhooksCollector().collect()
        if found.name == _metrics.SPAN_DURATION_SECONDS.name
    ]
    series = {tuple(v for k, v in s.labels.items() if k != "le") for s in family.samples}
    assert len(series) <= _metrics.MAX_SERIES + 1
    counted = sum(
        s.value
        for s in family.samples
        if s.name.endswith("_count") and s.labels["event_set"] in ("merge-test", "other")
    )
    assert counted >= 1600  # every observation still counted, the excess under "other"
