"""What operators open in Excel: no cell is ever a formula (the cell rule itself is tested in
test_cells.py), Chinese reads right, and a table lines up Chinese names by the columns they
take on a terminal."""

from __future__ import annotations

import io
from zoneinfo import ZoneInfo

from openpyxl import load_workbook

from closedloop.streams.ledger.formats import display_width, write_csv, write_rows, write_xlsx

ZONE = ZoneInfo("Asia/Shanghai")


def test_csv_is_utf8_with_a_bom_chinese_headers_and_no_formula() -> None:
    out = io.BytesIO()
    write_csv([{"district": "=cmd|' /C calc'!A0", "grid": "网格一", "in_scope": 3}],
              ("district", "grid", "in_scope"), out, ZONE, lang="zh")
    data = out.getvalue()
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig").splitlines() == [
        "区,网格,应检人数", "'=cmd|' /C calc'!A0,网格一,3"]


def test_xlsx_has_one_sheet_per_grid_and_no_formula() -> None:
    out = io.BytesIO()
    rows = {"pudong g-1": [{"person": "p:1", "district": "=1+1", "n": 2}],
            "pudong no grid": [{"person": "p:2", "district": "pudong", "n": 3}]}
    write_xlsx(list(rows.items()), ("person", "district", "n"), out, ZONE)
    book = load_workbook(io.BytesIO(out.getvalue()))
    assert book.sheetnames == ["pudong g-1", "pudong no grid"]
    first = [[cell.value for cell in row] for row in book["pudong g-1"].iter_rows()]
    assert first == [["person", "district", "n"], ["p:1", "'=1+1", 2]]
    assert book["pudong g-1"]["B2"].data_type == "s"  # text, not a formula


def test_a_table_aligns_chinese_names_by_display_width() -> None:
    out = io.StringIO()
    write_rows([{"district": "浦东新区", "n": 1}, {"district": "xuhui", "n": 22}],
               ("district", "n"), "table", out, ZONE)
    lines = out.getvalue().splitlines()
    assert display_width("浦东新区") == 8
    # the second column starts at the same terminal column on every line
    starts = {display_width(line[:line.rindex(" ") + 1]) for line in lines}
    assert len(starts) == 1, lines


def test_the_demo_aligns_chinese_district_names_and_cuts_no_value() -> None:
    from closedloop.streams.cli.demo import _table, brief

    table = _table([{"district": "浦东新区", "pushed": 3}, {"district": "黄浦区", "pushed": 12},
                    {"district": "xuhui", "pushed": 1}], ["district", "pushed"])
    starts = {display_width(line[:line.rindex(" ") + 1]) for line in table.splitlines()}
    assert len(starts) == 1, table
    details = {"members": [f"p:{n:012d}" for n in range(10)], "pool_size": 10,
               "lab_id": "lab:01", "reported_at": "2022-09-06T19:56:51+08:00",
               "collected_at": "2022-09-06T07:17:40+08:00"}
    shown = brief(details)
    # whole values only: the first members and how many more, then keys that did not fit
    assert shown.startswith('{"members": ["p:000000000000", "p:000000000001", … 8 more], ')
    assert shown.endswith(" more}") and len(shown) <= 110
    assert brief({"rounds": ["r1"], "grid": None}) == '{"rounds": ["r1"], "grid": null}'
