"""Print, as JSON, what the worker's app registers: run by tests/deploy in a subprocess.

Builds the app with ``build_app`` exactly as ``closedloop worker`` does (nothing connects:
the consume loop reaches the broker only when the app starts) and reports

- ``metrics``: every ``closedloop_*`` metric in prometheus-client's registry, with the name
  as scraped (counters with ``_total``), its type and label names;
- ``reads``: the topics the consume loop subscribes to;
- ``changelogs``: the stages' changelog topics the worker declares;
- ``transactional_id``: the id its batches' transactions use.
"""

from __future__ import annotations

import json
import sys
import tempfile
from typing import Any

from prometheus_client import REGISTRY

from closedloop.schemas.policy import load_policy
from closedloop.streams.kafka.app import build_app
from closedloop.streams.kafka.settings import KafkaSettings

APP_ID = "closedloop"


def registered_metrics() -> list[dict[str, Any]]:
    # Label names are not public in prometheus-client: read them from the collectors, whose
    # `_labelnames` has been stable for years.
    labels_of: dict[str, list[str]] = {}
    buckets_of: dict[str, list[float]] = {}
    for collector, names in getattr(REGISTRY, "_collector_to_names", {}).items():
        for name in names:
            labels_of[name] = list(getattr(collector, "_labelnames", ()))
            bounds = getattr(collector, "_upper_bounds", None)  # histograms, incl. +Inf
            if bounds is not None:
                buckets_of[name] = [b for b in bounds if b != float("inf")]
    metrics = []
    for family in REGISTRY.collect():
        if not family.name.startswith("closedloop_"):
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        metrics.append({"name": name, "type": family.type,
                        "labels": labels_of.get(family.name),
                        "buckets": buckets_of.get(family.name)})
    return metrics


def main() -> int:
    with tempfile.TemporaryDirectory() as data_dir:
        app = build_app(KafkaSettings(bootstrap="127.0.0.1:9"), load_policy(None),
                        clock="wall", app_id=APP_ID, data_dir=data_dir, web_port=6066)
        loop = app.closedloop_loop
        json.dump({"app_id": APP_ID, "metrics": registered_metrics(), "reads": loop.reads,
                   "changelogs": sorted(spec.address for spec in loop.changelogs),
                   "transactional_id": loop.transactional_id}, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
