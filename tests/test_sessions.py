"""Sessions: ``spanhooks.session(...)`` stamps session, user and conversation ids on every span
started inside it, spanhooks' and other instrumentations' alike, across tasks, threads, child
processes and outgoing HTTP requests; ``/metrics`` counts the session blocks started and open
and the spans stamped, with no id as a label."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import propagate
from prometheus_client.registry import CollectorRegistry

import spanhooks
from spanhooks import read_spans
from spanhooks.metrics.families import install_collector
from spanhooks.testing import Capture, capture

IDS = {"session.id": "s-1", "user.id": "u-7", "gen_ai.conversation.id": "c-3"}


def _ids(span: Any) -> dict[str, Any]:
    attributes = dict(span.attributes or {})
    return {key: attributes[key] for key in IDS if key in attributes}


@pytest.fixture
def cap() -> Any:
    with capture() as cap:
        yield cap


def test_every_span_inside_a_session_carries_its_ids(cap: Capture) -> None:
    with spanhooks.session("s-1", user_id="u-7", conversation_id="c-3"):
        call = cap.manager.emit("tool_call_start", "search", {})
        with cap.tracer.start_as_current_span("another instrumentation's span"):
            pass
        cap.manager.emit("tool_call_end", "search", "ok", None, call_id=call)
    with cap.tracer.start_as_current_span("after the session"):
        pass

    assert _ids(cap.span("execute_tool search")) == IDS
    assert _ids(cap.span("another instrumentation's span")) == IDS
    assert _ids(cap.span("after the session")) == {}


def test_a_nested_session_overrides_only_what_it_names(cap: Capture) -> None:
    with spanhooks.session("s-1", user_id="u-7"), spanhooks.session(conversation_id="c-9"):
        assert spanhooks.current_session() == {
            "session.id": "s-1",
            "user.id": "u-7",
            "gen_ai.conversation.id": "c-9",
        }
        with cap.tracer.start_as_current_span("inner"):
            pass

    assert _ids(cap.span("inner")) == {**IDS, "gen_ai.conversation.id": "c-9"}
    assert spanhooks.current_session() == {}


def test_the_decorator_form_covers_sync_and_async_functions(cap: Capture) -> None:
    @spanhooks.session("s-sync")
    def sync_step() -> None:
        with cap.tracer.start_as_current_span("sync"):
            pass

    @spanhooks.session("s-async")
    async def async_step() -> None:
        async def child() -> None:
            with cap.tracer.start_as_current_span("in a task"):
                pass

        await asyncio.gather(asyncio.create_task(child()))

    sync_step()
    asyncio.run(async_step())

    assert _ids(cap.span("sync")) == {"session.id": "s-sync"}
    assert _ids(cap.span("in a task")) == {"session.id": "s-async"}


def test_threads_started_through_propagate_keep_the_session(cap: Capture) -> None:
    def work() -> None:
        with cap.tracer.start_as_current_span("in a thread"):
            pass

    with spanhooks.session("s-1"):
        thread = threading.Thread(target=spanhooks.propagate(work))
        thread.start()
        thread.join()

    assert _ids(cap.span("in a thread")) == {"session.id": "s-1"}


def test_a_child_process_started_with_child_env_continues_the_session(tmp_path: Path) -> None:
    path = tmp_path / "child.jsonl"
    code = textwrap.dedent(
        f"""
        import spanhooks
        from opentelemetry import trace
        spanhooks.setup(jsonl_path={str(path)!r})
        with trace.get_tracer("child").start_as_current_span("child work"):
            pass
        spanhooks.shutdown()
        """
    )
    with spanhooks.session("s-1", user_id="u-7"):
        env = spanhooks.child_env({k: v for k, v in os.environ.items() if k != "BAGGAGE"})
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    (span,) = read_spans(path).spans
    assert {k: span["attributes"].get(k) for k in ("session.id", "user.id")} == {
        "session.id": "s-1",
        "user.id": "u-7",
    }


def test_outgoing_requests_carry_the_session_as_w3c_baggage() -> None:
    received: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append(self.headers.get("baggage"))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with spanhooks.session("s-1", user_id="u-7"):
            headers: dict[str, str] = {}
            propagate.inject(headers)  # what an instrumented HTTP client does per request
            url = f"http://127.0.0.1:{server.server_address[1]}/"
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10):
                pass
    finally:
        server.shutdown()
        server.server_close()

    assert received and received[0] is not None
    assert sorted(received[0].split(",")) == ["session.id=s-1", "user.id=u-7"]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, ValueError),
        ({"session_id": ""}, ValueError),
        ({"session_id": "x" * 257}, ValueError),
        ({"session_id": "a\nb"}, ValueError),
        ({"session_id": 42}, TypeError),
        ({"user_id": b"u"}, TypeError),
    ],
)
def test_bad_ids_are_refused_before_the_context_changes(
    kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        spanhooks.session(**kwargs)
    assert spanhooks.current_session() == {}


def _session_file(tmp_path: Path) -> Path:
    """Three traces written by a real setup(): two in session s-1 around one of none."""
    path = tmp_path / "sessions.jsonl"
    code = textwrap.dedent(
        f"""
        import spanhooks
        from opentelemetry import trace
        spanhooks.setup(jsonl_path={str(path)!r})
        tracer = trace.get_tracer("app")
        with spanhooks.session("s-1"):
            with tracer.start_as_current_span("first turn"):
                pass
        with tracer.start_as_current_span("housekeeping"):
            pass
        with spanhooks.session("s-1"):
            with tracer.start_as_current_span("second turn"):
                pass
        spanhooks.shutdown()
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return path


