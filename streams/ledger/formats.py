"""Rows as an aligned table for people, CSV or XLSX for spreadsheets, JSON for scripts.

Whatever the format, every text is written for people (CONTRACT.md §2): a raw identifier in
it is ``[redacted]`` (the ledger holds none, but a row recorded before the search was widened
might), and every CSV and spreadsheet cell goes through
:func:`closedloop.schemas.cells.spreadsheet_cell`, so a district ``=HYPERLINK(…)`` is never a
formula in Excel. CSV is UTF-8 with a byte order mark (Excel then reads Chinese correctly);
headers may be Chinese (``lang="zh"``). Tables align by display width, so Chinese names (two
columns each on a terminal) line up.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Sequence
from datetime import date, datetime
from typing import IO, Any, Final
from zoneinfo import ZoneInfo

from closedloop.schemas.cells import spreadsheet_cell
from closedloop.schemas.identifiers import redact_text

__all__ = [
    "FORMATS",
    "HEADERS_ZH",
    "LANGS",
    "display_width",
    "header",
    "pad",
    "write_csv",
    "write_rows",
    "write_xlsx",
]

FORMATS: Final = ("table", "csv", "json", "xlsx")
LANGS: Final = ("en", "zh")

HEADERS_ZH: Final = {
    "alert_id": "预警编号", "kind": "预警类型", "subject": "对象", "person": "人员",
    "person_id": "人员编号", "tube_id": "试管编号", "district": "区", "grid": "网格",
    "due_at": "到期时间", "raised_at": "预警时间", "details": "详情", "state": "状态",
    "level": "升级级别", "escalation_level": "升级级别", "escalated_at": "升级时间",
    "acknowledged_at": "签收时间", "acknowledged_by": "签收人", "resolved_at": "办结时间",
    "resolved_by": "办结人", "caught_up_at": "补采时间", "assignee": "指派给",
    "assigned_by": "指派人",
    "assigned_at": "指派时间", "note": "备注", "last_action": "最近处置", "last_by": "处置人",
    "sampled_after_close": "关闭后采样时间", "date": "日期", "pushed": "推送人数",
    "located": "落位人数", "under_control": "管控中", "followup_overdue_open": "随访超期",
    "tests_missed": "应检未检", "positives": "阳性", "checkpoint_entries": "卡口入城",
    "entries_without_proof": "无核酸证明", "landing_tests_missed": "落地检未检",
    "sentinel_visits": "哨点就诊", "sentinel_untested": "哨点未检测",
    "alerts_unresolved": "未办结预警", "entries": "录入条数", "entries_late": "迟录条数",
    "entry_lag_p90_minutes": "录入延迟P90（分钟）", "entries_rejected": "被拒条数",
    "findings_new": "新发现问题", "findings_open": "未闭环问题",
    "rectifications_overdue": "整改超期", "rechecks_failed": "回头看未通过",
    "repeat_offenders": "屡督屡犯", "round_id": "轮次", "stage": "阶段", "as_of": "截至",
    "in_scope": "应检人数", "sampled": "已检人数", "missed": "未检人数", "caught_up": "已补采",
    "not_on_roster": "名单外", "catchup_median_hours": "补采中位时长（小时）",
}
"""Column headers for a Chinese city's spreadsheets (``--lang zh``)."""

def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: wide and full-width characters (Chinese) two,
    combining marks none."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def pad(text: str, width: int) -> str:
    """``text`` left-aligned in ``width`` display columns."""
    return text + " " * max(0, width - display_width(text))


def header(column: str, lang: str = "en") -> str:
    return HEADERS_ZH.get(column, column) if lang == "zh" else column


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


def _header_of(plain: Sequence[dict[str, Any]], columns: Sequence[str],
               fields: Sequence[str] | None) -> list[str]:
    return list(plain[0]) if plain else list(fields or columns)


def write_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str], out: IO[bytes],
              zone: ZoneInfo, fields: Sequence[str] | None = None, lang: str = "en") -> None:
    """CSV in UTF-8 with a byte order mark, every field of the rows (a CSV of no rows: the
    header ``fields``, default ``columns``), each cell through ``spreadsheet_cell``."""
    plain = [{k: _plain(v, zone) for k, v in row.items()} for row in rows]
    names = _header_of(plain, columns, fields)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow([spreadsheet_cell(header(name, lang)) for name in names])
    writer.writerows([spreadsheet_cell(_cell(row.get(name))) for name in names] for row in plain)
    out.write(text.getvalue().encode("utf-8-sig"))


def write_xlsx(sheets: Sequence[tuple[str, Sequence[dict[str, Any]]]], columns: Sequence[str],
               out: IO[bytes], zone: ZoneInfo, lang: str = "en") -> None:
    """An XLSX workbook, one sheet per (name, rows), with ``columns``; numbers stay numbers,
    every text cell goes through ``spreadsheet_cell``."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    used: set[str] = set()
    for name, rows in sheets or [("-", [])]:
        sheet = book.create_sheet(_sheet_name(name, used))
        sheet.append([spreadsheet_cell(header(column, lang)) for column in columns])
        for row in rows:
            sheet.append([_xlsx_value(row.get(column), zone) for column in columns])
    # made whole in memory, then written: a write that fails (a full disk) is then one error
    # of ``out``, not a zip file left to fail again as it is collected
    made = io.BytesIO()
    book.save(made)
    out.write(made.getvalue())


def _xlsx_value(value: Any, zone: ZoneInfo) -> Any:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int | float):
        return value
    return spreadsheet_cell(_cell(_plain(value, zone)))


def _sheet_name(name: str, used: set[str]) -> str:
    """An Excel sheet name: at most 31 characters, none of []:*?/\\, unique in the book."""
    base = re.sub(r"[\[\]:*?/\\]", "_", name).strip("'") or "-"
    candidate, n = base[:31], 2
    while candidate.lower() in used:
        suffix = f" ({n})"
        candidate, n = base[:31 - len(suffix)] + suffix, n + 1
    used.add(candidate.lower())
    return candidate


def write_rows(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    fmt: str,
    out: IO[str],
    zone: ZoneInfo,
    fields: Sequence[str] | None = None,
    lang: str = "en",
) -> None:
    """Write ``rows`` as ``table`` (``columns``) or ``json`` (every field) to the text
    stream ``out``; ``csv`` to its binary buffer (UTF-8 with a BOM)."""
    if fmt == "csv":
        out.flush()
        write_csv(rows, columns, out.buffer, zone, fields, lang)  # type: ignore[attr-defined]
        out.buffer.flush()  # type: ignore[attr-defined]
        return
    plain = [{k: _plain(v, zone) for k, v in row.items()} for row in rows]
    if fmt == "json":
        out.write(json.dumps(plain, ensure_ascii=False, indent=2) + "\n")
        return
    cells = [[_cell(row.get(c)) or "-" for c in columns] for row in plain]
    names = [header(c, lang) for c in columns]
    widths = [max([display_width(n), *(display_width(line[i]) for line in cells)])
              for i, n in enumerate(names)]
    for line in [names, *cells]:
        out.write("  ".join(pad(v, w) for v, w in zip(line, widths, strict=True)).rstrip()
                  + "\n")
