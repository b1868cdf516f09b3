"""Options every ledger command shares, so ``--ledger URL`` means the same everywhere."""

from __future__ import annotations

import argparse

from closedloop.streams.ledger import DEFAULT_HELP

__all__ = ["add_ledger"]


def add_ledger(parser: argparse.ArgumentParser) -> None:
    """``--ledger URL`` (``--url`` is the same option, kept for scripts written before)."""
    parser.add_argument(
        "--ledger", "--url", dest="ledger", metavar="URL",
        help=f"the ledger's database URL (default {DEFAULT_HELP}); "
        "e.g. postgresql+psycopg://user@host/db",
    )
