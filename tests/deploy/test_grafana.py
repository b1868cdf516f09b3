"""deploy/grafana: provisioning files and the dashboard JSON.

There is no offline schema for Grafana dashboards, so this checks what breaks a provisioned
dashboard in practice: it loads, its panels sit on the 24-column grid without overlapping,
every panel and target uses the provisioned Prometheus datasource by uid, every query is
valid PromQL (promtool parses it as a recording rule) and names only catalogued metrics
(test_metric_catalogue.py), and nothing in it names a person, tube or site.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import (
    DEPLOY,
    GRAFANA,
    IDENTIFIER_FIELDS,
    IDENTIFIER_LABELS,
    load_yaml,
    metric_names,
)

DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
# Grafana's interval variables, replaced by a typical value before promtool parses a query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "6h"}


def provisioned_datasource() -> dict[str, Any]:
    sources = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    assert sources["apiVersion"] == 1
    (source,) = sources["datasources"]
    return source


def load(path: Path) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return dashboard


def queries(dashboard: dict[str, Any]) -> list[tuple[int, str, str]]:
    return [(panel["id"], target["refId"], target["expr"])
            for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_there_is_a_dashboard() -> None:
    assert [path.name for path in DASHBOARDS] == ["closedloop-operations.json"]


class TestProvisioning:
    def test_datasource_is_the_compose_prometheus(self) -> None:
        source = provisioned_datasource()
        assert source["type"] == "prometheus"
        assert source["uid"] and source["isDefault"] is True
        compose = load_yaml(DEPLOY / "compose.yaml")
        host = re.fullmatch(r"http://([a-z0-9-]+):9090", source["url"])
        assert host and host.group(1) in compose["services"]

    def test_dashboard_provider_reads_the_mounted_folder(self) -> None:
        providers = load_yaml(GRAFANA / "provisioning" / "dashboards" / "closedloop.yml")
        assert providers["apiVersion"] == 1
        (provider,) = providers["providers"]
        assert provider["type"] == "file" and provider["allowUiUpdates"] is False
        mounts = load_yaml(DEPLOY / "compose.yaml")["services"]["grafana"]["volumes"]
        assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
        assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
class TestDashboard:
    def test_top_level(self, path: Path) -> None:
        dashboard = load(path)
        assert dashboard["uid"] == path.stem
        assert dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
        assert dashboard["editable"] is False  # provisioned from git, not edited in the UI
        assert dashboard["panels"]

    def test_panels_tile_the_grid(self, path: Path) -> None:
        panels = load(path)["panels"]
        ids = [panel["id"] for panel in panels]
        assert len(ids) == len(set(ids))
        cells: dict[tuple[int, int], int] = {}
        for panel in panels:
            pos = panel["gridPos"]
            assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, f"panels {cells.get((x, y))} and {panel['id']}"
                    cells[(x, y)] = panel["id"]

    def test_every_query_uses_the_provisioned_datasource(self, path: Path) -> None:
        uid = provisioned_datasource()["uid"]
        for panel in load(path)["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
            targets = panel.get("targets", [])
            assert targets, panel["title"]
            assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
            for target in targets:
                assert target.get("datasource", panel["datasource"]) == panel["datasource"]
                assert target["expr"].strip(), panel["title"]

    def test_queries_are_valid_promql(self, path: Path, promtool: str, tmp_path: Path) -> None:
        rules = []
        for panel_id, ref, expr in queries(load(path)):
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"panel {panel_id} {ref}: unknown variable in {expr}"
            rules.append({"record": f"dashboard:panel_{panel_id}_{ref}", "expr": expr})
        rule_file = tmp_path / "dashboard_queries.yml"
        rule_file.write_text(yaml.safe_dump({"groups": [{"name": path.stem, "rules": rules}]}))
        result = subprocess.run([promtool, "check", "rules", str(rule_file)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_it_shows_what_operations_need(self, path: Path) -> None:
        exprs = " ".join(expr for _, _, expr in queries(load(path)))
        used = metric_names(exprs)
        for metric in ("closedloop_alerts_raised_total", "closedloop_lab_turnaround_seconds_bucket",
                       "closedloop_consumer_lag_messages", "closedloop_events_consumed_total",
                       "closedloop_events_rejected_total", "closedloop_deadline_index_size"):
            assert metric in used, metric
        assert 'kind="followup_overdue"' in exprs
        assert "histogram_quantile(" in exprs

    def test_no_person_tube_or_site_identifier(self, path: Path) -> None:
        text = path.read_text("utf-8")
        for field in IDENTIFIER_FIELDS:
            assert not re.search(rf"\b{field}\b", text), field
        for panel in load(path)["panels"]:
            for target in panel.get("targets", []):
                legend = target.get("legendFormat", "")
                assert not set(re.findall(r"{{\s*(\w+)\s*}}", legend)) & IDENTIFIER_LABELS


def test_promql_check_catches_a_broken_query(promtool: str, tmp_path: Path) -> None:
    """The PromQL check can fail: a query with a missing parenthesis is refused."""
    rule_file = tmp_path / "broken.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"record": "dashboard:broken", "expr": "sum(rate(closedloop_events_consumed_total[1m])"},
    ]}]}))
    result = subprocess.run([promtool, "check", "rules", str(rule_file)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
