"""Dataset releases: an immutable snapshot of approved notes (do_create_release), its export job writing JSONL, CSV
and Parquet with a dataset card (release_export_run, in a Celery task) and the diff of two releases."""

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
from django.db.models import Avg, Case, Count, FloatField, Max, QuerySet, Value, When
from psycopg.types.json import Jsonb

from generation.models import ModelConfig, Note, PromptTemplate
from medsyn_site.core.audit import audit_write
from medsyn_site.core.errors import StateConflict
from medsyn_site.core.icd10 import icd_chapter
from medsyn_site.core.jobs import job_send_on_commit
from medsyn_site.core.models import AuditEvent, JobStatus
from medsyn_site.core.progress import Progress, ProgressRecorder
from medsyn_site.core.sections import release_card_sections
from medsyn_site.core.storage import folder_edit, folder_publish, folder_workspace, releases_storage
from medsyn_site.roles import origin_seers
from review.assessment.models import Rating
from review.curation.models import ReviewState
from review.curation.selectors import curation_notes, held_back_counts, notes_releasable

from .export import README_PATH, SUMS_PATH, ReleaseCard, release_card_rewrite, release_folder_write
from .models import Release, ReleaseExport, ReleaseNote

SNAPSHOT_BATCH = 2000
PRIVATE = "private_data"
PRIORS = {"symptoms_example": "symptoms", "symptoms": "symptoms", "code": "code"}


class ReleaseError(ValidationError):
    """The release cannot be made as asked (nothing to release, a real-data licence missing...)."""


def release_synthetic_candidates(filters: dict) -> QuerySet[Note]:
    """Approved synthetic notes matching the filters (the state filter is always "approved")."""
    return curation_notes(filters={**filters, "state": ReviewState.APPROVED})


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


def release_preview(*, filters: dict, include_real: bool = False) -> ReleasePreview:
    approved = release_synthetic_candidates(filters)
    return ReleasePreview(synthetic=notes_releasable(approved).count(),
                          real=_real_candidates(filters).count() if include_real else 0,
                          held_back=held_back_counts(approved))


def _prompt_example(meta: dict) -> tuple[str, int | None]:
    """The example note a generated note's prompt contained (text, note id; id None for the neutral template), or
    ("", None). A note records what its prompt contained (prompt_inputs); for a note from before that, only the
    symptoms_example prompt had an example, whatever example_text the plan left in its metadata."""
    inputs = meta.get("prompt_inputs")
    if isinstance(inputs, list):
        in_prompt = "example" in inputs
    else:
        in_prompt = meta.get("prompt_variant") == PromptTemplate.Variant.SYMPTOMS_EXAMPLE
    if not in_prompt:
        return "", None
    example_id = meta.get("example_note_id")
    return (meta.get("example_text") or "").strip(), example_id if isinstance(example_id, int) else None


def _example_sources(notes: list[Note]) -> dict[int, str]:
    ids = {example_id for n in notes if (example_id := _prompt_example(n.metadata or {})[1]) is not None}
    return dict(Note.objects.filter(pk__in=ids).values_list("pk", "source_dataset")) if ids else {}


def _score(checks: dict, *names: str) -> float | None:
    scores = checks.get("scores") or {}
    for name in names:
        if isinstance(scores.get(name), int | float):
            return float(scores[name])
    return None


