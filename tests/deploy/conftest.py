"""Fixtures of the deployment checks; the helpers they share are in deploy_support.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

import pytest
from deploy_support import PROBE, PROMETHEUS, REPO, load_yaml, missing_tool


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        missing_tool("promtool", "apt-get install prometheus (Debian), or make deploy-tools")
    return path


@pytest.fixture(scope="session")
def catalogue() -> dict[str, dict[str, Any]]:
    """deploy/prometheus/metrics.yml by metric name."""
    entries = load_yaml(PROMETHEUS / "metrics.yml")["metrics"]
    return {entry["name"]: entry for entry in entries}


@pytest.fixture(scope="session")
def rules() -> dict[str, Any]:
    return load_yaml(PROMETHEUS / "rules.yml")


@pytest.fixture(scope="session")
def worker_probe() -> dict[str, Any]:
    """What the worker's Faust app really registers (metrics, consumed topics, tables).

    Built in a subprocess: the metrics go to prometheus-client's process-wide registry, which
    refuses a second registration of a name in the same process.
    """
    result = subprocess.run([sys.executable, str(PROBE)], capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
