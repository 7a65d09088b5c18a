"""Uploaded text files: UTF-8 with or without a byte-order mark is read; anything else is refused with what it looks
like and every bad line; CSV records carry the line they start on, and broken quoting is refused with it; a JSONL
file's problems name the line and the column, in words, all of them at once."""

from __future__ import annotations

import json

import pytest
from django.utils import translation

from medsyn_site.core.errors import InputError
from medsyn_site.core.rumedbench import jsonl_objects, rumedtop3_read
from medsyn_site.core.textfile import csv_records, json_error_words, text_decode, text_decode_checked, text_read

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
    ("cp1251", "Windows-1251 (Cyrillic)"), ("koi8_r", "KOI8-R (Cyrillic)"), ("cp866", "cp866 (DOS Cyrillic)")])
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


def test_a_cp1251_file_is_said_in_words_to_be_windows_1251_not_raw_python(tmp_path):
    path = tmp_path / "visits.jsonl"
    path.write_bytes('{"idx": "1", "symptoms": "Жалобы на кашель и слабость", "code": "J06.9"}\n'.encode("cp1251"))
    with pytest.raises(InputError) as caught:
        rumedtop3_read(path)
    message = str(caught.value)
    assert "not UTF-8 text: it looks like Windows-1251 (Cyrillic); save it as UTF-8 and upload it again" in message
    assert "UnicodeDecodeError" not in message and "codec" not in message
    with translation.override("ru"):
        russian = _problems('Жалобы на кашель\n'.encode("cp1251"))[0][1]
    assert "UTF-8" in russian and "Windows-1251" in russian and "looks like" not in russian


@pytest.mark.parametrize(("encoding", "looks_like"), [
    ("cp1251", "Windows-1251"), ("koi8_r", "KOI8-R"), ("utf-16-le", "UTF-16"), ("utf-16", "UTF-16")])
def test_the_candidate_giving_the_most_russian_letters_is_named(encoding, looks_like):
    text = "Пациентка жалуется на головную боль и повышение температуры до 38 градусов.\n" * 3
    assert f"looks like {looks_like}" in _problems(text.encode(encoding))[0][1]


@pytest.mark.parametrize(("line", "words"), [
    ('{"symptoms": "кашель\tслабость"}', "not valid JSON at column 21: a raw control character (U+0009) in quotes"),
    ('{"idx": 1,}', "not valid JSON at column 11: a key in double quotes was expected here"),
    ('{"idx" 1}', "not valid JSON at column 8: a colon (:) was expected after the key"),
    ('{"idx": "1" "code": "J06"}', "not valid JSON at column 13: a comma (,) was expected between two items"),
    ('{"idx": "1', "not valid JSON at column 9: the text in quotes that starts here is never closed"),
    ('{"idx": 1} {"idx": 2}', "not valid JSON at column 12: more text after the end of the JSON value"),
])
def test_a_json_error_keeps_its_column_in_words(line, words):
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads(line)
    assert json_error_words(caught.value).startswith(words)
    assert "Expecting" not in json_error_words(caught.value) and "Invalid" not in json_error_words(caught.value)


def test_a_json_error_in_a_text_of_several_lines_names_the_line_too():
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads('[\n  {"type": "scale"},\n  {"type": }\n]')
    assert json_error_words(caught.value).startswith("not valid JSON at line 3, column 12: a value was expected")


def test_every_bad_line_of_a_jsonl_file_is_reported_at_once_with_line_and_column(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join([
        '{"idx": "1", "symptoms": "кашель", "code": "J06.9"}'.encode(),
        b'{"idx": "2", "symptoms": "a\x00b", "code": "J06.9"}',  # a raw NUL: the line is refused by textfile
        '{"idx": "3", "symptoms": "насморк", "code": "J06.9"}'.encode("cp1251"),  # one line pasted from elsewhere
        '{"idx": "4", "symptoms": "боль\tв горле", "code": "J06.9"}'.encode(),  # a raw tab: JSON refuses it
        b'{"idx": "5", "symptoms": "x" "code": "J06.9"}',
        b"[1, 2]",
        b"",
        '{"idx": "8", "symptoms": "слабость", "code": "J06.9"}'.encode(),
    ]))
    rows = list(jsonl_objects(path, name="visits.jsonl"))
    problems = [(line, problem) for line, record, problem in rows if record is None]
    assert [line for line, _ in problems] == [0, 2, 3, 4, 5, 6]
    assert problems[1][1] == "holds a control character (U+0000) at column 28"
    assert problems[2][1].startswith("not UTF-8 (byte 0x")
    assert problems[3][1].startswith("not valid JSON at column 31: a raw control character (U+0009) in quotes")
    assert problems[4][1].startswith("not valid JSON at column 30: a comma (,) was expected")
    assert problems[5][1] == "not a JSON object"
    assert [line for line, record, _ in rows if record is not None] == [1, 8]
    with pytest.raises(InputError) as caught:
        rumedtop3_read(path)
    assert [line for line, _ in caught.value.problems] == [0, 2, 3, 4, 5, 6]


def test_checked_reading_leaves_bad_lines_empty_and_keeps_the_others_numbered():
    text, problems = text_decode_checked(b"\xef\xbb\xbfcode,name_ru\r\nJ06,\xe0\r\nJ07,ok\r\n", name="x.csv")
    assert text == "code,name_ru\n\nJ07,ok\n" and [line for line, _ in problems] == [0, 2]
    assert [(line, fields) for line, fields, _ in csv_records(text)] == [(1, ["code", "name_ru"]), (3, ["J07", "ok"])]
    assert text_decode_checked(RUSSIAN.encode(), name="x") == (RUSSIAN, [])
    with pytest.raises(InputError):
        text_decode_checked(b"PK\x03\x04\x14\x00", name="x.xlsx")
