"""Reading an uploaded text file: UTF-8, with or without a byte-order mark, and nothing else.

A file in another encoding is refused with what it looks like ("Windows-1251 (Cyrillic)", "UTF-16", a
spreadsheet) and every line that is not UTF-8, so the person who uploaded it knows how to save it; a NUL or another
control character (tab and line ends excepted) is refused with its line too: PostgreSQL text and FalkorDB queries
cannot hold a NUL. text_read refuses such a file at once; text_read_checked leaves its bad lines empty and returns
their problems, so that a parser reports them together with its own (every bad line of a file in one answer).
csv_records reads CSV text with the line where each record starts and refuses broken quoting; json_error_words says
what is wrong with a line of JSON, in words, with its column.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .errors import InputError

BOM = "\ufeff"
# Unicode's control characters (category Cc): none belongs in a key or a search, and a NUL cuts a FalkorDB query.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# The control characters text may not hold: C0 but tab and the line ends, and DEL. (C1, U+0080-U+009F, is left to
# text: U+0085 is a Unicode line break that notes, and our own release files, may carry.)
CONTROL_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_BINARY_MAGIC = {
    b"PK\x03\x04": gettext_noop("a ZIP archive, or an Excel / OpenDocument spreadsheet (export it as CSV, UTF-8)"),
    b"\xd0\xcf\x11\xe0": gettext_noop("an old Excel (.xls) or Word file (export it as CSV, UTF-8)"),
    b"%PDF": gettext_noop("a PDF document"),
}
# Single-byte Cyrillic encodings, named as office suites name them: Russian text is mostly lower-case letters, and
# each of these puts them elsewhere.
_CYRILLIC = {"cp1251": gettext_noop("Windows-1251 (Cyrillic)"), "koi8_r": gettext_noop("KOI8-R (Cyrillic)"),
             "cp866": gettext_noop("cp866 (DOS Cyrillic)")}
# What json.JSONDecodeError.msg says (CPython's scanner), in words a person who edits the file can act on.
_JSON_ERRORS = {
    "Expecting value": gettext_noop("a value was expected here (a comma too many, or a word without quotes?)"),
    "Expecting property name enclosed in double quotes": gettext_noop(
        "a key in double quotes was expected here (a comma too many, or a key without quotes?)"),
    "Expecting ':' delimiter": gettext_noop("a colon (:) was expected after the key"),
    "Expecting ',' delimiter": gettext_noop("a comma (,) was expected between two items"),
    "Unterminated string starting at": gettext_noop("the text in quotes that starts here is never closed"),
    "Invalid \\escape": gettext_noop("an unknown escape after a backslash (write a backslash itself as \\\\)"),
    "Invalid \\uXXXX escape": gettext_noop("a \\u escape needs four hexadecimal digits"),
    "Extra data": gettext_noop("more text after the end of the JSON value (two records on one line?)"),
}


def text_read(path: Path, *, name: str | None = None) -> str:
    """The text of the file at path (text_decode); name is the file's name in messages (default: path.name)."""
    return text_decode(path.read_bytes(), name=name or path.name)


def text_decode(data: bytes, *, name: str) -> str:
    """UTF-8 text with a leading byte-order mark dropped, or InputError: a problem for the whole file (line 0) that
    says what it looks like when it is not UTF-8, then every bad line with its number."""
    text, problems = text_decode_checked(data, name=name)
    if problems:
        raise InputError(name, problems)
    return text


def text_read_checked(path: Path, *, name: str | None = None) -> tuple[str, list[tuple[int, str]]]:
    """text_decode_checked of the file at path; name is the file's name in messages (default: path.name)."""
    return text_decode_checked(path.read_bytes(), name=name or path.name)


def text_decode_checked(data: bytes, *, name: str) -> tuple[str, list[tuple[int, str]]]:
    """(text, problems): the UTF-8 text with a leading byte-order mark dropped, and no problem; or, when some lines
    are not UTF-8 or hold a control character, the text with those lines left empty (the other lines keep their
    numbers; the line ends become \\n) and a problem for each, after a problem for the whole file (line 0) that says
    what it looks like when it is not UTF-8. A file that is no text at all (a spreadsheet, a PDF) or is UTF-16
    raises InputError: none of its lines could be read."""
    for magic, what in _BINARY_MAGIC.items():
        if data.startswith(magic):
            raise InputError(name, [(0, _("not a text file: it looks like %(what)s") % {"what": _(what)})])
    if data.startswith(_UTF16_BOMS) or _looks_utf16(data):
        raise InputError(name, [(0, _not_utf8(_("UTF-16")))])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not CONTROL_IN_TEXT.search(text):
        return (text[1:] if text.startswith(BOM) else text), []
    lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    problems, kept = [], []
    for number, line in enumerate(lines, start=1):
        problem = _line_problem(line)
        if problem is not None:
            problems.append((number, problem))
        kept.append("" if problem is not None else line.decode("utf-8"))
    if not_utf8 := [line for line in lines if not _is_utf8(line)]:
        problems.insert(0, (0, _not_utf8(encoding_guess(b"\n".join(not_utf8)))))
    text = "\n".join(kept)
    return (text[1:] if text.startswith(BOM) else text), problems


