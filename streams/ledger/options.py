"""Options every ledger command shares, so ``--url`` means the same everywhere."""

from __future__ import annotations

import argparse

from closedloop.streams.ledger import DEFAULT_HELP

__all__ = ["add_url"]


def add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", metavar="URL",
        help=f"SQLAlchemy database URL (default {DEFAULT_HELP}); "
        "e.g. postgresql+psycopg://user@host/db",
    )
