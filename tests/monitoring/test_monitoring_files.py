"""The shipped dashboard and alert rules, checked by Prometheus' own promtool.

promtool comes from Debian's `prometheus` package (.ci/run installs it).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.service.conftest import make_client
from tests.tools import require

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
ALERTS = MONITORING / "alerts.yml"
# Grafana's built-in variables, replaced by what Grafana would put there.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
METRIC_NAME = re.compile(r"\b(modelship_[a-z0-9_]+)")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("promtool"), *args], capture_output=True, text=True, timeout=60, check=False
    )


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return [p for p in found if p["type"] != "row"]


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in _panels(dashboard):
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"panel {panel['title']!r}: unknown variable in {expr}"
            queries.append(expr)
    return queries


def test_alert_rules_pass_promtool_check() -> None:
    result = _promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_alerts_fire_on_the_series_they_are_for() -> None:
    result = _promtool("test", "rules", str(Path(__file__).with_name("alerts_test.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """Each panel query becomes a recording rule, so promtool's PromQL parser reads all."""
    queries = _dashboard_queries()
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = _promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_dashboard_has_the_panels_an_operator_needs() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = {p["title"] for p in _panels(dashboard)}
    for needed in (
        "Requests per second by route",
        "Errors (share of requests)",
        "Latency of /predict",
        "Feature drift (PSI)",
        "Prediction drift (PSI)",
        "Live quality vs test, per model version",
    ):
        assert needed in titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


@pytest.fixture(scope="module")
def served_metric_names(regression_artifact: Path, good_candidate_artifact: Path) -> set[str]:
    """Every metric name a serving model exposes (with a rollout's), after one prediction."""
    client: TestClient
    with make_client(regression_artifact, candidate=str(good_candidate_artifact)) as client:
        client.post("/predict", json=client.get("/model/examples/0").json())
        text = client.get("/metrics").text
    names = set()
    for family in text_string_to_metric_families(text):
        # A labelled metric has no sample until a label set is used (the drift statistic until
        # the window fills, capture drops until one happens): its declared name still counts.
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        names.update(sample.name for sample in family.samples)
    return names


def test_dashboard_and_alerts_only_use_metrics_the_service_exports(
    served_metric_names: set[str],
) -> None:
    used = set(METRIC_NAME.findall(" ".join(_dashboard_queries())))
    used |= set(METRIC_NAME.findall(ALERTS.read_text()))
    used -= {"modelship_version"}  # a label of modelship_model_info, not a metric
    assert used - served_metric_names == set()
