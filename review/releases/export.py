"""Writes one dataset release folder (Parquet, JSONL, CSV, a Hugging Face dataset card, SHA256SUMS) from rows.

Database-agnostic on purpose: the caller streams plain dicts (ALL_COLUMNS, already in final form) and passes the
card facts, so the writer can be tested without a database and never holds a whole release in memory: rows are
written in chunks to the three formats at once, and the statistics for the card are gathered in the same pass.

Layout of the folder:

    data/train.parquet   all columns, one row group per chunk (the `datasets` default config)
    jsonl/train.jsonl    all columns, one UTF-8 JSON object per line
    csv/train.csv        the 12 MedSyn release columns only (readable by generation.services.medsyn_csv_rows); a
                         cell a spreadsheet would run as a formula is neutralised (core.spreadsheet, said in the card)
    README.md            the dataset card: YAML header (licence, configs, features, row count), statistics
    SHA256SUMS           `sha256sum -c` format, for every file above
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import html
import json
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml  # PyYAML, required by `datasets`

from medsyn_site.core.spreadsheet import NEUTRALISED_NOTE, csv_row_safe
from medsyn_site.core.storage import folder_swap

PRIVATE_DATA = "private_data"  # the `anamnesis` of a note whose example note may not be published

# (name, Arrow type, meaning); the first 12 are the MedSyn release layout, in its order.
_COLUMNS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("idx", pa.int64(), "Row identifier in the MedSyn release layout."),
    ("ICD-10", pa.string(), "ICD-10 code the note was written for (real notes: the code they carry)."),
    ("generation_model", pa.string(), "Model configuration that wrote the note; empty for real notes."),
    ("prompt", pa.string(), "The prompt the model was given (a private example note appears as `private_data`)."),
    ("prior", pa.string(), "Prior knowledge put into the prompt (MedSyn layout)."),
    ("example", pa.bool_(), "Whether the prompt contained an example note; null when not applicable."),
    ("example source", pa.string(), "Corpus the example note came from."),
    ("response", pa.string(), "The note text (Russian)."),
    ("symptoms", pa.string(), "Symptoms given in the prompt, joined with `; `."),
    ("anamnesis", pa.string(), "The example note, or `private_data` when its source is not open data."),
    ("symptoms_recall", pa.float64(), "Share of the prompt symptoms found in the note; null when not computed."),
    ("anamnesis_precision", pa.float64(), "Overlap of the note with the example note; null when not computed."),
    ("note_id", pa.int64(), "Note id in MedSyn Studio."),
    ("note_version", pa.int64(), "Version of the note text in MedSyn Studio."),
    ("origin", pa.string(), "`synthetic` or `real`."),
    ("icd_chapter", pa.string(), "ICD-10 chapter (Roman numeral; `?` when unknown)."),
    ("prompt_variant", pa.string(), "Prompt template variant (e.g. `symptoms_example`); empty for real notes."),
    ("checks_passed", pa.bool_(), "Whether the note passed the automatic checks; null when not checked."),
    ("words", pa.int64(), "Length of the note in words."),
)
ALL_COLUMNS: tuple[str, ...] = tuple(name for name, _, _ in _COLUMNS)
CSV_COLUMNS: tuple[str, ...] = ALL_COLUMNS[:12]
PARQUET_SCHEMA = pa.schema([pa.field(name, kind, nullable=True) for name, kind, _ in _COLUMNS])

PARQUET_PATH = "data/train.parquet"
JSONL_PATH = "jsonl/train.jsonl"
CSV_PATH = "csv/train.csv"
README_PATH = "README.md"
SUMS_PATH = "SHA256SUMS"

_COLUMN_SET = frozenset(ALL_COLUMNS)
_FEATURE_DTYPES = {pa.int64(): "int64", pa.string(): "string", pa.bool_(): "bool", pa.float64(): "float64"}
# JSON allows these raw, but str.splitlines() and some JSONL readers break lines at them (a regex: str.translate
# is over ten times slower on non-ASCII text).
_JSONL_LINE_BREAKS = re.compile("[\u0085\u2028\u2029]")
_WORD_BIN_EDGES = (25, 50, 100, 200, 400)
_QUANTILES = (("p10", 0.10), ("p25", 0.25), ("median", 0.50), ("p75", 0.75), ("p90", 0.90))
_TOP_CODES = 50
_SIZE_BUCKETS = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                 (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
                 (10**10, "1B<n<10B"), (10**11, "10B<n<100B"), (10**12, "100B<n<1T"))


@dataclass
class ReleaseCard:
    """Facts about the release that only the database knows, rendered into README.md."""

    name: str
    version: int
    description: str
    licence: str  # Hugging Face licence id, e.g. "mit", "cc-by-4.0"
    language: str  # "ru"
    created_at: str
    created_by: str
    include_real: bool
    real_data_licence: str
    filters: dict[str, Any]  # the filter the release was made with
    assessment: dict[str, Any]  # free-form assessment results of the included notes; empty = none
    provenance: dict[str, Any]  # graph_versions, prompt_templates, model_configs, generation_jobs: lists
    sections: list[str] = field(default_factory=list)  # "## ..." Markdown from other apps (core.sections)


@dataclass(frozen=True)
class ExportedFile:
    path: str  # relative to the release folder, posix
    bytes: int
    sha256: str


@dataclass(frozen=True)
class ReleaseExport:
    """What was written: every file (SHA256SUMS last) and the statistics shown in the card (JSON-serialisable)."""

    files: list[ExportedFile]
    stats: dict[str, Any]


class _Stats:
    """Counts gathered row by row; word lengths are kept as a Counter so quantiles are exact in bounded memory."""

    def __init__(self) -> None:
        self.rows = 0
        self.by = {key: Counter() for key in ("ICD-10", "icd_chapter", "generation_model", "prompt_variant", "origin")}
        self.words: Counter[int] = Counter()
        self.checks: Counter[bool | None] = Counter()
        self.sums = {"symptoms_recall": [0.0, 0], "anamnesis_precision": [0.0, 0]}
        self.private_examples = 0

    def add(self, row: dict[str, Any]) -> None:
        self.rows += 1
        for key, counter in self.by.items():
            counter[row[key]] += 1
        self.words[row["words"]] += 1
        self.checks[row["checks_passed"]] += 1
        for key, total in self.sums.items():
            if row[key] is not None:
                total[0] += row[key]
                total[1] += 1
        self.private_examples += row["anamnesis"] == PRIVATE_DATA

    def result(self) -> dict[str, Any]:
        passed, failed = self.checks[True], self.checks[False]
        return {
            "rows": self.rows,
            "by_code": _ranked(self.by["ICD-10"]),
            "by_chapter": _ranked(self.by["icd_chapter"]),
            "by_model": _ranked(self.by["generation_model"]),
            "by_variant": _ranked(self.by["prompt_variant"]),
            "by_origin": _ranked(self.by["origin"]),
            "words": _words_summary(self.words, self.rows),
            "checks": {"passed": passed, "failed": failed, "unchecked": self.checks[None],
                       "pass_rate": passed / (passed + failed) if passed + failed else None},
            **{key: {"mean": total / n if n else None, "n": n} for key, (total, n) in self.sums.items()},
            "private_examples": {"count": self.private_examples,
                                 "share": self.private_examples / self.rows if self.rows else None},
        }


def _ranked(counter: Counter) -> list[list[Any]]:
    """[value, count] pairs by count desc, then value: a list, because jsonb does not keep key order."""
    return [[value, count] for value, count in sorted(counter.items(), key=lambda item: (-item[1], str(item[0])))]


def _words_summary(words: Counter[int], n: int) -> dict[str, Any]:
    """min, quantiles (linear interpolation, as numpy's default), max, mean and a fixed-bin histogram."""
    values = sorted(words.items())
    cumulative: list[int] = []
    seen = 0
    for _, count in values:
        seen += count
        cumulative.append(seen)

    def nth(rank: int) -> int:  # the rank-th smallest length, 0-based
        return values[bisect.bisect_right(cumulative, rank)][0]

    def quantile(q: float) -> float:
        position = (n - 1) * q
        low = int(position)
        return nth(low) + (nth(min(low + 1, n - 1)) - nth(low)) * (position - low)

    bins: Counter[int] = Counter()
    for length, count in values:
        bins[bisect.bisect_right(_WORD_BIN_EDGES, length)] += count
    labels = [f"{low}-{high}" for low, high in zip((0, *_WORD_BIN_EDGES), _WORD_BIN_EDGES, strict=False)]
    labels.append(f"{_WORD_BIN_EDGES[-1]}+")
    return {
        "min": values[0][0] if n else None,
        **{name: quantile(q) if n else None for name, q in _QUANTILES},
        "max": values[-1][0] if n else None,
        "mean": sum(length * count for length, count in values) / n if n else None,
        "histogram": [[label, bins[index]] for index, label in enumerate(labels)],
    }


def release_folder_write(
    *,
    folder: Path,
    rows: Iterable[dict[str, Any]],
    total: int,
    card: ReleaseCard,
    progress: Callable[[int, int], None] | None = None,
    chunk_rows: int = 5000,
) -> ReleaseExport:
    """Write the release folder in one pass over `rows`; `folder` appears (or is replaced) only when complete.

    Everything is written into a temporary sibling folder that is renamed into place at the end, so an exception
    (from `rows` too) leaves neither a partial folder nor the temporary one. progress(done, total) is called after
    every chunk and once more when the folder is in place; `total` is only reported, the counts in the card are
    those of the rows actually written.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    report = progress or (lambda done, total: None)
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = _sibling(folder, "partial")
    work.mkdir()
    try:
        stats, arrow_bytes = _data_write(work, rows, total, report, chunk_rows)
        files = [_file_entry(work, path) for path in (PARQUET_PATH, JSONL_PATH, CSV_PATH)]
        (work / README_PATH).write_text(_card_markdown(card, stats, files, arrow_bytes), encoding="utf-8")
        files.append(_file_entry(work, README_PATH))
        (work / SUMS_PATH).write_text("".join(f"{file.sha256}  {file.path}\n" for file in files), encoding="utf-8")
        files.append(_file_entry(work, SUMS_PATH))
        folder_swap(work, folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    report(stats["rows"], total)
    return ReleaseExport(files=files, stats=stats)


def release_card_rewrite(*, folder: Path, card: ReleaseCard, stats: dict[str, Any]) -> list[ExportedFile]:
    """Rewrite the card (README.md) and SHA256SUMS of a written folder, its data files untouched (re-hashed, so a
    changed data file shows in the sums as on the day it changed): a card gains what was learnt about the release
    after its export, such as a utility evaluation. Each file is replaced by an atomic rename; returns every file."""
    folder = Path(folder)
    files = [_file_entry(folder, path) for path in (PARQUET_PATH, JSONL_PATH, CSV_PATH)]
    arrow_bytes = pq.ParquetFile(folder / PARQUET_PATH).read().nbytes
    for path, text in ((README_PATH, lambda: _card_markdown(card, stats, files, arrow_bytes)),
                       (SUMS_PATH, lambda: "".join(f"{file.sha256}  {file.path}\n" for file in files))):
        partial = folder / f".{path}.{uuid.uuid4().hex[:12]}"
        partial.write_text(text(), encoding="utf-8")
        os.replace(partial, folder / path)
        files.append(_file_entry(folder, path))
    return files


def _sibling(folder: Path, kind: str) -> Path:
    """A hidden, unique name next to `folder` (same file system, so os.replace is an atomic rename)."""
    return folder.parent / f".{folder.name}.{kind}-{uuid.uuid4().hex[:12]}"


def _data_write(work: Path, rows: Iterable[dict[str, Any]], total: int, report: Callable[[int, int], None],
                chunk_rows: int) -> tuple[dict[str, Any], int]:
    """Write the three data files chunk by chunk; returns the statistics and the in-memory Arrow size of the rows."""
    for path in (PARQUET_PATH, JSONL_PATH, CSV_PATH):
        (work / path).parent.mkdir()
    stats = _Stats()
    arrow_bytes = 0
    with (
        pq.ParquetWriter(work / PARQUET_PATH, PARQUET_SCHEMA, compression="zstd") as parquet,
        (work / JSONL_PATH).open("w", encoding="utf-8", newline="\n") as jsonl,
        (work / CSV_PATH).open("w", encoding="utf-8", newline="") as csv_file,
    ):
        # No BOM: medsyn_csv_rows (and most tools) would read it as part of the first column name.
        table = csv.writer(csv_file, quoting=csv.QUOTE_MINIMAL)
        table.writerow(CSV_COLUMNS)

        def flush(chunk: list[dict[str, Any]]) -> None:
            nonlocal arrow_bytes
            for row in chunk:
                record = {name: row[name] for name in ALL_COLUMNS}
                line = json.dumps(record, ensure_ascii=False, allow_nan=False)
                jsonl.write(_JSONL_LINE_BREAKS.sub(lambda match: f"\\u{ord(match[0]):04x}", line) + "\n")
                table.writerow(csv_row_safe(row[name] for name in CSV_COLUMNS))  # no cell runs as a formula
            batch = pa.Table.from_pylist(chunk, schema=PARQUET_SCHEMA)
            parquet.write_table(batch, row_group_size=len(chunk))
            arrow_bytes += batch.nbytes
            report(stats.rows, total)

        chunk: list[dict[str, Any]] = []
        for row in rows:
            if row.keys() != _COLUMN_SET:
                missing, extra = _COLUMN_SET - row.keys(), row.keys() - _COLUMN_SET
                raise ValueError(f"row {stats.rows + 1}: missing columns {sorted(missing)}, unknown {sorted(extra)}")
            stats.add(row)
            chunk.append(row)
            if len(chunk) >= chunk_rows:
                flush(chunk)
                chunk = []
        if chunk:
            flush(chunk)
    return stats.result(), arrow_bytes


def _file_entry(root: Path, path: str) -> ExportedFile:
    """Hash the file as it is on disk, and fsync it so the rename at the end publishes durable contents."""
    with (root / path).open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
        os.fsync(handle.fileno())
        size = os.fstat(handle.fileno()).st_size
    return ExportedFile(path=path, bytes=size, sha256=digest)


def folder_verify(folder: Path) -> list[str]:
    """Problems found re-hashing the folder against SHA256SUMS (missing, changed or unlisted files); [] = intact."""
    folder = Path(folder)
    sums = folder / SUMS_PATH
    if not sums.is_file():
        return [f"{SUMS_PATH} missing"]
    problems: list[str] = []
    listed: set[str] = set()
    for number, line in enumerate(sums.read_text(encoding="utf-8").splitlines(), start=1):
        digest, _, name = line.partition("  ")
        path = PurePosixPath(name)
        if len(digest) != 64 or set(digest) - set("0123456789abcdef") or not name:
            problems.append(f"{SUMS_PATH} line {number}: not a `sha256  path` line")
        elif path.is_absolute() or ".." in path.parts:
            problems.append(f"{SUMS_PATH} line {number}: path outside the folder: {name}")
        elif not (folder / path).is_file():
            listed.add(name)
            problems.append(f"{name}: missing")
        else:
            listed.add(name)
            with (folder / path).open("rb") as handle:
                if hashlib.file_digest(handle, "sha256").hexdigest() != digest:
                    problems.append(f"{name}: checksum mismatch")
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_file() and name != SUMS_PATH and name not in listed:
            problems.append(f"{name}: not listed in {SUMS_PATH}")
    return problems


def size_category(n: int) -> str:
    """The Hugging Face `size_categories` bucket for n rows."""
    for limit, label in _SIZE_BUCKETS:
        if n < limit:
            return label
    return "n>1T"


def _card_header(card: ReleaseCard, rows: int, arrow_bytes: int) -> dict[str, Any]:
    """The YAML metadata of the card: Hub fields and the one `datasets` config, the Parquet file.

    JSONL and CSV are not declared as configs: `datasets` reads every config of a folder with the builder inferred
    from the first one (huggingface/datasets#6447), so they would be read as Parquet and fail. `num_examples` makes
    `datasets` check the row count on load; `num_bytes` (required beside it) is the in-memory Arrow size of the rows.
    """
    features = [{"name": name, "dtype": _FEATURE_DTYPES[kind]} for name, kind, _ in _COLUMNS]
    return {
        "license": card.licence,
        "language": [card.language],
        "task_categories": ["text-generation", "text-classification"],
        "tags": ["medical", "synthetic", "clinical-notes", "icd-10"],
        "pretty_name": card.name,
        "size_categories": [size_category(rows)],
        "configs": [
            {"config_name": "default", "default": True, "data_files": [{"split": "train", "path": PARQUET_PATH}]},
        ],
        "dataset_info": {
            "config_name": "default",
            "features": features,
            "splits": [{"name": "train", "num_bytes": arrow_bytes, "num_examples": rows}],
        },
    }


def markdown_cell(value: Any) -> str:
    """A Markdown table cell (or inline text) of the dataset card: one line, HTML and pipes escaped, floats rounded,
    None as a dash. Sections other apps add to the card (core.sections) write their values through it too."""
    if value is None:
        return "—"
    if isinstance(value, float):
        text = str(round(value, 4))
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    text = html.escape(" ".join(text.split()), quote=False)
    return text.replace("\\", "\\\\").replace("|", "\\|") or " "


def _table(header: Iterable[Any], body: Iterable[Iterable[Any]]) -> str:
    header = [markdown_cell(name) for name in header]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(markdown_cell(value) for value in row) + " |" for row in body]
    return "\n".join(lines)


def _share(count: int, total: int) -> str:
    return f"{count / total:.1%}" if total else "—"


def _counts_section(title: str, label: str, ranked: list[list[Any]], rows: int, top: int | None = None) -> str:
    shown = ranked if top is None else ranked[:top]
    body = [[value or "(none)", count, _share(count, rows)] for value, count in shown]
    text = f"## {title}\n\n" + _table([label, "notes", "share"], body)
    rest = ranked[len(shown):]
    if rest:
        text += f"\n\n…and {len(rest)} more, with {sum(count for _, count in rest)} notes in all."
    return text


def _records_table(items: list[Any]) -> str:
    """A list of dicts as a table (columns: union of keys, in first-seen order); other lists as bullets."""
    if not items:
        return "None recorded."
    if all(isinstance(item, dict) for item in items):
        columns = list(dict.fromkeys(key for item in items for key in item))
        return _table(columns, [[item.get(key) for key in columns] for item in items])
    return "\n".join(f"- {markdown_cell(item)}" for item in items)


def _mapping_section(mapping: dict[str, Any]) -> str:
    """Scalars as one key/value table, then each nested dict or list under its own heading."""
    scalars = [[key, value] for key, value in mapping.items() if not isinstance(value, dict | list)]
    parts = [_table(["", "value"], scalars)] if scalars else []
    for key, value in mapping.items():
        if isinstance(value, dict):
            parts.append(f"### {markdown_cell(key)}\n\n" + _table(["", "value"], value.items()))
        elif isinstance(value, list):
            parts.append(f"### {markdown_cell(key)}\n\n" + _records_table(value))
    return "\n\n".join(parts)


NOT_STATED = "not stated"


def _model_licences(card: ReleaseCard, stats: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(model, licence, terms URL) of every model that wrote notes of the release, by name: the configurations in the
    provenance, and the models named by notes imported from a MedSyn release file (no configuration: not stated)."""
    found: dict[str, tuple[str, str]] = {}
    for model in card.provenance.get("model_configs") or []:
        if isinstance(model, dict) and model.get("name"):
            found[str(model["name"])] = (str(model.get("licence") or ""), str(model.get("licence_url") or ""))
    for name, _count in stats["by_model"]:
        if name:
            found.setdefault(str(name), ("", ""))
    return [(name, licence or NOT_STATED, url or NOT_STATED) for name, (licence, url) in sorted(found.items())]


def _model_licences_summary(licences: list[tuple[str, str, str]]) -> str:
    """The distinct licences, "not stated" last; "no model" for a release of real notes only."""
    stated = {licence for _name, licence, _url in licences}
    distinct = sorted(stated - {NOT_STATED}) + ([NOT_STATED] if NOT_STATED in stated else [])
    return "; ".join(distinct) or "no model"


def _card_markdown(card: ReleaseCard, stats: dict[str, Any], data_files: list[ExportedFile], arrow_bytes: int) -> str:
    """README.md: the YAML header, then the card in Markdown (summary, columns, statistics, provenance, files)."""
    rows = stats["rows"]
    header = yaml.safe_dump(_card_header(card, rows, arrow_bytes), allow_unicode=True, sort_keys=False, width=1000)
    origins = dict(map(tuple, stats["by_origin"]))
    real = f"included, licence {card.real_data_licence}" if card.include_real else "not included"
    words, checks = stats["words"], stats["checks"]
    recall, precision, private = stats["symptoms_recall"], stats["anamnesis_precision"], stats["private_examples"]
    licences = _model_licences(card, stats)
    sections = [
        f"# {card.name} (version {card.version})",
        card.description.strip() or "No description.",
        "## Summary\n\n" + _table(["", ""], [
            ["Name", card.name], ["Version", card.version], ["Notes", rows],
            ["Synthetic notes", origins.get("synthetic", 0)], ["Real notes", origins.get("real", 0)],
            ["Real data", real],
            ["Language", card.language], ["Licence", card.licence],
            ["Model licences", _model_licences_summary(licences)],
            ["Created", f"{card.created_at} by {card.created_by}"],
        ]),
        "## Model licences\n\nThe terms of the models that wrote the synthetic notes; they may restrict how the notes "
        "are used, whatever the licence of this dataset.\n\n"
        + (_table(["model", "licence", "terms URL"], licences) if licences
           else "No model wrote notes of this release."),
        "## Loading\n\n```python\nfrom datasets import load_dataset\n\n"
        'notes = load_dataset("path/to/folder")  # data/train.parquet, all columns\n'
        'same = load_dataset("json", data_files="path/to/folder/jsonl/train.jsonl", features=notes["train"].features)\n'
        '# the 12 MedSyn columns; only empty fields are missing values, a note reading "NA" stays text\n'
        'medsyn = load_dataset("csv", data_files="path/to/folder/csv/train.csv", keep_default_na=False, na_values=[""])'
        "\n```\n\nThe JSONL and CSV files are not `datasets` configs of this folder: `datasets` reads all configs of "
        "a folder in one format.\n\n" + NEUTRALISED_NOTE,
        "## Columns\n\nThe first 12 columns are the MedSyn release layout (the CSV file has only these).\n\n"
        + _table(["column", "type", "in CSV", "meaning"],
                 [[name, _FEATURE_DTYPES[kind], "yes" if name in CSV_COLUMNS else "no", meaning]
                  for name, kind, meaning in _COLUMNS]),
        _counts_section("Notes per ICD-10 code", "code", stats["by_code"], rows, top=_TOP_CODES),
        _counts_section("Notes per ICD-10 chapter", "chapter", stats["by_chapter"], rows),
        _counts_section("Notes per generation model", "model", stats["by_model"], rows),
        _counts_section("Notes per prompt variant", "variant", stats["by_variant"], rows),
        _counts_section("Notes per origin", "origin", stats["by_origin"], rows),
        "## Length in words\n\n"
        + _table(["min", "p10", "p25", "median", "p75", "p90", "max", "mean"],
                 [[words[key] for key in ("min", "p10", "p25", "median", "p75", "p90", "max", "mean")]])
        + "\n\n" + _table(["words", "notes", "share"], [[b, c, _share(c, rows)] for b, c in words["histogram"]]),
        "## Automatic checks\n\n" + _table(["", "value"], [
            ["Passed all checks", f"{checks['passed']} of {checks['passed'] + checks['failed']} checked "
                                  f"({_share(checks['passed'], checks['passed'] + checks['failed'])})"],
            ["Not checked", checks["unchecked"]],
            ["Mean symptoms_recall", f"{markdown_cell(recall['mean'])} over {recall['n']} notes"],
            ["Mean anamnesis_precision", f"{markdown_cell(precision['mean'])} over {precision['n']} notes"],
            ["Private example note (`private_data`)", f"{private['count']} ({_share(private['count'], rows)})"],
        ]),
        "## Assessment\n\n" + (_mapping_section(card.assessment) if card.assessment
                               else "No assessment ratings for the notes in this release."),
        *card.sections,
        "## Provenance\n\n" + "\n\n".join(
            f"### {title}\n\n" + _records_table(list(card.provenance.get(key) or []))
            for key, title in (("graph_versions", "Knowledge graph versions"),
                               ("prompt_templates", "Prompt template versions"),
                               ("model_configs", "Model configurations"),
                               ("generation_jobs", "Generation jobs"))),
        "## Filters used\n\n" + (_table(["filter", "value"], card.filters.items()) if card.filters
                                 else "No filter: every eligible note."),
        "## Files and checksums\n\n"
        + _table(["file", "bytes", "sha256"], [[f.path, f.bytes, f.sha256] for f in data_files])
        + f"\n\n`{SUMS_PATH}` lists the SHA-256 of every file, this card included: run `sha256sum -c {SUMS_PATH}` "
        "inside the folder.",
    ]
    return f"---\n{header}---\n\n" + "\n\n".join(sections) + "\n"