def release_fields(note: Note, example_sources: dict[int, str]) -> dict:
    """The exported columns of one note (export.ALL_COLUMNS but idx, ICD-10 and response), in the MedSyn layout.

    example, anamnesis, example source and prior say what the prompt contained (its variant), never what a plan
    sampled. An example note that is not open data (settings.OPEN_DATA_SOURCES) is written as "private_data", in
    the anamnesis column and inside the prompt text.
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
    example, example_id = _prompt_example(meta)
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
            "anamnesis_precision": _score(checks, "bertscore_precision", "example_precision") if example else None,
            **common}


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


def _release_name_lock(name: str) -> None:
    """Creations of one release name take turns from here to their commit, so each reads the version the previous
    one committed. A row lock cannot do it: the first version of a name has no row to lock."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"release:{name}"])


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
    candidates = list(notes_releasable(approved).values_list("id", flat=True))
    # Lock the candidates, then ask again: an edit, a review action or a scan batch that committed meanwhile
    # (they all lock the note) is seen, and none can change a note between this check and its snapshot.
    locked = Note.objects.select_for_update(no_key=True, of=("self",)).filter(pk__in=candidates)
    synthetic_ids = list(notes_releasable(locked).order_by("icd_code", "id").values_list("id", flat=True))
    real_ids = list(_real_candidates(filters).values_list("id", flat=True)) if include_real else []
    if not synthetic_ids and not real_ids:
        raise ReleaseError("No note can be released with this filter: approve notes (and scan them) first.")
    _release_name_lock(name)
    latest = Release.objects.filter(name=name).aggregate(v=Max("version"))["v"] or 0
    release = Release(name=name, version=latest + 1, description=description, licence=licence,
                      include_real=include_real, real_data_licence=real_data_licence.strip() if include_real else "",
                      filters=filters, content_sha256="", created_by=actor)
    release.full_clean(exclude=["content_sha256", "created_by"])  # a command has no user
    release.save()
    digest = hashlib.sha256()
    count = _snapshot_write(release, synthetic_ids + real_ids, digest)
    # Sealing: once content_sha256 is set a trigger refuses any change of the release (its export is another row).
    Release.objects.filter(pk=release.pk).update(note_count=count, content_sha256=digest.hexdigest())
    release.refresh_from_db()
    export = ReleaseExport.objects.create(release=release, created_by=actor, progress_total=count)
    audit_write(actor=actor, action=AuditEvent.CREATE_RELEASE, obj=release, to_state="created", extra={
        "name": name, "version": release.version, "notes": release.note_count, "filters": filters,
        "include_real": include_real, "held_back": held_back_counts(approved),
        "content_sha256": release.content_sha256})
    if queue_export:
        job_send_on_commit(export)
    return release


@transaction.atomic
def do_retry_release_export(*, actor: AbstractBaseUser, release: Release) -> ReleaseExport:
    """Reset a failed (or stalled: its worker or message was lost) export to queued and queue it again; any other
    state is a conflict (it runs or is done)."""
    export = ReleaseExport.objects.select_for_update().get(release=release)
    if export.status != JobStatus.FAILED and not export.stalled:
        raise StateConflict(f"The export of {release} is {export.get_status_display().lower()}; "
                            "only a failed or stalled export is retried.")
    from_state, failed_with = export.status, export.error
    export.status, export.progress_done, export.error, export.step = JobStatus.QUEUED, 0, "", ""
    export.started_at = export.finished_at = None
    export.save(update_fields=["status", "progress_done", "error", "step", "started_at", "finished_at", "updated_at"])
    audit_write(actor=actor, action=AuditEvent.RETRY_RELEASE_EXPORT, obj=export, from_state=from_state,
                to_state=JobStatus.QUEUED, extra={"release": release.pk, "error": failed_with})
    job_send_on_commit(export)
    return export


def release_folder_name(release: Release) -> str:
    """The folder of a release's export in the releases storage (ReleaseExport.folder once it is done)."""
    return f"{release.name}-v{release.version}"


def release_folder(release: Release) -> Path:
    """The export's folder on this machine, when releases are stored in folders (NotImplementedError for a
    bucket)."""
    return Path(releases_storage().path(release_folder_name(release)))


def _export_rows(release: Release) -> Iterator[dict]:
    rows = (ReleaseNote.objects.filter(release=release).order_by("idx")
            .values_list("idx", "icd_code", "text", "fields"))
    for idx, code, text, fields in rows.iterator(chunk_size=SNAPSHOT_BATCH):
        yield {"idx": idx, "ICD-10": code, "response": text, **fields}


def _share_true(field_name: str) -> Case:
    return Case(When(**{field_name: True}, then=Value(1.0)), default=Value(0.0), output_field=FloatField())


def release_assessment(release: Release) -> dict:
    """What physicians said of the included notes in blind studies (all studies, any state); ratings by someone who
    can see origins (roles.origin_seers) are not blind and do not count."""
    ratings = Rating.objects.filter(assignment__item__note__release_entries__release=release).exclude(
        assignment__physician__in=origin_seers())
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


def _model_licences_fill(models: dict[str, dict]) -> None:
    """A note generated before notes recorded their model's licence gets it from the current configuration of that
    name, when there is one (its licence may have been stated since); otherwise it stays unknown."""
    older = [name for name, model in models.items() if "licence" not in model]
    current = {config.name: config for config in ModelConfig.objects.filter(name__in=older)}
    for name in older:
        config = current.get(name)
        if config is not None:
            models[name] = {**models[name], "licence": config.licence, "licence_url": config.licence_url}


