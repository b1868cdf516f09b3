"""The ledger's commands sit beside the existing ones without changing them."""

from __future__ import annotations

import pytest

from closedloop.streams.cli import build_parser
from closedloop.streams.cli.alerts import run as run_alerts


def test_alerts_tail_still_parses_and_list_is_added() -> None:
    parser = build_parser()
    tail = parser.parse_args(["alerts", "tail", "--from-beginning", "--kind", "positive"])
    assert tail.alerts_command == "tail" and tail.from_beginning and tail._run is run_alerts
    listing = parser.parse_args(["alerts", "list", "--open", "--district", "xuhui",
                                 "--format", "csv", "--url", "sqlite:///x.db"])
    assert (listing.alerts_command, listing.open, listing.district, listing.format) == (
        "list", True, ["xuhui"], "csv")


@pytest.mark.parametrize("argv", [
    ["db", "upgrade", "--url", "sqlite:///x.db"],
    ["db", "downgrade", "base"],
    ["sink", "--from-beginning", "--idle-exit", "3"],
    ["report", "daily", "--date", "2022-09-08", "--format", "json"],
])
def test_ledger_commands_parse(argv: list[str]) -> None:
    assert callable(build_parser().parse_args(argv)._run)
