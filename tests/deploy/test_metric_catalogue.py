"""deploy/prometheus/metrics.yml against the worker, the rules and the dashboard.

The catalogue lists every closedloop metric the deploy artifacts use. An ``exported`` metric
must be registered by the worker with the catalogue's type and labels; a ``proposed`` one is
not registered yet, but once it is, its type and labels must be the catalogue's, or the rules
and panels written for it would silently show nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

from deploy_support import (
    GRAFANA,
    IDENTIFIER_LABELS,
    PROMETHEUS,
    TARGET_LABELS,
    base_metric,
    grouping_labels,
    load_yaml,
    metric_names,
    selectors,
)

from closedloop.schemas.outputs import ALERT_KINDS, REJECTION_REASONS
from closedloop.streams.kafka.topics import topic_specs

TYPES = {"counter", "gauge", "histogram"}


def used_expressions() -> dict[str, str]:
    """Every PromQL expression of the rules and the dashboard, by where it is."""
    exprs = {}
    for group in load_yaml(PROMETHEUS / "rules.yml")["groups"]:
        for rule in group["rules"]:
            exprs[f"rules.yml {rule.get('alert') or rule.get('record')}"] = rule["expr"]
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text("utf-8"))["panels"]:
            for target in panel.get("targets", []):
                exprs[f"{path.name} panel {panel['id']} {target['refId']}"] = target["expr"]
    return exprs


class TestCatalogue:
    def test_entries_follow_the_naming_rules(self, catalogue: dict[str, dict[str, Any]]) -> None:
        for name, entry in catalogue.items():
            assert re.fullmatch(r"closedloop_[a-z0-9_]+", name), name
            assert entry["type"] in TYPES, name
            assert entry["status"] in {"exported", "proposed"}, name
            assert entry.get("help"), name
            assert (entry["type"] == "counter") == name.endswith("_total"), name
            if entry["type"] == "histogram":
                assert entry["buckets"] == sorted(entry["buckets"]), name

    def test_no_label_identifies_a_person_tube_or_site(
            self, catalogue: dict[str, dict[str, Any]]) -> None:
        for name, entry in catalogue.items():
            assert not set(entry["labels"]) & IDENTIFIER_LABELS, name


class TestAgainstTheWorker:
    def test_exported_metrics_are_registered_as_described(
            self, catalogue: dict[str, dict[str, Any]], worker_probe: dict[str, Any]) -> None:
        registered = {m["name"]: m for m in worker_probe["metrics"]}
        for name, entry in catalogue.items():
            if entry["status"] == "exported":
                assert name in registered, f"{name} is marked exported but not registered"
            if name in registered:  # exported, or proposed and implemented since
                assert registered[name]["type"] == entry["type"], name
                if registered[name]["labels"] is not None:
                    assert sorted(registered[name]["labels"]) == sorted(entry["labels"]), name
                if registered[name].get("buckets") is not None:  # panels' quantiles rely on them
                    assert registered[name]["buckets"] == entry["buckets"], name

    def test_every_registered_metric_is_catalogued(self, catalogue: dict[str, dict[str, Any]],
                                                  worker_probe: dict[str, Any]) -> None:
        for metric in worker_probe["metrics"]:
            assert metric["name"] in catalogue, f"{metric['name']} is missing from metrics.yml"

    def test_the_worker_registers_no_identifier_label(self, worker_probe: dict[str, Any]) -> None:
        for metric in worker_probe["metrics"]:
            assert not set(metric["labels"] or ()) & IDENTIFIER_LABELS, metric["name"]


class TestUses:
    def test_every_metric_used_is_in_the_catalogue(
            self, catalogue: dict[str, dict[str, Any]]) -> None:
        for where, expr in used_expressions().items():
            for name in metric_names(expr) - {"up"}:
                assert base_metric(name, catalogue), f"{where}: {name} is not in metrics.yml"

    def test_selectors_use_only_the_metrics_labels(
            self, catalogue: dict[str, dict[str, Any]]) -> None:
        for where, expr in used_expressions().items():
            for metric, matchers in selectors(expr):
                base = base_metric(metric, catalogue)
                if base is None:
                    continue
                allowed = set(catalogue[base]["labels"]) | TARGET_LABELS
                assert set(matchers) <= allowed, f"{where}: {metric}{matchers}"

    def test_grouping_uses_labels_the_metrics_have(
            self, catalogue: dict[str, dict[str, Any]]) -> None:
        for where, expr in used_expressions().items():
            allowed = set(TARGET_LABELS) | {"le"}
            for name in metric_names(expr):
                base = base_metric(name, catalogue)
                if base is not None:
                    allowed |= set(catalogue[base]["labels"])
            assert grouping_labels(expr) <= allowed, where

    def test_label_values_are_the_contracts(self) -> None:
        topics = {spec.name for spec in topic_specs("closedloop", 1, 1)}
        known = {"kind": set(ALERT_KINDS), "reason": set(REJECTION_REASONS), "topic": topics,
                 "action": {"ack", "resolve"}, "job": {"closedloop-worker"}}
        for where, expr in used_expressions().items():
            for metric, matchers in selectors(expr):
                for label, value in matchers.items():
                    if label in known:
                        assert value in known[label], f"{where}: {metric} {label}={value!r}"


def test_the_readme_names_every_proposed_metric(catalogue: dict[str, dict[str, Any]]) -> None:
    readme = (PROMETHEUS.parent / "README.md").read_text("utf-8")
    for name, entry in catalogue.items():
        if entry["status"] == "proposed":
            assert f"`{name}`" in readme, name
