"""The dashboards and deployment configs agree with what spanhooks exposes (checked statically)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from spanhooks.metrics import families as _metrics

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "dashboards" / "spanhooks.json"
CONFIG = ROOT / "collector-config"
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")
DEFINED = {
    value.name: value for value in vars(_metrics).values() if isinstance(value, _metrics.MetricDef)
}


# The prefixes of the families' names: spanhooks' own and the GenAI conventions' (whose label
# names, gen_ai_agent_name and the like, start differently).
FAMILY = re.compile(
    r"\b((?:spanhooks|gen_ai_client|gen_ai_invoke_agent|gen_ai_execute_tool)_[a-z_]+)"
)


def families_in(expr: str) -> set[str]:
    names = set()
    for found in FAMILY.findall(expr):
        family = next(
            (
                found[: -len(s)]
                for s in SUFFIXES
                if found.endswith(s) and found[: -len(s)] in DEFINED
            ),
            found,
        )
        names.add(family)
    return names


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panel_exprs() -> list[str]:
    return [
        target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])
    ]


def rule_exprs() -> list[str]:
    rules = yaml.safe_load((CONFIG / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("expr", panel_exprs() + rule_exprs())
def test_every_promql_expression_names_only_defined_metrics(expr: str) -> None:
    used = families_in(expr)
    assert used, f"no spanhooks metric in {expr!r}"
    assert used <= DEFINED.keys(), f"undefined: {sorted(used - DEFINED.keys())}"


def test_the_dashboard_uses_a_datasource_variable_and_no_fixed_uid() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    uids = {
        (thing.get("datasource") or {}).get("uid")
        for panel in board["panels"]
        for thing in [panel, *panel.get("targets", [])]
        if thing.get("datasource")
    }
    assert uids == {"${datasource}"}
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells = [
        (x, y)
        for panel in board["panels"]
        for x in range(panel["gridPos"]["x"], panel["gridPos"]["x"] + panel["gridPos"]["w"])
        for y in range(panel["gridPos"]["y"], panel["gridPos"]["y"] + panel["gridPos"]["h"])
    ]
    assert len(cells) == len(set(cells)), "panels overlap"


def test_the_dashboard_covers_every_family_but_bookkeeping_ones() -> None:
    used = set().union(*(families_in(expr) for expr in panel_exprs()))
    not_shown = {
        "spanhooks_polling_task_state",
        "spanhooks_health_checks",
        "spanhooks_health_check_critical",
    }
    assert DEFINED.keys() - used <= not_shown


def test_the_alert_rules_cover_the_four_conditions() -> None:
    rules = yaml.safe_load((CONFIG / "alerts.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert names == {
        "SpanhooksCriticalComponentUnhealthy",
        "SpanhooksErrorRateSpike",
        "SpanhooksSpansDropped",
        "SpanhooksExporterFailing",
    }


def test_the_collector_pipelines_use_only_configured_components() -> None:
    config = yaml.safe_load((CONFIG / "otel-collector.yaml").read_text())
    known = {
        kind: set(config.get(kind, {}))
        for kind in ("receivers", "processors", "exporters", "connectors")
    }
    pipelines = config["service"]["pipelines"]
    for pipeline in pipelines.values():
        for receiver in pipeline["receivers"]:
            assert receiver in known["receivers"] | known["connectors"]
        for processor in pipeline.get("processors", []):
            assert processor in known["processors"]
        for exporter in pipeline["exporters"]:
            assert exporter in known["exporters"] | known["connectors"]
    assert {"memory_limiter", "batch"} <= known["processors"]
    assert "otlp/jaeger" in known["exporters"]
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}


def test_prometheus_scrapes_the_app_and_the_collector_and_loads_the_rules() -> None:
    config = yaml.safe_load((CONFIG / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert targets["spanhooks-app"] == ["host.docker.internal:9464"]
    assert targets["otel-collector"] == ["otel-collector:8889"]


def test_the_compose_file_mounts_files_that_exist_and_publishes_on_localhost_only() -> None:
    compose = yaml.safe_load((CONFIG / "docker-compose.yaml").read_text())
    assert {"otel-collector", "jaeger", "prometheus", "grafana"} <= compose["services"].keys()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            assert (CONFIG / volume.split(":")[0]).exists(), volume
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port