def test_view_groups_traces_under_their_session(tmp_path: Path) -> None:
    path = _session_file(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "spanhooks", "view", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if not line.startswith("trace ")]
    names = [line.split("  ")[0] for line in lines if line]
    assert names == ["session s-1", "first turn", "second turn", "no session", "housekeeping"]


def test_the_html_page_heads_each_session(tmp_path: Path) -> None:
    from spanhooks.export.html import render_html

    page = render_html(read_spans(_session_file(tmp_path)).spans)
    data = page.split("const TRACES = ")[1].split(";\n")[0]
    assert [(t["session"], t["spans"][0]["name"]) for t in json.loads(data)] == [
        ("s-1", "first turn"),
        ("s-1", "second turn"),
        (None, "housekeeping"),
    ]


# -- the session families on /metrics ------------------------------------------------------------

SESSION_FAMILIES = (
    "spanhooks_sessions_started_total",
    "spanhooks_sessions_open",
    "spanhooks_session_spans_total",
)


def _session_metrics() -> dict[str, float]:
    """The three session samples as a scrape of a fresh registry reads them."""
    registry = CollectorRegistry()
    install_collector(registry)
    found = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name in SESSION_FAMILIES:
                assert sample.labels == {}, "a session family has labels"
                found[sample.name] = sample.value
    assert found.keys() == set(SESSION_FAMILIES)
    return found


def _delta(before: dict[str, float]) -> dict[str, float]:
    after = _session_metrics()
    return {name: after[name] - before[name] for name in SESSION_FAMILIES}


def test_a_session_block_is_counted_started_and_open_until_it_is_left(cap: Capture) -> None:
    before = _session_metrics()
    with spanhooks.session("s-1"):
        inside = _delta(before)
    assert inside["spanhooks_sessions_started_total"] == 1
    assert inside["spanhooks_sessions_open"] == 1
    assert _delta(before) == {
        "spanhooks_sessions_started_total": 1,
        "spanhooks_sessions_open": 0,
        "spanhooks_session_spans_total": 0,
    }


def test_decorated_calls_and_nested_blocks_count_each_entry(cap: Capture) -> None:
    @spanhooks.session(user_id="u-7")
    def sync_step() -> float:
        return _delta(before)["spanhooks_sessions_open"]

    @spanhooks.session(conversation_id="c-3")
    async def async_step() -> None:
        pass

    before = _session_metrics()
    with spanhooks.session("s-1"), spanhooks.session(conversation_id="c-9"):
        assert sync_step() == 3  # the two blocks and the call
    asyncio.run(async_step())
    assert _delta(before)["spanhooks_sessions_started_total"] == 4
    assert _delta(before)["spanhooks_sessions_open"] == 0


def test_a_block_left_by_an_exception_is_no_longer_open(cap: Capture) -> None:
    before = _session_metrics()
    with pytest.raises(KeyError), spanhooks.session("s-1"):
        raise KeyError("boom")
    assert _delta(before)["spanhooks_sessions_open"] == 0


def test_only_spans_that_got_session_ids_are_counted_as_stamped(cap: Capture) -> None:
    before = _session_metrics()
    with spanhooks.session("s-1", user_id="u-7"):
        call = cap.manager.emit("tool_call_start", "search", {})
        with cap.tracer.start_as_current_span("another instrumentation's span"):
            pass
        cap.manager.emit("tool_call_end", "search", "ok", None, call_id=call)
    with cap.tracer.start_as_current_span("after the session"):
        pass
    assert _delta(before)["spanhooks_session_spans_total"] == 2  # once each, not once per id


def test_the_session_families_have_no_id_labels_on_a_real_scrape(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import urllib.request
        import spanhooks
        from opentelemetry import trace
        telemetry = spanhooks.setup(jsonl=False, metrics_port=0)
        with spanhooks.session("secret-session-id", user_id="u-1"):
            with trace.get_tracer("app").start_as_current_span("turn"):
                pass
        with urllib.request.urlopen(telemetry.metrics_server.url + "/metrics", timeout=10) as r:
            print(r.read().decode())
        spanhooks.shutdown()
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = {line.split(" ")[0]: line.split(" ")[1] for line in done.stdout.splitlines() if line}
    assert lines["spanhooks_sessions_started_total"] == "1.0"
    assert lines["spanhooks_sessions_open"] == "0.0"
    assert lines["spanhooks_session_spans_total"] == "1.0"
    assert "secret-session-id" not in done.stdout
