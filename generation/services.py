"""Writes for the generation app: note imports (and their jobs), note text revisions, prompt template versions and
the model configurations a fresh install offers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from medsyn_site.core.audit import audit_write
from medsyn_site.core.errors import InputError
from medsyn_site.core.icd10 import icd_category, icd_code_clean
from medsyn_site.core.jobs import broker_require, job_send_on_commit
from medsyn_site.core.models import AuditEvent, JobStatus
from medsyn_site.core.progress import Progress, ProgressRecorder
from medsyn_site.core.rumedbench import rumedtop3_rows
from medsyn_site.core.spreadsheet import csv_cell_restore
from medsyn_site.core.storage import storage_errors
from medsyn_site.core.text import content_hash
from medsyn_site.core.textfile import csv_records, text_read
from medsyn_site.modelcache import EMBEDDED_MODELS

from .bertscore import bert_scorer_configured
from .checks import note_checks_run
from .memorisation import memorisation_index_load
from .models import Language, ModelConfig, Note, NoteImportJob, NoteVersion, PromptTemplate
from .prompts import DEFAULT_TEMPLATES, template_fields_check
from .signals import real_notes_imported

MEDSYN_CSV_COLUMNS = (
    "idx", "ICD-10", "generation_model", "prompt", "prior", "example", "example source", "response", "symptoms",
    "anamnesis", "symptoms_recall", "anamnesis_precision",
)
HASH_LOOKUP_CHUNK = 1000
# The source data set stored on imported notes when none is named, by kind of file.
SOURCE_DATASETS = {NoteImportJob.Kind.RUMEDTOP3: "RuMedTop3", NoteImportJob.Kind.MEDSYN_CSV: "MedSyn"}


@dataclass(frozen=True)
class NoteRow:
    """A validated note read from an import file, not yet stored."""

    line: int
    text: str
    icd_code: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class ImportCounts:
    created: int
    skipped: int

    @property
    def total(self) -> int:
        return self.created + self.skipped


def note_content_hash(*, origin: str, icd_code: str, text: str) -> str:
    """The one content hash of a note (imports, generated notes, edits): origin, code and normalised text
    (core.text.content_hash); the source file and split are deliberately left out."""
    return content_hash(origin, icd_code.strip().upper(), text)


@transaction.atomic
def note_text_revise(*, note: Note, text: str, actor: AbstractBaseUser | None, reason: str = "") -> Note:
    """Give a note a new text as its next version; the old text and its checks are kept as a NoteVersion.

    The new text is checked by the same rules as when it was generated (checks.note_checks_run on the note's
    provenance: its prompt's inputs, its job's thresholds, every real note, BERTScore when configured). The
    caller holds the note's row lock; the review state and the audit record are the caller's.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise ValidationError("The edited text is empty.")
    if text == note.text.replace("\r\n", "\n").replace("\r", "\n").strip():
        raise ValidationError("The text is unchanged; nothing to save.")
    metadata = dict(note.metadata or {})
    NoteVersion.objects.create(note=note, version=note.version, text=note.text, checks=metadata.get("checks") or {},
                               edited_by=actor, edit_reason=reason.strip())
    metadata["checks"] = note_checks_run(text=text, language=note.language, provenance=metadata,
                                         real_notes=memorisation_index_load(), scorer=bert_scorer_configured())
    fields = {"metadata": metadata, "text": text, "version": note.version + 1,
              "content_hash": note_content_hash(origin=note.origin, icd_code=note.icd_code, text=text)}
    try:
        with transaction.atomic():
            Note.objects.filter(pk=note.pk).update(**fields)
    except IntegrityError as error:
        raise ValidationError("Another note of this code already has exactly this text.") from error
    for name, value in fields.items():
        setattr(note, name, value)
    return note


