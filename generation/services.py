"""Writes for the generation app: note imports and prompt template versions."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from .models import Language, ModelConfig, Note, PromptTemplate
from .prompts import DEFAULT_TEMPLATES, template_fields_check

ICD10_CODE = re.compile(r"^[A-Z]\d{2}(\.[0-9A-Z]{1,2})?$")
MEDSYN_CSV_COLUMNS = (
    "idx", "ICD-10", "generation_model", "prompt", "prior", "example", "example source", "response", "symptoms",
    "anamnesis", "symptoms_recall", "anamnesis_precision",
)
HASH_LOOKUP_CHUNK = 1000

Progress = Callable[[int, int], None]  # (rows done, rows total)


@dataclass(frozen=True)
class NoteRow:
    """A validated note read from an import file, not yet stored."""

    line: int
    text: str
    icd_code: str
    metadata: dict[str, Any]


@dataclass
class NoteImportError(Exception):
    """The file has problems; nothing was written. problems: (line number, message) pairs."""

    source: str
    problems: list[tuple[int, str]] = field(default_factory=list)

    def __str__(self) -> str:
        shown = "; ".join(f"line {line}: {message}" for line, message in self.problems[:10])
        more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
        return f"{self.source}: {len(self.problems)} problem(s), nothing imported: {shown}{more}"


@dataclass(frozen=True)
class ImportCounts:
    created: int
    skipped: int

    @property
    def total(self) -> int:
        return self.created + self.skipped


def text_normalise(text: str) -> str:
    """NFC, whitespace runs collapsed to one space, ends stripped: what content_hash sees of a text."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def note_content_hash(*, origin: str, icd_code: str, text: str) -> str:
    """sha256 over origin, code and normalised text; the source file and split are deliberately left out."""
    payload = "\x1f".join((origin, icd_code.strip().upper(), text_normalise(text)))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def icd_code_clean(raw: object) -> str:
    """Upper-cased, stripped ICD-10 code; ValueError when it is not one (letter, two digits, optional .x)."""
    code = str(raw or "").strip().upper()
    if not ICD10_CODE.match(code):
        raise ValueError(f"not an ICD-10 code: {raw!r}")
    return code


def rumedtop3_rows(path: Path) -> Iterator[NoteRow | tuple[int, str]]:
    """Rows of a RuMedTop3 jsonl file (idx, symptoms, code), or (line, problem) for a bad line."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                yield number, f"not valid JSON ({error.msg})"
                continue
            if not isinstance(record, dict):
                yield number, "not a JSON object"
                continue
            missing = [key for key in ("idx", "symptoms", "code") if not str(record.get(key) or "").strip()]
            if missing:
                yield number, f"missing or empty field(s): {', '.join(missing)}"
                continue
            try:
                code = icd_code_clean(record["code"])
            except ValueError as error:
                yield number, str(error)
                continue
            yield NoteRow(line=number, text=str(record["symptoms"]).strip(), icd_code=code,
                          metadata={"idx": str(record["idx"]), "file": path.name, "line": number})


def _optional_float(raw: str) -> float | None:
    raw = (raw or "").strip()
    return float(raw) if raw else None


def _optional_bool(raw: str) -> bool | None:
    value = (raw or "").strip().lower()
    if value in {"true", "1", "yes"}:
        return True
    if value in {"false", "0", "no"}:
        return False
    if not value:
        return None
    raise ValueError(f"not a boolean: {raw!r}")


def medsyn_csv_rows(path: Path) -> Iterator[NoteRow | tuple[int, str]]:
    """Rows of a CSV in the MedSyn release layout, or (line, problem); line = where the record starts."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in MEDSYN_CSV_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            yield 1, f"missing column(s): {', '.join(missing)}"
            return
        start = 2
        for record in reader:
            number, start = start, reader.line_num + 1
            text = (record["response"] or "").strip()
            if not text:
                yield number, "empty response"
                continue
            try:
                code = icd_code_clean(record["ICD-10"])
                metadata = {
                    "idx": record["idx"], "file": path.name, "line": number,
                    "generation_model": record["generation_model"], "prompt": record["prompt"],
                    "prior": record["prior"], "example": _optional_bool(record["example"]),
                    "example_source": record["example source"], "symptoms": record["symptoms"],
                    "anamnesis": record["anamnesis"], "symptoms_recall": _optional_float(record["symptoms_recall"]),
                    "anamnesis_precision": _optional_float(record["anamnesis_precision"]),
                }
            except ValueError as error:
                yield number, str(error)
                continue
            yield NoteRow(line=number, text=text, icd_code=code, metadata=metadata)


def _hashes_existing(hashes: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(hashes), HASH_LOOKUP_CHUNK):
        chunk = hashes[start:start + HASH_LOOKUP_CHUNK]
        found.update(Note.objects.filter(content_hash__in=chunk).values_list("content_hash", flat=True))
    return found


