"""The demo's data-entry section (录入及时): its city's sources enter records with their habits
(``simulate --receipts``), and the demo prints the last day's late sources and every silent
lab of the run, each row the alert the run raised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from closedloop.streams.cli import main


def _section(lines: list[str], title: str) -> list[list[str]]:
    """The rows (split on blanks) of the table under the line starting with ``title``, its
    header row first."""
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows: list[list[str]] = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def test_the_demo_shows_the_days_late_sources_and_its_silent_labs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    out_dir = tmp_path / "out"
    assert main(["demo", "--people", "300", "--days", "3", "--ledger", url,
                 "--out", str(out_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    alerts: list[dict[str, Any]] = [
        orjson.loads(line) for line in (out_dir / "alerts.jsonl").read_bytes().splitlines()]
    reports = [orjson.loads(line)
               for line in (out_dir / "reports.jsonl").read_bytes().splitlines()]
    day = max(r["date"] for r in reports)
    # the summary counts the lines of known lag: every applied line of this city
    summary = next(line for line in lines if line.startswith("entries of known entry lag "))
    applied = next(line for line in lines if line.startswith("events read "))
    assert summary.split()[5].rstrip(";") == applied.split("applied ")[1].split(";")[0]
    # the city's every line carries its receipt: the report's entry columns are filled
    entries = _section(lines, "the same day's data entry")
    assert entries[0] == ["district", "entries", "entries_late", "entries_rejected"]
    today = [r for r in reports if r["date"] == day]
    assert entries[-1] == ["total", *(str(sum(r[c] for r in today)) for c in
                                      ("entries", "entries_late", "entries_rejected"))]
    assert int(entries[-1][1]) > 0
    late = _section(lines, f"late sources (录入不及时) at the {day} cut-off")
    assert late[0] == ["source", "district", "entries", "late", "late_share",
                       "lag_p90_minutes", "worst_lag_minutes"]
    raised = [a for a in alerts if a["kind"] == "late_entries" and a["due_at"][:10] == day]
    assert raised  # the site that batches its swabs is late that day
    assert late[1:] == [[a["subject"], a["district"] or "-",
                         *(str(a["details"][c]) for c in ("entries", "late", "late_share",
                                                          "lag_p90_minutes",
                                                          "worst_lag_minutes"))]
                        for a in raised]
    silent = _section(lines, "silent labs (检测机构停报)")
    assert silent[0] == ["lab", "silent_from", "pending_tubes", "last_reported_at"]
    labs = [a for a in alerts if a["kind"] == "lab_silent"]
    assert labs  # the lab whose upload stalls
    assert silent[1:] == [[a["subject"], a["due_at"], str(a["details"]["pending_tubes"]),
                           a["details"]["last_reported_at"] or "-"] for a in labs]