def json_error_words(error: json.JSONDecodeError) -> str:
    """What is wrong with a JSON text, in words, with the column (and the line, for a text of several lines) where
    json.loads stopped: "not valid JSON at column 9: a raw control character (U+0009) in quotes; ..."."""
    where = (_("at line %(line)d, column %(column)d") % {"line": error.lineno, "column": error.colno}
             if error.lineno > 1 else _("at column %(column)d") % {"column": error.colno})
    if error.msg.startswith("Invalid control character"):
        code = ord(error.doc[error.pos]) if error.pos < len(error.doc) else 0
        what = _("a raw control character (U+%(code)04X) in quotes; write a tab as \\t and a line break as \\n") % {
            "code": code}
    elif error.msg in _JSON_ERRORS:
        what = _(_JSON_ERRORS[error.msg])
    else:
        what = error.msg
    return _("not valid JSON %(where)s: %(what)s") % {"where": where, "what": what}


def encoding_guess(data: bytes) -> str:
    """What non-UTF-8 bytes look like, for a person: a Cyrillic code page, Western European, or unknown."""
    high = bytes(b for b in data if b >= 0x80)
    if not high:
        return _("an unknown encoding")

    def share(encoding: str, wanted) -> float:
        decoded = high.decode(encoding, errors="replace")
        return sum(1 for char in decoded if wanted(char)) / len(decoded)

    # Russian words are runs of non-ASCII bytes; Western European text has an accented letter here and there.
    in_runs = len(re.findall(rb"[\x80-\xff]{2,}", data) and b"".join(re.findall(rb"[\x80-\xff]{2,}", data)))
    scores = {encoding: share(encoding, lambda c: "а" <= c <= "я" or c == "ё") for encoding in _CYRILLIC}
    best = max(scores, key=scores.__getitem__)
    if scores[best] >= 0.5 and in_runs >= len(high) / 2:
        return _(_CYRILLIC[best])
    if share("cp1252", str.isalpha) >= 0.5:
        return _("cp1252 / Latin-1 (Western European)")
    return _("an unknown encoding")


def _not_utf8(what: str) -> str:
    return _("not UTF-8 text: it looks like %(what)s; save it as UTF-8 and upload it again") % {"what": what}


def _looks_utf16(data: bytes) -> bool:
    """UTF-16 without a byte-order mark: every other byte is a NUL (Latin text) or 0x04 (Cyrillic), control bytes
    that UTF-8 text has almost never."""
    if len(data) < 4:
        return False
    return any(sum(1 for byte in half if byte <= 0x08) >= 0.4 * len(half) for half in (data[0::2], data[1::2]))


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _line_problem(line: bytes) -> str | None:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        return _("not UTF-8 (byte 0x%(byte)02X at column %(column)d)") % {
            "byte": line[error.start], "column": len(line[:error.start].decode("utf-8", errors="replace")) + 1}
    if (found := CONTROL_IN_TEXT.search(text)) is not None:
        return _("holds a control character (U+%(code)04X) at column %(column)d") % {
            "code": ord(found.group()), "column": found.start() + 1}
    return None


def csv_records(text: str, *, multiline: bool = False) -> Iterator[tuple[int, list[str] | None, str]]:
    """(line where the record starts, its fields, "") for each record of CSV text, or (line, None, problem) for a
    record with broken quoting: a quote inside a field, a quote never closed, or (unless multiline) a quoted field
    that runs over several lines, which is almost always a quote left open. Blank lines give no record."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    end = 0
    while True:
        start = end + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            end = reader.line_num
            yield start, None, _("broken quoting (%(error)s): is a quote not closed?") % {"error": error}
            continue
        end = reader.line_num
        if not fields:
            continue
        if end > start and not multiline:
            yield start, None, _("a quoted field runs over lines %(start)d-%(end)d: is a quote not closed?") % {
                "start": start, "end": end}
            continue
        yield start, fields, ""
