"""A testing round's catch-up list (查漏补测), per grid, for grid workers.

::

    from closedloop.streams.app import catchup
    grids = catchup.catchup_list(connection, caller, ("round-citywide",), pending=True)
    for grid in grids:            # by district, then grid (persons without a grid last)
        grid.district, grid.grid, grid.rows, grid.name

One row per ``round_missed`` alert of the round (one per person missed: an alert covers every
round closing at its instant): person (the alert's subject), district, grid, due_at (the
close), state, caught_up_at (the first catch-up sampling, when the system closed it),
sampled_after_close (the person's latest sampling after the close, as their state in the
ledger says), assignee, alert_id. ``pending`` keeps only those still to be sampled:
neither caught up nor resolved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection

from closedloop.streams.app.alerts import OPEN, AlertFilter, list_alerts
from closedloop.streams.app.caller import Caller
from closedloop.streams.ledger.queries import last_samplings

__all__ = ["COLUMNS", "GridList", "catchup_list", "sheets"]

COLUMNS: Final = ("district", "grid", "person", "due_at", "state", "caught_up_at",
                  "sampled_after_close", "assignee", "alert_id")


@dataclass(frozen=True, slots=True)
class GridList:
    district: str | None
    grid: str | None  # None: the roster gives the person no grid
    rows: list[dict[str, Any]]

    @property
    def name(self) -> str:
        """The grid as a workbook's sheet is named: district and grid."""
        return f"{self.district or '-'} {self.grid or 'no grid'}"


def sheets(grids: Sequence[GridList]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The catch-up list as a workbook's sheets: one (name, rows) per grid."""
    return [(grid.name, grid.rows) for grid in grids]


def catchup_list(connection: Connection, caller: Caller, round_ids: Sequence[str], *,
                 pending: bool = False, districts: Sequence[str] = ()) -> list[GridList]:
    """The caller's round_missed alerts of these rounds, grouped per (district, grid)."""
    wanted = AlertFilter(kinds=("round_missed",), rounds=tuple(round_ids),
                         districts=tuple(districts), states=OPEN if pending else ())
    alerts = list_alerts(connection, caller, wanted).rows
    sampled = last_samplings(connection, [row["subject"] for row in alerts])
    rows = []
    for alert in alerts:
        latest = sampled.get(alert["subject"])
        rows.append({
            "district": alert["district"], "grid": (alert["details"] or {}).get("grid"),
            "person": alert["subject"], "due_at": alert["due_at"], "state": alert["state"],
            "caught_up_at": alert["caught_up_at"],
            "sampled_after_close": latest if latest is not None and latest > alert["due_at"]
            else None,
            "assignee": alert["assignee"], "alert_id": alert["alert_id"],
        })
    rows.sort(key=lambda r: (r["district"] or "", r["grid"] is None, r["grid"] or "",
                             r["person"]))
    grids: list[GridList] = []
    for row in rows:
        if not grids or (grids[-1].district, grids[-1].grid) != (row["district"], row["grid"]):
            grids.append(GridList(row["district"], row["grid"], []))
        grids[-1].rows.append(row)
    return grids
