"""A real Prometheus server scrapes the running demo; every dashboard query returns data.

Prometheus (Debian's ``prometheus`` package, installed by ``.ci/run``) is started here on
127.0.0.1 with a 1 s scrape interval against ``spanhooks demo --metrics-port``. The first
sample is queryable a few seconds after start, so queries are polled for up to 30 s.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "spanhooks.json"
CONFIG = ROOT / "collector-config"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("prometheus") is None or shutil.which("promtool") is None,
        reason="LOUD SKIP: the Debian package 'prometheus' is not installed (.ci/run installs it)",
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo, running for two minutes, serving /metrics; yields its host:port."""
    workdir = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANHOOKS_"))}
    # spanhooks' own log records as OpenTelemetry logs, so that their panel has series too (to a
    # port nobody listens on: the records are counted as export_failed).
    env["OTEL_LOGS_EXPORTER"] = "otlp"
    env["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"] = f"http://127.0.0.1:{free_port()}/v1/logs"
    with subprocess.Popen(
        [sys.executable, "-m", "spanhooks", "demo", "--duration", "120", "--metrics-port", "0"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving http://"), line
        yield line.split()[1].removeprefix("http://").removesuffix("/metrics")
        process.kill()


@pytest.fixture(scope="module")
def prometheus(demo: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus server scraping the demo every second, with spanhooks' alert rules."""
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(CONFIG / "alerts.yml")],
                "scrape_configs": [
                    {"job_name": "spanhooks-demo", "static_configs": [{"targets": [demo]}]}
                ],
            }
        )
    )
    port = free_port()
    with subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--enable-feature=exemplar-storage",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as server:
        url = f"http://127.0.0.1:{port}"
        wait_for(url, 'up{job="spanhooks-demo"} == 1')
        wait_for(url, "spanhooks_events_total")
        yield url
        server.terminate()
        server.wait(timeout=20)


def query(url: str, expr: str) -> list[dict[str, Any]]:
    address = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(address, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for(url: str, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = query(url, expr)
        except OSError:
            result = []
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def substitute(expr: str) -> str:
    """Grafana's variables, as Grafana would fill them for the last five minutes."""
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace('{job=~"$job"}', '{job=~".*"}')
        .replace('job=~"$job"', 'job=~".*"')
    )


@pytest.mark.parametrize(
    ("title", "expr"), dashboard_queries(), ids=[t for t, _ in dashboard_queries()]
)
def test_every_dashboard_query_returns_a_series(prometheus: str, title: str, expr: str) -> None:
    assert wait_for(prometheus, substitute(expr)), f"{title}: no series for {expr}"


def test_a_query_with_a_typo_returns_nothing(prometheus: str) -> None:
    assert query(prometheus, 'sum(rate(spanhooks_evnts_total{job=~".*"}[1m]))') == []


def test_promtool_accepts_the_configs_and_the_rules() -> None:
    for args in (
        ["check", "config", "--syntax-only", str(CONFIG / "prometheus.yml")],
        ["check", "rules", str(CONFIG / "alerts.yml")],
    ):
        done = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_accepts_a_real_scrape(demo: str) -> None:
    with urllib.request.urlopen(f"http://{demo}/metrics", timeout=10) as response:
        exposition = response.read()
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition, capture_output=True, timeout=60
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode()


def test_each_alert_fires_and_stays_quiet_when_it_should() -> None:
    done = subprocess.run(
        ["promtool", "test", "rules", "alerts.test.yml"],
        cwd=CONFIG,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


_SPLIT = ("and", "unless", "or", "==", "!=", ">=", "<=", ">", "<")


def operands(expr: str) -> list[str]:
    """The operands of an expression's top-level comparisons and set operations.

    An alert rule is a condition, empty while nothing is wrong; its operands are the queries
    that must return data for the condition to mean anything.
    """
    parts, depth, current, index = [], 0, "", 0
    text = " ".join(expr.split())
    while index < len(text):
        char = text[index]
        depth += char == "("
        depth -= char == ")"
        operator = next(
            (
                op
                for op in _SPLIT
                if depth == 0
                and text.startswith(op, index)
                and (
                    not op.isalpha()
                    or (
                        text[index - 1 : index] in " )"
                        and text[index + len(op) : index + len(op) + 1] in " ("
                    )
                )
            ),
            None,
        )
        if operator:
            parts.append(current)
            current, index = "", index + len(operator)
            modifier = re.match(
                r"\s*(on|ignoring)\s*\([^)]*\)\s*(group_(left|right)(\s*\([^)]*\))?)?", text[index:]
            )
            if modifier:
                index += modifier.end()
            continue
        current += char
        index += 1
    parts.append(current)
    found = []
    for part in (p.strip() for p in parts):
        if not part or re.fullmatch(r"[\d.]+", part):
            continue
        if part.startswith("(") and _closing(part) == len(part) - 1:
            found.extend(operands(part[1:-1]))  # a parenthesised condition: split it too
        else:
            found.append(part)
    return found


def _closing(text: str) -> int:
    """The index of the parenthesis that closes the one at ``text[0]``."""
    depth = 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return index
    return -1


def rule_operands() -> list[tuple[str, str]]:
    rules = yaml.safe_load((CONFIG / "alerts.yml").read_text())
    return [
        (rule["alert"], operand)
        for group in rules["groups"]
        for rule in group["rules"]
        for operand in operands(rule["expr"])
    ]


@pytest.mark.parametrize(
    ("alert", "operand"),
    rule_operands(),
    ids=[f"{a}:{i}" for i, (a, _) in enumerate(rule_operands())],
)
def test_every_alert_rule_operand_returns_a_series(
    prometheus: str, alert: str, operand: str
) -> None:
    assert wait_for(prometheus, operand), f"{alert}: no series for {operand}"
