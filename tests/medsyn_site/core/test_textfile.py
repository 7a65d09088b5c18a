"""Uploaded text files: UTF-8 with or without a byte-order mark is read; anything else is refused with what it looks
like and every bad line; CSV records carry the line they start on, and broken quoting is refused with it."""

from __future__ import annotations

import pytest

from medsyn_site.core.errors import InputError
from medsyn_site.core.textfile import csv_records, text_decode, text_read

RUSSIAN = "code,name_ru\nJ06,Острые инфекции верхних дыхательных путей\nJ06.9,ОРВИ неуточнённая\n"


def _problems(data: bytes) -> list[tuple[int, str]]:
    with pytest.raises(InputError) as caught:
        text_decode(data, name="names.csv")
    assert caught.value.source == "names.csv"
    return caught.value.problems


def test_utf8_with_and_without_a_byte_order_mark_reads_the_same(tmp_path):
    assert text_decode(RUSSIAN.encode(), name="x") == RUSSIAN
    assert text_decode(b"\xef\xbb\xbf" + RUSSIAN.encode(), name="x") == RUSSIAN
    path = tmp_path / "names.csv"
    path.write_bytes(RUSSIAN.replace("\n", "\r\n").encode("utf-8-sig"))
    assert text_read(path) == RUSSIAN.replace("\n", "\r\n")


@pytest.mark.parametrize(("encoding", "looks_like"), [
    ("cp1251", "cp1251 (Windows Cyrillic)"), ("koi8_r", "KOI8-R (Cyrillic)"), ("cp866", "cp866 (DOS Cyrillic)")])
def test_a_cyrillic_code_page_is_named_and_every_bad_line_listed(encoding, looks_like):
    problems = _problems(RUSSIAN.encode(encoding))
    assert problems[0] == (0, f"not UTF-8 text: it looks like {looks_like}; save it as UTF-8 and upload it again")
    assert [line for line, _ in problems[1:]] == [2, 3]  # line 1 is plain ASCII
    assert problems[1][1].startswith("not UTF-8 (byte 0x") and "column 5" in problems[1][1]


def test_utf16_western_european_and_spreadsheets_are_named():
    assert "looks like UTF-16" in _problems(RUSSIAN.encode("utf-16"))[0][1]
    assert "looks like UTF-16" in _problems(RUSSIAN.encode("utf-16-le"))[0][1]  # no byte-order mark
    assert "cp1252 / Latin-1 (Western European)" in _problems("name\ncafé crème\n".encode("cp1252"))[0][1]
    assert "Excel" in _problems(b"PK\x03\x04\x14\x00\x06\x00")[0][1]


def test_nul_and_control_characters_are_refused_by_line_but_tabs_pass():
    assert text_decode(b"a\tb\r\n", name="x") == "a\tb\r\n"
    assert _problems(b"ok\nJ06,a\x00b\nfine\n\x1b[31m\n") == [
        (2, "holds a control character (U+0000) at column 6"), (4, "holds a control character (U+001B) at column 1")]


def test_one_bad_line_in_a_utf8_file_is_reported_with_its_line():
    data = "code,name_ru\nJ06,кашель\n".encode() + "J07,насморк\n".encode("cp1251") + b"J08,ok\n"
    problems = _problems(data)
    assert [line for line, _ in problems] == [0, 3]


def test_csv_records_start_lines_and_broken_quoting():
    text = 'code,name_ru\r\n\r\nJ06,"a, b"\r\nJ07,"x"y\r\nJ08,"open\r\nJ09,z\r\nJ10,"t"\r\nJ11,ok\r\n'
    rows = list(csv_records(text))
    assert [(line, fields) for line, fields, _ in rows if fields] == [
        (1, ["code", "name_ru"]), (3, ["J06", "a, b"]), (8, ["J11", "ok"])]
    assert [(line, problem.split(" ")[0]) for line, fields, problem in rows if fields is None] == [
        (4, "broken"), (5, "broken")]
    assert list(csv_records('a,"never closed\nb,c\n')) == [
        (1, None, "broken quoting (unexpected end of data): is a quote not closed?")]
    assert list(csv_records('a,"two\nlines"\nb,c\n')) == [
        (1, None, "a quoted field runs over lines 1-2: is a quote not closed?"), (3, ["b", "c"], "")]
    assert list(csv_records('a,"two\nlines"\n', multiline=True)) == [(1, ["a", "two\nlines"], "")]