def rumedtop3_note_rows(path: Path) -> Iterator[NoteRow | tuple[int, str]]:
    """The records of a RuMedTop3 jsonl file (core.rumedbench) as notes, or (line, problem) for a bad line; a file
    that is not UTF-8 text raises InputError (core.textfile)."""
    for record in rumedtop3_rows(path):
        if isinstance(record, tuple):
            yield record
        else:
            yield NoteRow(line=record.line, text=record.text, icd_code=record.code,
                          metadata={"idx": record.idx, "file": path.name, "line": record.line})


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
    """Rows of a CSV in the MedSyn release layout, or (line, problem); line = where the record starts.

    Read by core.textfile: a file that is not UTF-8 text raises InputError saying what it looks like, a byte-order
    mark is dropped, and a record with broken quoting or another number of fields than the header (a quote left
    open swallows the fields after it) is a problem of its line, never a note with empty fields. Quoted fields may
    run over lines (a prompt or a response often does)."""
    records = csv_records(text_read(path), multiline=True)
    first = next(records, None)
    if first is not None and first[1] is None:  # the header itself has broken quoting
        yield first[0], first[2]
        return
    header = [column.strip() for column in first[1]] if first is not None else []
    if missing := [column for column in MEDSYN_CSV_COLUMNS if column not in header]:
        yield 1, _("missing column(s): %(columns)s") % {"columns": ", ".join(missing)}
        return
    for number, fields, problem in records:
        if fields is None:
            yield number, problem
            continue
        if len(fields) != len(header):
            yield number, _("expected %(expected)d fields (as the header), got %(got)d: is a quote not closed?") % {
                "expected": len(header), "got": len(fields)}
            continue
        # a cell our own release CSV neutralised as a spreadsheet formula reads back as it was (core.spreadsheet)
        record = dict(zip(header, (csv_cell_restore(field) for field in fields), strict=True))
        text = record["response"].strip()
        if not text:
            yield number, _("empty response")
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
    actor: AbstractBaseUser | None = None,
) -> ImportCounts:
    """Validate every row first, then write all new notes in one transaction; known notes are skipped.

    Raises InputError (with line numbers) before writing anything if any row is bad. progress gets (rows written,
    rows); actor is who imported the notes (None: a command), as real_notes_imported tells its receivers.
    """
    parsed = list(rows)
    problems = [item for item in parsed if isinstance(item, tuple)]
    if problems:
        raise InputError(source, problems)
    notes: dict[str, Note] = {}
    for row in parsed:
        digest = note_content_hash(origin=origin, icd_code=row.icd_code, text=row.text)
        notes.setdefault(digest, Note(
            origin=origin, text=row.text, icd_code=row.icd_code, icd_category=icd_category(row.icd_code),
            language=language, source_dataset=source_dataset, split=split, content_hash=digest, metadata=row.metadata,
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
            real_notes_imported.send(sender=Note, instance=Note.objects.get(content_hash=new_notes[0].content_hash),
                                     count=created, actor=actor)
    report(total, total)
    return ImportCounts(created=created, skipped=total - created)


def real_notes_import(
    *, path: Path, split: str, source_dataset: str = SOURCE_DATASETS[NoteImportJob.Kind.RUMEDTOP3],
    progress: Progress | None = None, actor: AbstractBaseUser | None = None,
) -> ImportCounts:
    """Import a RuMedTop3 jsonl file (idx, symptoms, code) as real Russian notes of one split."""
    return notes_import(rows=rumedtop3_note_rows(path), source=str(path), origin=Note.Origin.REAL,
                        source_dataset=source_dataset, split=split, progress=progress, actor=actor)


def medsyn_csv_import(
    *, path: Path, source_dataset: str = SOURCE_DATASETS[NoteImportJob.Kind.MEDSYN_CSV],
    progress: Progress | None = None,
) -> ImportCounts:
    """Import a CSV in the MedSyn release layout as synthetic notes; every column is kept in metadata."""
    return notes_import(rows=medsyn_csv_rows(path), source=str(path), origin=Note.Origin.SYNTHETIC,
                        source_dataset=source_dataset, progress=progress)


def do_import_notes(*, job: NoteImportJob, progress: Progress | None = None) -> ImportCounts | None:
    """Run a note import job, all or nothing: the notes, the job's outcome and its audit record (IMPORT_NOTES, by
    whoever created the job) commit together, while the progress in rows is visible as it goes (ProgressRecorder)
    and passed on to progress (a command's bar).

    Returns None when the job had already finished (a redelivered task). When the file has problems, the job
    fails with them by line (named as uploaded) and InputError is raised. A failed import deletes the uploaded file
    (NoteImportJob.upload_delete: the job keeps its name and problems); a file named by an import command is kept.
    """
    if not job.mark_running():
        return None
    try:
        with ProgressRecorder(job, also=progress) as recorder, job.source_local() as path, transaction.atomic():
            if job.kind == NoteImportJob.Kind.RUMEDTOP3:
                counts = real_notes_import(path=path, split=job.split, source_dataset=job.source_dataset,
                                           progress=recorder, actor=job.created_by)
            else:
                counts = medsyn_csv_import(path=path, source_dataset=job.source_dataset, progress=recorder)
            # The last progress write is behind us: the job row is this transaction's from here on.
            if not job.mark_finished(JobStatus.DONE, created=counts.created, skipped=counts.skipped,
                                     progress_done=counts.total, progress_total=counts.total):
                transaction.set_rollback(True)  # a duplicate delivery: the run that finished first stands
                return None
            audit_write(actor=job.created_by, action=AuditEvent.IMPORT_NOTES, obj=job, from_state=JobStatus.RUNNING,
                        to_state=job.status, extra={"kind": job.kind, "file": job.original_name, "split": job.split,
                                                    "source_dataset": job.source_dataset, "created": counts.created,
                                                    "skipped": counts.skipped})
    except InputError as error:
        error.source = job.original_name  # the file as uploaded, not the stored path
        if job.mark_finished(JobStatus.FAILED, error=str(error), errors=error.report()):
            job.upload_delete()
        raise
    except Exception as error:  # shown on the job page; nothing was written (one transaction)
        if job.mark_finished(JobStatus.FAILED, error=f"{type(error).__name__}: {error}"):
            job.upload_delete()
        raise
    return counts


def note_import_upload(*, kind: str, split: str, upload: UploadedFile, actor: AbstractBaseUser) -> NoteImportJob:
    """An uploaded notes file as an import job, sent to the "default" worker queue once it is committed."""

    broker_require()  # before the upload is stored: a broker that is down leaves no file and no queued job
    with storage_errors("could not store the uploaded file"):  # a bucket that is down: 503, nothing kept
        job = NoteImportJob.objects.create(kind=kind, split=split if kind == NoteImportJob.Kind.RUMEDTOP3 else "",
                                           source_dataset=SOURCE_DATASETS[kind], upload=upload,
                                           original_name=upload.name[:255], created_by=actor)
    job_send_on_commit(job)
    return job


def note_import_file(*, kind: str, path: Path, split: str = "", source_dataset: str = "",
                     progress: Progress | None = None) -> ImportCounts:
    """Import a notes file on the server now (the import commands), recorded as an import job like an upload."""
    job = NoteImportJob.objects.create(kind=kind, split=split, source_dataset=source_dataset or SOURCE_DATASETS[kind],
                                       file_path=str(path.resolve()), original_name=path.name[:255])
    return do_import_notes(job=job, progress=progress)


# The template-filling baseline (ModelConfig.Backend.TEMPLATE): no model, offered for both languages, so a release
# written by a model can be compared with the trivial one (backends/template_backend.py).
TEMPLATE_BASELINE_NAME = "template-filling"
TEMPLATE_BASELINE_LICENCE = "n/a (no model)"
TEMPLATE_BASELINE_DESCRIPTION = (
    "No model: fills fixed Russian or English sentence templates with the plan item's graph symptoms (shuffled, in "
    "groups), the patient's sex and age and, for prompt(code), the disease; never reads the example note. A baseline: "
    "an LLM release should beat it.")


def embedded_model_configs_ensure() -> list[ModelConfig]:
    """A local configuration for each embedded model `make up` converts (medsyn_site.modelcache), named as its folder
    in MODEL_CACHE_DIR, with what it writes, its prompt format and licence, then the template-filling baseline. Created
    once: admins may edit a configuration afterwards, and an existing one is returned unchanged."""
    configs = []
    for embedded in EMBEDDED_MODELS:
        name = embedded.folder_name()
        config, _created = ModelConfig.objects.get_or_create(name=name, defaults={
            "backend": ModelConfig.Backend.LOCAL, "model_path": name, "prompt_format": embedded.prompt_format,
            "languages": list(embedded.languages), "licence": embedded.licence, "licence_url": embedded.licence_url,
            "description": embedded.description, "max_new_tokens": 256, "batch_size": 16,
        })
        configs.append(config)
    baseline, _created = ModelConfig.objects.get_or_create(name=TEMPLATE_BASELINE_NAME, defaults={
        "backend": ModelConfig.Backend.TEMPLATE, "languages": [Language.RUSSIAN, Language.ENGLISH],
        "licence": TEMPLATE_BASELINE_LICENCE, "description": TEMPLATE_BASELINE_DESCRIPTION, "batch_size": 64,
    })
    return [*configs, baseline]


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
