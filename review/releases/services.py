"""Dataset releases: an immutable snapshot of approved notes (do_create_release), its export to JSONL, CSV and
Parquet with a dataset card (release_export_run, in a Celery task) and the diff of two releases."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Avg, Case, Count, F, FloatField, Max, Q, QuerySet, Value, When
from django.utils import timezone
from psycopg.types.json import Jsonb

from generation.models import Note, ReviewState
from medsyn_site.core.audit import audit_write
from medsyn_site.core.icd10 import icd_chapter
from medsyn_site.core.models import AuditEvent
from medsyn_site.core.progress import Progress
from review.assessment.models import Rating
from review.curation.selectors import FLAGGED, curation_notes

from .export import ReleaseCard, release_folder_write
from .models import Release, ReleaseNote

SNAPSHOT_BATCH = 2000
PRIVATE = "private_data"
PRIORS = {"symptoms_example": "symptoms", "symptoms": "symptoms", "code": "code"}


class ReleaseError(ValidationError):
    """The release cannot be made as asked (nothing to release, a real-data licence missing...)."""


def release_synthetic_candidates(filters: dict) -> QuerySet[Note]:
    """Approved synthetic notes matching the filters (the state filter is always "approved")."""
    return curation_notes(filters={**filters, "state": ReviewState.APPROVED})


def _releasable(notes: QuerySet[Note]) -> QuerySet[Note]:
    """Memorisation-checked at their current version, and not flagged unless a curator overrode the flag."""
    return notes.filter(memorisation_checked_version=F("version")).exclude(FLAGGED & Q(flag_override=False))


def _real_candidates(filters: dict) -> QuerySet[Note]:
    real = Note.objects.filter(origin=Note.Origin.REAL)
    if filters.get("code"):
        real = real.filter(icd_code__istartswith=filters["code"].strip())
    return real.order_by("id")


@dataclass(frozen=True)
class ReleasePreview:
    synthetic: int
    real: int
    held_back: dict[str, int] = field(default_factory=dict)  # reason -> approved notes left out

    @property
    def total(self) -> int:
        return self.synthetic + self.real


def _held_back(approved: QuerySet[Note]) -> dict[str, int]:
    """Approved notes left out of a release, counted by reason (reasons with none left out are omitted)."""
    unchecked = approved.exclude(memorisation_checked_version=F("version")).count()
    checked = approved.filter(memorisation_checked_version=F("version"))
    held = {
        "not checked for memorisation at the current version (run the memorisation scan)": unchecked,
        "memorised a real note (flag not overridden)": checked.filter(memorised=True, flag_override=False).count(),
        "near duplicate of an earlier note (flag not overridden)": checked.filter(
            memorised=False, near_duplicate_of__isnull=False, flag_override=False).count(),
    }
    return {reason: n for reason, n in held.items() if n}


def release_preview(*, filters: dict, include_real: bool = False) -> ReleasePreview:
    approved = release_synthetic_candidates(filters)
    return ReleasePreview(synthetic=_releasable(approved).count(),
                          real=_real_candidates(filters).count() if include_real else 0,
                          held_back=_held_back(approved))


def _example_sources(notes: list[Note]) -> dict[int, str]:
    ids = {n.metadata.get("example_note_id") for n in notes if isinstance(n.metadata.get("example_note_id"), int)}
    return dict(Note.objects.filter(pk__in=ids).values_list("pk", "source_dataset")) if ids else {}


def _score(checks: dict, *names: str) -> float | None:
    scores = checks.get("scores") or {}
    for name in names:
        if isinstance(scores.get(name), int | float):
            return float(scores[name])
    return None


def release_fields(note: Note, example_sources: dict[int, str]) -> dict:
    """The exported columns of one note (export.ALL_COLUMNS but idx, ICD-10 and response), in the MedSyn layout.

    An example note that is not open data (settings.OPEN_DATA_SOURCES) is written as "private_data", in the
    anamnesis column and inside the prompt text.
    """
    meta = note.metadata or {}
    checks = meta.get("checks") or {}
    common = {"note_id": note.pk, "note_version": note.version, "origin": note.origin,
              "icd_chapter": icd_chapter(note.icd_category), "prompt_variant": meta.get("prompt_variant", ""),
              "checks_passed": checks.get("passed") if isinstance(checks.get("passed"), bool) else None,
              "words": len(note.text.split())}
    if note.origin == Note.Origin.REAL:
        return {"generation_model": "", "prompt": "", "prior": "real", "example": None,
                "example source": note.source_dataset, "symptoms": "", "anamnesis": "",
                "symptoms_recall": None, "anamnesis_precision": None, **common}
    if "job_id" not in meta:  # imported from a MedSyn release file: its columns as they came
        return {"generation_model": str(meta.get("generation_model") or ""), "prompt": str(meta.get("prompt") or ""),
                "prior": str(meta.get("prior") or ""), "example": meta.get("example"),
                "example source": str(meta.get("example_source") or ""), "symptoms": str(meta.get("symptoms") or ""),
                "anamnesis": str(meta.get("anamnesis") or ""), "symptoms_recall": meta.get("symptoms_recall"),
                "anamnesis_precision": meta.get("anamnesis_precision"), **common}
    example = (meta.get("example_text") or "").strip()
    example_id = meta.get("example_note_id")
    source = example_sources.get(example_id, "") if example_id else ("template" if example else "")
    is_open = not example or source == "template" or source in settings.OPEN_DATA_SOURCES
    prompt = meta.get("prompt") or {}
    prompt_text = "\n\n".join(part for part in (prompt.get("system", ""), prompt.get("user", "")) if part)
    if example and not is_open:
        prompt_text = prompt_text.replace(example, PRIVATE)
    symptoms = meta.get("symptoms") or []
    return {"generation_model": str(meta.get("generation_model") or ""), "prompt": prompt_text,
            "prior": PRIORS.get(meta.get("prompt_variant", ""), ""), "example": bool(example),
            "example source": source, "symptoms": "; ".join(symptoms) if isinstance(symptoms, list) else str(symptoms),
            "anamnesis": (example if is_open else PRIVATE) if example else "",
            "symptoms_recall": _score(checks, "bertscore_recall", "symptom_recall"),
            "anamnesis_precision": _score(checks, "bertscore_precision", "example_precision"), **common}


def _note_chunks(ids: list[int]) -> Iterator[list[Note]]:
    """The notes of ids, in that order, SNAPSHOT_BATCH at a time."""
    for start in range(0, len(ids), SNAPSHOT_BATCH):
        chunk = ids[start:start + SNAPSHOT_BATCH]
        by_id = Note.objects.in_bulk(chunk)
        yield [by_id[pk] for pk in chunk]


SNAPSHOT_COLUMNS = ("release_id", "idx", "note_id", "note_version", "origin", "icd_code", "text", "fields")


def _snapshot_write(release: Release, ids: list[int], digest) -> int:
    """COPY one ReleaseNote row per note (bulk_create's array parameters are escaped in Python, ~30x slower on
    long text), feeding each (id, version, text) to digest; returns the number of rows."""
    idx = 0
    for notes in _note_chunks(ids):
        sources = _example_sources(notes)  # read before the COPY: the connection runs nothing else during one
        with connection.cursor() as cursor, cursor.cursor.copy(
                f"COPY {ReleaseNote._meta.db_table} ({', '.join(SNAPSHOT_COLUMNS)}) FROM STDIN") as copy:
            for note in notes:
                digest.update(f"{note.pk}\x1f{note.version}\x1f{note.text}\x1e".encode())
                copy.write_row((release.pk, idx, note.pk, note.version, note.origin, note.icd_code, note.text,
                                Jsonb(release_fields(note, sources))))
                idx += 1
    return idx


@transaction.atomic
def do_create_release(*, actor: AbstractBaseUser | None, name: str, filters: dict, description: str = "",
                      licence: str = "mit", include_real: bool = False, real_data_licence: str = "",
                      queue_export: bool = True) -> Release:
    """Freeze the releasable approved notes matching filters (and real notes only when include_real, with their
    licence) as the next version of release `name`, and queue its export (unless queue_export=False: the
    create_release command exports in its own process)."""
    if include_real and not real_data_licence.strip():
        raise ReleaseError("A release that includes real notes must name their licence.")
    filters = {key: value for key, value in filters.items() if key != "state"}
    approved = release_synthetic_candidates(filters)
    synthetic_ids = list(_releasable(approved).order_by("icd_code", "id").values_list("id", flat=True))
    real_ids = list(_real_candidates(filters).values_list("id", flat=True)) if include_real else []
    if not synthetic_ids and not real_ids:
        raise ReleaseError("No note can be released with this filter: approve notes (and scan them) first.")
    latest = Release.objects.select_for_update().filter(name=name).aggregate(v=Max("version"))["v"] or 0
    release = Release(name=name, version=latest + 1, description=description, licence=licence,
                      include_real=include_real, real_data_licence=real_data_licence.strip() if include_real else "",
                      filters=filters, content_sha256="", created_by=actor)
    release.full_clean(exclude=["content_sha256", "created_by"])  # a command has no user
    release.save()
    digest = hashlib.sha256()
    count = _snapshot_write(release, synthetic_ids + real_ids, digest)
    # Sealing: once content_sha256 is set the trigger refuses any change but the export fields.
    Release.objects.filter(pk=release.pk).update(note_count=count, content_sha256=digest.hexdigest())
    release.refresh_from_db()
    audit_write(actor=actor, action=AuditEvent.CREATE_RELEASE, obj=release, to_state="created", extra={
        "name": name, "version": release.version, "notes": release.note_count, "filters": filters,
        "include_real": include_real, "held_back": _held_back(approved), "content_sha256": release.content_sha256})
    if queue_export:
        transaction.on_commit(lambda: release_export_queue(release))
    return release


def release_export_queue(release: Release) -> None:
    from .tasks import run_release_export

    run_release_export.delay(release.pk)


@transaction.atomic
def do_retry_release_export(*, actor: AbstractBaseUser, release: Release) -> Release:
    release = Release.objects.select_for_update().get(pk=release.pk)
    if release.export_status != Release.ExportStatus.FAILED:
        raise ReleaseError(f"The export of {release} is {release.get_export_status_display().lower()}; "
                           "only a failed export is retried.")
    Release.objects.filter(pk=release.pk).update(export_status=Release.ExportStatus.QUEUED, export_progress=0,
                                                 export_error="")
    audit_write(actor=actor, action=AuditEvent.RETRY_RELEASE_EXPORT, obj=release, from_state=release.export_status,
                to_state=Release.ExportStatus.QUEUED)
    transaction.on_commit(lambda: release_export_queue(release))
    return release


def release_folder(release: Release) -> Path:
    return Path(settings.RELEASES_DIR) / f"{release.name}-v{release.version}"


def _export_rows(release: Release) -> Iterator[dict]:
    rows = (ReleaseNote.objects.filter(release=release).order_by("idx")
            .values_list("idx", "icd_code", "text", "fields"))
    for idx, code, text, fields in rows.iterator(chunk_size=SNAPSHOT_BATCH):
        yield {"idx": idx, "ICD-10": code, "response": text, **fields}


def _share_true(field_name: str) -> Case:
    return Case(When(**{field_name: True}, then=Value(1.0)), default=Value(0.0), output_field=FloatField())


def release_assessment(release: Release) -> dict:
    """What physicians said of the included notes in blind studies (all studies, any state)."""
    ratings = Rating.objects.filter(assignment__item__note__release_entries__release=release)
    summary = ratings.aggregate(n=Count("id"), notes=Count("assignment__item__note", distinct=True),
                                judged=Avg(_share_true("judged_synthetic")), confidence=Avg("confidence"))
    if not summary["n"]:
        return {}
    likert: dict[str, list[int]] = {}
    for answers in ratings.values_list("likert", flat=True).iterator():
        for key, value in (answers or {}).items():
            if isinstance(value, int):
                likert.setdefault(key, []).append(value)
    studies = (ratings.values("assignment__study__name").order_by("assignment__study__name")
               .annotate(n=Count("id"), judged=Avg(_share_true("judged_synthetic"))))
    return {"n_ratings": summary["n"], "n_notes_rated": summary["notes"],
            "judged_synthetic_share": round(summary["judged"], 4), "mean_confidence": round(summary["confidence"], 3),
            "likert_means": {key: round(sum(v) / len(v), 3) for key, v in sorted(likert.items())},
            "by_study": [{"study": s["assignment__study__name"], "n_ratings": s["n"],
                          "judged_synthetic_share": round(s["judged"], 4)} for s in studies]}


def release_provenance(release: Release) -> dict:
    """Graph versions, prompt template versions, model configurations and jobs behind the included notes."""
    graph_versions: Counter[str] = Counter()
    templates: dict[str, dict] = {}
    models: dict[str, dict] = {}
    jobs: Counter[int] = Counter()
    metas = Note.objects.filter(release_entries__release=release, origin=Note.Origin.SYNTHETIC).values_list(
        "metadata__graph_version", "metadata__prompt_template", "metadata__model_config", "metadata__job_id")
    for graph_version, template, model, job in metas.iterator(chunk_size=SNAPSHOT_BATCH):
        if graph_version:
            graph_versions[graph_version] += 1
        if isinstance(template, dict):
            templates.setdefault(f"{template.get('name')} v{template.get('version')}", template)
        if isinstance(model, dict):
            models.setdefault(str(model.get("name")), model)
        if job is not None:
            jobs[job] += 1
    return {"graph_versions": sorted(graph_versions), "prompt_templates": sorted(templates),
            "model_configs": [models[name] for name in sorted(models)],
            "generation_jobs": sorted(jobs)}


def release_export_run(release_id: int, on_progress: Progress | None = None) -> None:
    """Write the release folder (export.release_folder_write) and record files, checksums and statistics.

    Runs again from the start on a redelivery: the folder is written aside and swapped in at the end.
    """
    release = Release.objects.get(pk=release_id)
    if release.export_status == Release.ExportStatus.DONE:
        return
    Release.objects.filter(pk=release.pk).update(export_status=Release.ExportStatus.RUNNING, export_progress=0,
                                                 export_error="")
    last = {"percent": -1}

    def progress(done: int, total: int) -> None:
        if on_progress is not None:
            on_progress(done, total)
        percent = int(100 * done / total) if total else 100
        if percent != last["percent"]:
            last["percent"] = percent
            Release.objects.filter(pk=release.pk).update(export_progress=percent)

    creator = release.created_by.get_username() if release.created_by else ""
    card = ReleaseCard(name=release.name, version=release.version, description=release.description,
                       licence=release.licence, language="ru", created_at=release.created_at.isoformat(),
                       created_by=creator, include_real=release.include_real,
                       real_data_licence=release.real_data_licence, filters=release.filters,
                       assessment=release_assessment(release), provenance=release_provenance(release))
    folder = release_folder(release)
    try:
        exported = release_folder_write(folder=folder, rows=_export_rows(release), total=release.note_count,
                                        card=card, progress=progress)
    except Exception as error:
        Release.objects.filter(pk=release.pk).update(export_status=Release.ExportStatus.FAILED,
                                                     export_error=f"{type(error).__name__}: {error}")
        raise
    Release.objects.filter(pk=release.pk).update(
        export_status=Release.ExportStatus.DONE, export_progress=100, exported_at=timezone.now(),
        export_folder=folder.name, export_stats=exported.stats,
        export_files=[{"path": f.path, "bytes": f.bytes, "sha256": f.sha256} for f in exported.files])


def release_file_path(release: Release, relative: str) -> Path:
    """The absolute path of one exported file, only if the export listed it (no path tricks)."""
    listed = {f["path"] for f in release.export_files}
    if release.export_status != Release.ExportStatus.DONE or relative not in listed:
        raise ReleaseError(f"{relative!r} is not a file of the export of {release}.")
    return Path(settings.RELEASES_DIR) / release.export_folder / relative


@dataclass(frozen=True)
class ReleaseDiff:
    added: list[int]      # note ids in the newer release only
    removed: list[int]    # note ids in the older release only
    changed: list[int]    # in both, at another version (edited between the two)
    unchanged: int


def release_diff(older: Release, newer: Release) -> ReleaseDiff:
    def versions(release: Release) -> dict[int, int]:
        return dict(ReleaseNote.objects.filter(release=release).values_list("note_id", "note_version").iterator(
            chunk_size=10_000))

    a, b = versions(older), versions(newer)
    common = a.keys() & b.keys()
    changed = sorted(n for n in common if a[n] != b[n])
    return ReleaseDiff(added=sorted(b.keys() - a.keys()), removed=sorted(a.keys() - b.keys()), changed=changed,
                       unchanged=len(common) - len(changed))
