"""CSV cells a spreadsheet will not run: the one defence against formula (CSV) injection on every CSV export.

A cell that begins with = + - @ (or a tab / carriage return, which some spreadsheets skip before reading a formula)
is read by Excel, LibreOffice and Google Sheets as a formula: `=HYPERLINK("http://evil", "click")` in a physician's
comment would reach the curator's spreadsheet as a live link. Following OWASP's advice, such a cell is written with a
leading apostrophe, which spreadsheets show as text and do not display. Only CSV files get this treatment: JSONL and
Parquet keep every value exactly as stored. csv_cell_restore undoes it when the product reads its own CSV back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

NEUTRALISED_NOTE = (
    "CSV cells that begin with =, +, -, @, a tab or a carriage return are written with a leading apostrophe (') so "
    "that spreadsheets show them as text instead of running them as formulas; the JSONL and Parquet files keep "
    "every value exactly."
)


def csv_cell_safe(value: Any) -> Any:
    """The value as a CSV cell no spreadsheet runs as a formula; numbers, booleans and None pass unchanged."""
    if isinstance(value, str) and value.lstrip("'").startswith(FORMULA_TRIGGERS):
        return "'" + value  # "'=x" too, so that csv_cell_restore can tell it from a neutralised "=x"
    return value


def csv_row_safe(values: Iterable[Any]) -> list[Any]:
    return [csv_cell_safe(value) for value in values]


def csv_cell_restore(value: str) -> str:
    """A cell as it was before csv_cell_safe (which added one apostrophe to every value whose apostrophes are
    followed by a formula trigger): that apostrophe is dropped; any other cell is unchanged."""
    if value.startswith("'") and value.lstrip("'").startswith(FORMULA_TRIGGERS):
        return value[1:]
    return value
