"""Paths and helpers of the deployment checks (deploy/: Prometheus, Grafana, compose, Kubernetes).

The checkers they need beyond the dev dependencies (promtool from Debian's ``prometheus``;
``check-jsonschema`` and ``kubernetes-validate`` from deploy/requirements.txt) are installed by
``make deploy-tools`` and by .ci/run. Like the service fixtures of tests/conftest.py, a missing
checker skips its tests on a developer's machine and fails them under CI (env ``CI``), so a CI
that lost a checker cannot pass by skipping.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from types import ModuleType
from typing import Any, Final, NoReturn

import pytest
import yaml

REPO: Final = Path(__file__).resolve().parents[2]
DEPLOY: Final = REPO / "deploy"
PROMETHEUS: Final = DEPLOY / "prometheus"
GRAFANA: Final = DEPLOY / "grafana"
K8S: Final = DEPLOY / "k8s"
PROBE: Final = Path(__file__).with_name("worker_probe.py")

# Label names that would identify a person, a tube or a site (CONTRACT.md §2 and the
# DESIGN notes): never a metric label, never in a dashboard or a rule.
IDENTIFIER_FIELDS: Final = frozenset({
    "person_id", "tube_id", "site_id", "subject", "worker_id", "operator_id", "alert_id",
    "event_id",
})
IDENTIFIER_LABELS: Final = IDENTIFIER_FIELDS | {"person", "tube", "site", "lab_id"}

# Labels Prometheus itself attaches to every scraped series.
TARGET_LABELS: Final = frozenset({"job", "instance"})

_METRIC = re.compile(r"\b(closedloop_[a-z0-9_]+|up)\b")


def missing_tool(tool: str, how: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{tool} is missing; CI must install it ({how})", pytrace=False)
    pytest.skip(f"{tool} is missing: {how}")


def need_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        missing_tool(name, "make deploy-tools")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text("utf-8"))


def load_yaml_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc is not None]


def metric_names(expr: str) -> set[str]:
    """closedloop metric names (and ``up``) a PromQL expression refers to."""
    return set(_METRIC.findall(expr))


def base_metric(name: str, catalogue: dict[str, dict[str, Any]]) -> str | None:
    """The catalogue entry a series name belongs to (a histogram's _bucket/_sum/_count)."""
    if name in catalogue:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and catalogue.get(base, {}).get("type") == "histogram":
            return base
    return None


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(metric, {label: value}) for every ``metric{label="value", ...}`` in ``expr``."""
    found = []
    for match in re.finditer(r"\b([a-z_][a-z0-9_]*)\{([^}]*)\}", expr):
        pairs = re.findall(r'([a-z_][a-z0-9_]*)\s*(?:=~|!=|!~|=)\s*"([^"]*)"', match.group(2))
        found.append((match.group(1), dict(pairs)))
    return found


def grouping_labels(expr: str) -> set[str]:
    """Label names of every ``by (...)`` / ``without (...)`` clause in ``expr``."""
    labels: set[str] = set()
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels.update(part.strip() for part in group.split(",") if part.strip())
    return labels
