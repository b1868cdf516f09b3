"""Alerts: ``closedloop alerts tail|list|ack|resolve`` (watch, list, handle an alert)."""

from __future__ import annotations

from closedloop.streams.kafka_cli import add_alerts_parser as add_parser
from closedloop.streams.kafka_cli import run_alerts as run

__all__ = ["add_parser", "run"]
