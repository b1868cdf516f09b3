"""Cells of a CSV file or a spreadsheet that no spreadsheet reads as a formula (CONTRACT.md §2).

Excel, LibreOffice and Google Sheets evaluate a cell whose text begins with ``=``, ``+``,
``-`` or ``@`` (and, after a tab or a carriage return, what follows them), even in a plain
CSV file: a district named ``=HYPERLINK("http://…")`` in the catch-up list a grid worker opens
becomes a link that sends the row away. Every cell written for a spreadsheet therefore goes
through :func:`spreadsheet_cell`, as OWASP advises: such a text gets a single quote in front,
which spreadsheets show as text and do not display. A number stays as it is (``-3``, ``+86``
and ``1.5e-3`` are numbers to a spreadsheet, not formulas), so counts and coordinates keep
their values.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["FORMULA_STARTS", "spreadsheet_cell"]

FORMULA_STARTS: Final = frozenset("=+-@\t\r")
# A number as a spreadsheet reads one on its own: sign, digits, decimals, exponent; nothing
# else, so "-1+2" or "+1)" (formulas) are not numbers.
_NUMBER: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def spreadsheet_cell(text: str) -> str:
    """``text`` as a CSV or spreadsheet cell: prefixed with ``'`` when it begins with ``=``,
    ``+``, ``-``, ``@``, a tab or a carriage return and is not a number; else unchanged."""
    if not text or text[0] not in FORMULA_STARTS or _NUMBER.fullmatch(text):
        return text
    return "'" + text