def release_provenance(release: Release) -> dict:
    """Graph versions, prompt template versions, model configurations (with their licences) and jobs behind the
    included notes."""
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
            known = models.get(str(model.get("name")))
            if known is None or ("licence" not in known and "licence" in model):  # a newer note states the licence
                models[str(model.get("name"))] = model
        if job is not None:
            jobs[job] += 1
    _model_licences_fill(models)
    return {"graph_versions": sorted(graph_versions), "prompt_templates": sorted(templates),
            "model_configs": [models[name] for name in sorted(models)],
            "generation_jobs": sorted(jobs)}


def release_card(release: Release) -> ReleaseCard:
    """What the dataset card says beyond the rows: the release's facts, assessment, provenance and the sections
    other apps add (medsyn_site.core.sections: utility's latest evaluation)."""
    creator = release.created_by.get_username() if release.created_by else ""
    return ReleaseCard(name=release.name, version=release.version, description=release.description,
                       licence=release.licence, language="ru", created_at=release.created_at.isoformat(),
                       created_by=creator, include_real=release.include_real,
                       real_data_licence=release.real_data_licence, filters=release.filters,
                       assessment=release_assessment(release), provenance=release_provenance(release),
                       sections=release_card_sections.render(release))


def release_card_refresh(release: Release) -> bool:
    """Rewrite a finished export's card and checksums with what is known now (e.g. a utility evaluation that
    finished after the export); False when the release has no finished export to refresh. Under the export's row
    lock, so two refreshes (or a refresh and an export retry) never interleave. In a bucket the folder is downloaded,
    rewritten and its two files uploaded back (core.storage.folder_edit: both or, put back, neither)."""
    with transaction.atomic():
        export = ReleaseExport.objects.select_for_update(of=("self",)).select_related("release__created_by").get(
            release_id=release.pk)
        if export.status != JobStatus.DONE or not export.folder:
            return False
        card = release_card(export.release)
        with folder_edit(releases_storage(), export.folder, paths=[f["path"] for f in export.files],
                         changed=[README_PATH, SUMS_PATH]) as folder:
            files = release_card_rewrite(folder=folder, card=card, stats=export.stats)
        export.files = [{"path": f.path, "bytes": f.bytes, "sha256": f.sha256} for f in files]
        export.save(update_fields=["files"])
    return True


def release_export_run(release_id: int, on_progress: Progress | None = None) -> None:
    """Write the release folder (export.release_folder_write) on local disk, publish it to the releases storage
    (core.storage: a folder or a bucket) and record files, checksums and statistics on the release's export job;
    progress in notes, also passed to on_progress (a command's bar).

    All or nothing: the export is done only once every file is published, and a failed publish leaves it failed for
    a retry, which publishes over whatever the failed one left in a bucket; files are served only for a done export.
    A finished export is left alone; a redelivered running one runs again from the start.
    """
    export = ReleaseExport.objects.select_related("release__created_by").get(release_id=release_id)
    if not export.mark_running():
        return
    release = export.release
    storage, name = releases_storage(), release_folder_name(release)
    try:
        card = release_card(release)
        with ProgressRecorder(export, also=on_progress) as progress, folder_workspace(storage) as work:
            exported = release_folder_write(folder=work / name, rows=_export_rows(release),
                                            total=release.note_count, card=card, progress=progress)
            folder_publish(storage, work / name, name, [f.path for f in exported.files])
    except Exception as error:
        export.mark_finished(JobStatus.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    export.mark_finished(JobStatus.DONE, folder=name, stats=exported.stats,
                         progress_done=exported.stats["rows"], progress_total=exported.stats["rows"],
                         files=[{"path": f.path, "bytes": f.bytes, "sha256": f.sha256} for f in exported.files])


@dataclass(frozen=True)
class ReleaseFile:
    """One file of a finished export, as listed by it: its name in the releases storage, size and SHA-256."""

    path: str  # relative to the release folder
    name: str  # in the releases storage
    bytes: int
    sha256: str


def release_file(release: Release, relative: str) -> ReleaseFile | None:
    """One file of a finished export, or None when the export is not done or did not list it (no path tricks)."""
    export = release.export
    if export.status != JobStatus.DONE:
        return None
    for entry in export.files:
        if entry["path"] == relative:
            return ReleaseFile(path=relative, name=f"{export.folder}/{relative}", bytes=entry["bytes"],
                               sha256=entry["sha256"])
    return None


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