def notes_import(
    *,
    rows: Iterable[NoteRow | tuple[int, str]],
    source: str,
    origin: str,
    source_dataset: str,
    split: str = "",
    language: str = Language.RUSSIAN,
    progress: Progress | None = None,
    batch_size: int = 500,
) -> ImportCounts:
    """Validate every row first, then write all new notes in one transaction; known notes are skipped.

    Raises NoteImportError (with line numbers) before writing anything if any row is bad.
    """
    parsed = list(rows)
    problems = [item for item in parsed if isinstance(item, tuple)]
    if problems:
        raise NoteImportError(source, problems)
    notes: dict[str, Note] = {}
    for row in parsed:
        digest = note_content_hash(origin=origin, icd_code=row.icd_code, text=row.text)
        notes.setdefault(digest, Note(
            origin=origin, text=row.text, icd_code=row.icd_code, icd_category=row.icd_code[:3], language=language,
            source_dataset=source_dataset, split=split, content_hash=digest, metadata=row.metadata,
        ))
    report = progress or (lambda done, total: None)
    total = len(parsed)
    created = 0
    with transaction.atomic():
        known = _hashes_existing(list(notes))
        new_notes = [note for digest, note in notes.items() if digest not in known]
        for start in range(0, len(new_notes), batch_size):
            batch = new_notes[start:start + batch_size]
            # ignore_conflicts: a concurrent import of the same note must not fail this one.
            Note.objects.bulk_create(batch, ignore_conflicts=True)
            created += len(batch)
            report(min(total, start + len(batch)), total)
        if created and origin == Note.Origin.REAL:
            # Synthetic notes were checked for memorisation against the real notes of then: not against these.
            Note.objects.filter(origin=Note.Origin.SYNTHETIC, memorisation_checked_version__isnull=False).update(
                memorisation_checked_version=None)
    report(total, total)
    return ImportCounts(created=created, skipped=total - created)


def real_notes_import(
    *, path: Path, split: str, source_dataset: str = "RuMedTop3", progress: Progress | None = None
) -> ImportCounts:
    """Import a RuMedTop3 jsonl file (idx, symptoms, code) as real Russian notes of one split."""
    return notes_import(rows=rumedtop3_rows(path), source=str(path), origin=Note.Origin.REAL,
                        source_dataset=source_dataset, split=split, progress=progress)


def medsyn_csv_import(
    *, path: Path, source_dataset: str = "MedSyn", progress: Progress | None = None
) -> ImportCounts:
    """Import a CSV in the MedSyn release layout as synthetic notes; every column is kept in metadata."""
    return notes_import(rows=medsyn_csv_rows(path), source=str(path), origin=Note.Origin.SYNTHETIC,
                        source_dataset=source_dataset, progress=progress)


def model_config_default_ensure() -> ModelConfig:
    """The embedded default local model (settings.DEFAULT_MODEL_NAME in MODEL_CACHE_DIR), created once.

    Admins may edit it afterwards; an existing record is returned unchanged.
    """
    config, _ = ModelConfig.objects.get_or_create(name=settings.DEFAULT_MODEL_NAME, defaults={
        "backend": ModelConfig.Backend.LOCAL, "model_path": settings.DEFAULT_MODEL_NAME,
        "prompt_format": ModelConfig.PromptFormat.CHAT, "max_new_tokens": 256, "batch_size": 16,
    })
    return config


def prompt_templates_ensure() -> int:
    """Create the default templates that do not exist yet (by name); returns how many were created."""
    return prompt_templates_seed(PromptTemplate)


def prompt_templates_seed(template_model: type[PromptTemplate]) -> int:
    """prompt_templates_ensure for a given model class, so the data migration can pass its historical model."""
    existing = set(template_model.objects.values_list("name", flat=True))
    missing = [spec for spec in DEFAULT_TEMPLATES if spec["name"] not in existing]
    template_model.objects.bulk_create(template_model(**spec, version=1, is_current=True) for spec in missing)
    return len(missing)


@transaction.atomic
def prompt_template_revise(
    *,
    template: PromptTemplate,
    system_text: str,
    user_text: str,
    author: AbstractBaseUser | None = None,
) -> PromptTemplate:
    """Add the next version of template's name and make it current; earlier versions are never changed."""
    template_fields_check(system_text, user_text)
    versions = PromptTemplate.objects.select_for_update().filter(name=template.name)
    latest = versions.order_by("-version").first()
    versions.filter(is_current=True).update(is_current=False)
    revised = PromptTemplate(
        name=template.name, variant=template.variant, language=template.language, system_text=system_text,
        user_text=user_text, version=latest.version + 1, is_current=True, created_by=author,
    )
    revised.full_clean()
    revised.save()
    return revised
