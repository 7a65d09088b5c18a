"""The one JSONL reader, and the one reader of RuMedTop3 files (RuMedBench, Blinov et al. 2022, Apache-2.0):
jsonl lines of {idx, symptoms, code}.

The graph's symptom frequencies and the real-note import both read these files; both get the same validation
(UTF-8 text as core.textfile reads it, an ICD-10 code, non-empty fields without control characters) and the same
line-numbered problems.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.utils.translation import gettext as _

from .errors import InputError
from .icd10 import icd_code_clean
from .textfile import CONTROL_IN_TEXT, json_error_words, text_read_checked

FIELDS = ("idx", "symptoms", "code")


@dataclass(frozen=True)
class RuMedTop3Record:
    line: int
    idx: str
    text: str  # the "symptoms" field: the patient's complaints and anamnesis as written at the visit
    code: str  # upper-cased ICD-10 code


def jsonl_objects(path: Path, *, name: str | None = None) -> Iterator[tuple[int, dict | None, str]]:
    """(line number, object, "") for each JSON object line of a file, or (line number, None, problem); blank lines
    are skipped and a byte-order mark is ignored. The one JSONL reader of the product's imports.

    The file is read by core.textfile.text_read_checked: a line that is not UTF-8 or holds a NUL or another control
    character is a problem of its line (after a problem of line 0 that says what the file looks like when it is not
    UTF-8), so that every bad line of a file is reported at once; a file that is not text at all raises InputError
    (named name, default path.name). A line that is not valid JSON says why in words, with its column."""
    text, problems = text_read_checked(path, name=name)
    unreadable = dict(problems)
    if 0 in unreadable:
        yield 0, None, unreadable[0]
    # The line ends text_read_checked counts lines by (a JSON string may hold U+2028, which str.splitlines() splits).
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for number, line in enumerate(lines, start=1):
        if number in unreadable:
            yield number, None, unreadable[number]
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            yield number, None, json_error_words(error)
            continue
        if not isinstance(record, dict):
            yield number, None, _("not a JSON object")
            continue
        yield number, record, ""


def rumedtop3_rows(path: Path, *, name: str | None = None) -> Iterator[RuMedTop3Record | tuple[int, str]]:
    """Each record of a RuMedTop3 jsonl file, or (line, problem) for a bad line (line 0: a problem of the whole file);
    blank lines are skipped. name: the file's name in messages (default path.name)."""
    for number, record, problem in jsonl_objects(path, name=name):
        if record is None:
            yield number, problem
            continue
        missing = [key for key in FIELDS if not str(record.get(key) or "").strip()]
        if missing:
            yield number, _("missing or empty field(s): %(fields)s") % {"fields": ", ".join(missing)}
            continue
        # An escaped control character ("\u0000") passes text_read; PostgreSQL text cannot hold a NUL.
        if controlled := [key for key in FIELDS if CONTROL_IN_TEXT.search(str(record[key]))]:
            yield number, _("a control character in the field(s): %(fields)s") % {"fields": ", ".join(controlled)}
            continue
        try:
            code = icd_code_clean(record["code"])
        except ValueError as error:
            yield number, str(error)
            continue
        yield RuMedTop3Record(line=number, idx=str(record["idx"]), text=str(record["symptoms"]).strip(), code=code)


def rumedtop3_read(path: Path) -> list[RuMedTop3Record]:
    """Every record of a file, or InputError listing every bad line (nothing is returned then)."""
    records, problems = [], []
    for row in rumedtop3_rows(path):
        (problems if isinstance(row, tuple) else records).append(row)
    if problems:
        raise InputError(path.name, problems)
    return records
