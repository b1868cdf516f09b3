"""The SQL ledger: the durable, queryable record of what the engine produced (CONTRACT.md §5).

Alerts with their operator lifecycle, daily closure reports, each person's current status and
the metadata of rejected input live here, so operators can list open alerts and print the
日清日结 table without reading Kafka. PostgreSQL in production and CI; an embedded SQLite file
by default, so a laptop needs no server.

Every command that writes or reads the ledger (``demo``, ``replay --ledger``, ``db``, ``sink``,
``alerts list|ack|resolve``, ``report daily``) finds the same one when given no URL:
``$CLOSEDLOOP_DATABASE_URL``, else ``closedloop.db`` in the current directory. So what
``demo`` fills, ``alerts list`` reads, with nothing to copy between them.

This module stays import-light (no SQLAlchemy) because every command's parser loads it.
"""

from __future__ import annotations

import os
from typing import Final

__all__ = ["DEFAULT_HELP", "DEFAULT_URL", "URL_ENV", "database_url"]

URL_ENV: Final = "CLOSEDLOOP_DATABASE_URL"
DEFAULT_URL: Final = "sqlite:///closedloop.db"
DEFAULT_HELP: Final = f"${URL_ENV}, else {DEFAULT_URL}: closedloop.db in the current directory"
"""The default ledger as the commands' ``--help`` states it."""


def database_url(given: str | None) -> str:
    """``--url`` if given, else ``$CLOSEDLOOP_DATABASE_URL``, else the embedded SQLite file."""
    return given or os.environ.get(URL_ENV) or DEFAULT_URL
