"""deploy/prometheus: the scrape config and the alerting rules.

promtool (Debian's ``prometheus`` package) checks the config and the rules and runs the rule
unit tests of rules_test.yml; the tests here also hold the conventions promtool does not
know: a severity and a runbook section for every alert, a firing and a quiet case for every
alert, and the alerts the operators rely on (see deploy/RUNBOOK.md).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from deploy_support import DEPLOY, PROMETHEUS, load_yaml, metric_names

SEVERITIES = {"critical", "warning"}


def alerts(rules: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def heading_anchors(markdown: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    anchors = set()
    for line in markdown.read_text("utf-8").splitlines():
        match = re.match(r"#+\s+(.*)", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=PROMETHEUS)


class TestPromtool:
    def test_config_is_valid(self, promtool: str) -> None:
        result = run(promtool, "check", "config", "prometheus.yml")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_rules_are_valid(self, promtool: str) -> None:
        result = run(promtool, "check", "rules", "rules.yml")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_rule_unit_tests_pass(self, promtool: str) -> None:
        result = run(promtool, "test", "rules", "rules_test.yml")
        assert result.returncode == 0, result.stdout + result.stderr


class TestConventions:
    def test_every_alert_has_severity_summary_and_runbook(self, rules: dict[str, Any]) -> None:
        anchors = heading_anchors(DEPLOY / "RUNBOOK.md")
        for rule in alerts(rules):
            name = rule["alert"]
            assert rule.get("labels", {}).get("severity") in SEVERITIES, name
            annotations = rule.get("annotations", {})
            assert annotations.get("summary") and annotations.get("description"), name
            page, _, anchor = annotations.get("runbook", "").partition("#")
            assert page == "deploy/RUNBOOK.md", name
            assert anchor == name.lower() and anchor in anchors, f"{name}: no runbook section"

    def test_alert_names_are_unique(self, rules: dict[str, Any]) -> None:
        names = [rule["alert"] for rule in alerts(rules)]
        assert len(names) == len(set(names))

    def test_every_alert_is_tested_firing_and_quiet(self, rules: dict[str, Any]) -> None:
        cases = load_yaml(PROMETHEUS / "rules_test.yml")
        firing: set[str] = set()
        quiet: set[str] = set()
        for test in cases["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
        names = {rule["alert"] for rule in alerts(rules)}
        assert names - firing == set(), "never tested firing"
        assert names - quiet == set(), "never tested quiet"
        assert (firing | quiet) - names == set(), "tests of alerts that do not exist"

    def test_the_alerts_of_issue_6_exist(self, rules: dict[str, Any]) -> None:
        # worker down, consumer lag, no input, watermark, unresolved backlog, dead letters
        by_metric = {name: rule["alert"] for rule in alerts(rules)
                     for name in metric_names(rule["expr"])}
        for metric in ("up", "closedloop_consumer_lag_messages",
                       "closedloop_events_consumed_total", "closedloop_watermark_lag_seconds",
                       "closedloop_alert_actions_total", "closedloop_events_rejected_total"):
            assert metric in by_metric, metric

    def test_the_scrape_job_is_the_one_the_rules_select(self, rules: dict[str, Any]) -> None:
        config = load_yaml(PROMETHEUS / "prometheus.yml")
        jobs = {job["job_name"] for job in config["scrape_configs"]}
        for rule in alerts(rules):
            for job in re.findall(r'job="([^"]+)"', rule["expr"]):
                assert job in jobs, rule["alert"]
        assert config["rule_files"] == ["rules.yml"]


@pytest.mark.parametrize("broken", [
    # a PromQL syntax error
    ("rules.yml", 'up{job="closedloop-worker"} == 0', 'up{job="closedloop-worker" == 0'),
    # a threshold changed without its unit tests
    ("rules.yml", "> 1000)", "> 100000)"),
])
def test_promtool_catches_a_broken_rule(promtool: str, tmp_path: Path,
                                        broken: tuple[str, str, str]) -> None:
    """The checks above can fail: the same commands on a damaged copy do."""
    name, old, new = broken
    for path in PROMETHEUS.iterdir():
        (tmp_path / path.name).write_text(path.read_text("utf-8"), "utf-8")
    text = (tmp_path / name).read_text("utf-8")
    assert old in text
    (tmp_path / name).write_text(text.replace(old, new, 1), "utf-8")
    result = subprocess.run([promtool, "test", "rules", "rules_test.yml"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode != 0
