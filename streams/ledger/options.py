"""Options every ledger command shares, so ``--url`` means the same everywhere."""

from __future__ import annotations

import argparse

from closedloop.streams.ledger import DEFAULT_URL, URL_ENV

__all__ = ["add_url"]


def add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", metavar="URL",
        help=f"SQLAlchemy database URL (default ${URL_ENV}, else {DEFAULT_URL}); "
        "e.g. postgresql+psycopg://user@host/db",
    )
