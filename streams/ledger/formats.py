"""Rows as an aligned table for people, or CSV / JSON for spreadsheets and scripts.

Whatever the format, every text is written for people (CONTRACT.md §2): a raw identifier in
it is ``[redacted]`` (the ledger holds none, but a row recorded before the search was widened
might), and a CSV cell never begins a formula (:func:`closedloop.schemas.cells.spreadsheet_cell`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import IO, Any, Final
from zoneinfo import ZoneInfo

from closedloop.schemas.cells import spreadsheet_cell
from closedloop.schemas.identifiers import redact_text

__all__ = ["FORMATS", "write_rows"]

FORMATS: Final = ("table", "csv", "json")


def _plain(value: Any, zone: ZoneInfo) -> Any:
    """A JSON-ready value; instants in the policy's zone, as the engine writes them."""
    if isinstance(value, datetime):
        return value.astimezone(zone).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {redact_text(str(k)): _plain(v, zone) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, zone) for v in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def write_rows(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    fmt: str,
    out: IO[str],
    zone: ZoneInfo,
    fields: Sequence[str] | None = None,
) -> None:
    """Write ``rows``: ``table`` shows ``columns``; ``csv`` and ``json`` every field, and a
    ``csv`` of no rows the header ``fields`` (default ``columns``): the one its rows have."""
    plain = [{k: _plain(v, zone) for k, v in row.items()} for row in rows]
    if fmt == "json":
        out.write(json.dumps(plain, ensure_ascii=False, indent=2) + "\n")
        return
    if fmt == "csv":
        header = list(plain[0]) if plain else list(fields or columns)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([spreadsheet_cell(_cell(row.get(f))) for f in header] for row in plain)
        return
    cells = [[_cell(row.get(c)) or "-" for c in columns] for row in plain]
    widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    for line in [list(columns), *cells]:
        out.write("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() + "\n")
