"""Evaluation sets and utility evaluations: upload a set, start an evaluation (every check, the job and its audit
record) and cancel it. The run itself, shared out in fits over the default workers, is review.utility.jobs.

The run reads its notes when it starts: real notes of the split, a release's frozen synthetic notes or the approved
notes matching the filter then, and the evaluation set. The result's inputs hold each set's content hash, so what
was read is on record whatever changes later.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils.translation import gettext as _

from generation.models import Note
from medsyn_site.core.audit import audit_write
from medsyn_site.core.forms import form_errors_text
from medsyn_site.core.icd10 import icd_category, icd_code_clean
from medsyn_site.core.jobs import job_cancel, job_send_on_commit
from medsyn_site.core.models import AuditEvent
from review.curation.forms import CurationFilterForm
from review.releases.forms import RELEASE_FILTER_KEYS
from review.releases.models import Release

from .classifiers import CLASSIFIERS
from .datasets import evaluation_file_records, evaluation_set_notes
from .evaluation import GRIDS, UtilityPlan
from .models import PLAN_DEFAULTS, EvaluationSet, EvaluationSetNote, UtilityEvaluation
from .overlap import OverlapThresholds

EVALUATION_SET_MAX_BYTES = 20 * 1024 * 1024  # RuMedTop3's dev and test files are about 0.5 MB each
# The evaluation's inputs a user sets (form, API, command); the rest is the run's.
EVALUATION_PARAMETERS = ("real_split", "synthetic", "release", "approved_filters", "evaluation_set",
                         "evaluation_split", "classifier", "grid", "seeds", "upsample_to", "held_out_codes",
                         "held_out_count", "bootstrap", "max_overlap")


# --- Evaluation sets ----------------------------------------------------------------------------------------------

def _upload_write(upload: UploadedFile, folder: Path) -> Path:
    path = folder / "upload.jsonl"
    with path.open("wb") as target:
        for chunk in upload.chunks():
            target.write(chunk)
    return path


@transaction.atomic
def do_upload_evaluation_set(*, name: str, upload: UploadedFile, actor: AbstractBaseUser | None) -> EvaluationSet:
    """Import an uploaded RuMedTop3 jsonl file as an evaluation set, all or nothing: InputError listing every bad
    line (nothing stored), ValidationError by field for the name, an empty or a too large file."""
    name = (name or "").strip()
    original = Path(upload.name or "upload.jsonl").name[:255]
    if not name:
        raise ValidationError({"name": _("Give the evaluation set a name.")})
    if len(name) > 100:
        raise ValidationError({"name": _("A name has at most 100 characters.")})
    if EvaluationSet.objects.filter(name=name).exists():
        raise ValidationError({"name": _("An evaluation set is already named %(name)s.") % {"name": name}})
    if upload.size > EVALUATION_SET_MAX_BYTES:
        raise ValidationError({"file": _("The file is larger than %(mb)d MB.") % {
            "mb": EVALUATION_SET_MAX_BYTES // (1024 * 1024)}})
    with tempfile.TemporaryDirectory(prefix="medsyn-evaluation-set-") as folder:
        path = _upload_write(upload, Path(folder))
        records = evaluation_file_records(path, name=original)
        file_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    if not records:
        raise ValidationError({"file": _("The file holds no note.")})
    evaluation_set = EvaluationSet.objects.create(
        name=name, original_name=original, file_sha256=file_sha256, note_count=len(records),
        code_count=len({icd_category(record.code) for record in records}),
        created_by=actor if actor is not None and actor.is_authenticated else None)
    EvaluationSetNote.objects.bulk_create(
        [EvaluationSetNote(evaluation_set=evaluation_set, position=position, line=record.line, idx=record.idx[:200],
                           code=record.code, text=record.text) for position, record in enumerate(records)],
        batch_size=1000)
    evaluation_set.sha256 = evaluation_set_notes(evaluation_set).sha256
    evaluation_set.save(update_fields=["sha256"])
    audit_write(actor=actor, action=AuditEvent.UPLOAD_EVALUATION_SET, obj=evaluation_set,
                extra={"name": name, "file": original, "file_sha256": file_sha256, "sha256": evaluation_set.sha256,
                       "notes": evaluation_set.note_count, "codes": evaluation_set.code_count})
    return evaluation_set


def evaluation_set_jsonl(evaluation_set: EvaluationSet) -> Iterable[str]:
    """The stored notes as RuMedTop3 jsonl lines (idx, symptoms, code): `evaluate_utility --eval-file` on this file
    reads the same notes (the same content hash) as the set."""
    for idx, text, code in evaluation_set.notes.order_by("position").values_list("idx", "text", "code"):
        yield json.dumps({"idx": idx, "symptoms": text, "code": code}, ensure_ascii=False) + "\n"


# --- Starting and cancelling --------------------------------------------------------------------------------------

def _split_has_notes(split: str) -> bool:
    return bool(split) and Note.objects.filter(origin=Note.Origin.REAL, split=split).exists()


def approved_filters_clean(raw: object) -> dict[str, Any]:
    """A release filter (the curation queue's keys but the review state), checked as a release's is."""
    if raw in (None, ""):
        return {}
    if not isinstance(raw, Mapping):
        raise ValidationError({"approved_filters": _("A filter is an object of filter keys and values.")})
    form = CurationFilterForm(dict(raw), known_keys=RELEASE_FILTER_KEYS)  # an ignored key would take every note
    if not form.is_valid():
        raise ValidationError({"approved_filters": form_errors_text(form)})
    return form.filters()


def held_out_codes_clean(raw: object) -> list[str]:
    """ICD-10 categories from a list or a comma-separated string (a code such as J06.9 gives its category)."""
    if raw in (None, ""):
        return []
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
        raise ValidationError({"held_out_codes": _("A list of ICD-10 codes is required.")})
    codes, bad = [], []
    for item in (item.strip() for item in items):
        if not item:
            continue
        try:
            codes.append(icd_category(icd_code_clean(item)))
        except ValueError:
            bad.append(item[:20])
    if bad:
        raise ValidationError({"held_out_codes": _("Not ICD-10 codes: %(codes)s.") % {"codes": ", ".join(bad)}})
    return sorted(set(codes))


def evaluation_plan(evaluation: UtilityEvaluation) -> UtilityPlan:
    return UtilityPlan(classifier=evaluation.classifier, grid=evaluation.grid, seeds=tuple(range(evaluation.seeds)),
                       upsample_to=evaluation.upsample_to, held_out_codes=tuple(evaluation.held_out_codes),
                       held_out_count=evaluation.held_out_count, bootstrap=evaluation.bootstrap,
                       overlap=OverlapThresholds(max_share=evaluation.max_overlap))


def evaluation_parameters(evaluation: UtilityEvaluation) -> dict[str, Any]:
    """An evaluation's inputs as do_start_utility_evaluation takes them (to run it again)."""
    return {name: getattr(evaluation, name) for name in EVALUATION_PARAMETERS}


@transaction.atomic
def do_start_utility_evaluation(*, real_split: str, evaluation_split: str = "",
                                evaluation_set: EvaluationSet | None = None,
                                synthetic: str = UtilityEvaluation.Synthetic.NONE, release: Release | None = None,
                                approved_filters: Mapping[str, Any] | None = None,
                                classifier: str = PLAN_DEFAULTS["classifier"], grid: str = PLAN_DEFAULTS["grid"],
                                seeds: int = PLAN_DEFAULTS["seeds"], upsample_to: int = PLAN_DEFAULTS["upsample_to"],
                                held_out_codes: object = (), held_out_count: int = PLAN_DEFAULTS["held_out_count"],
                                bootstrap: int = PLAN_DEFAULTS["bootstrap"],
                                max_overlap: float = PLAN_DEFAULTS["max_overlap"],
                                actor: AbstractBaseUser | None, enqueue: bool = True) -> UtilityEvaluation:
    """Check the request (ValidationError by field), store the evaluation and its audit record, and send it to the
    default queue after the commit (enqueue=False: the caller runs it)."""
    evaluation_split = (evaluation_split or "").strip()
    real_split = (real_split or "").strip()
    problems: dict[str, list[str]] = {}

    def problem(field: str, message: str) -> None:
        problems.setdefault(field, []).append(message)

    if not _split_has_notes(real_split):
        problem("real_split", _("No real notes have the split %(split)s.") % {"split": real_split or "-"})
    if (evaluation_set is None) == (not evaluation_split):
        problem("evaluation_split", _("Choose one evaluation set: a split of real notes or an uploaded set."))
    elif evaluation_split and not _split_has_notes(evaluation_split):
        problem("evaluation_split", _("No real notes have the split %(split)s.") % {"split": evaluation_split})
    elif evaluation_split and evaluation_split == real_split:
        problem("evaluation_split", _("The evaluation split is the training split: choose another (dev or test)."))
    if synthetic not in UtilityEvaluation.Synthetic.values:
        problem("synthetic", _("Choose where the synthetic notes come from."))
    if synthetic == UtilityEvaluation.Synthetic.RELEASE:
        if release is None:
            problem("release", _("Choose the release whose synthetic notes to evaluate."))
        elif not release.content_sha256:
            problem("release", _("Release %(release)s is still being created.") % {"release": release})
    elif release is not None:
        problem("release", _("A release is evaluated only with its synthetic notes chosen as the source."))
    filters: dict[str, Any] = {}
    codes: list[str] = []
    try:
        filters = approved_filters_clean(approved_filters)
    except ValidationError as error:
        problem("approved_filters", " ".join(error.messages))
    try:
        codes = held_out_codes_clean(held_out_codes)
    except ValidationError as error:
        problem("held_out_codes", " ".join(error.messages))
    if filters and synthetic != UtilityEvaluation.Synthetic.APPROVED:
        problem("approved_filters", _("A filter selects approved notes: choose them as the source."))
    if codes and synthetic == UtilityEvaluation.Synthetic.NONE:
        problem("held_out_codes", _("Codes are held out only with synthetic notes to learn them from."))
    if classifier not in CLASSIFIERS:
        problem("classifier", _("Unknown classifier %(name)s; expected one of %(names)s.") % {
            "name": classifier, "names": ", ".join(CLASSIFIERS)})
    if grid not in GRIDS:
        problem("grid", _("Unknown grid %(name)s; expected one of %(names)s.") % {
            "name": grid, "names": ", ".join(GRIDS)})
    evaluation = UtilityEvaluation(
        real_split=real_split, synthetic=synthetic, release=release, approved_filters=filters,
        evaluation_set=evaluation_set, evaluation_split=evaluation_split, classifier=classifier, grid=grid,
        seeds=seeds, upsample_to=upsample_to, held_out_codes=codes, held_out_count=held_out_count,
        bootstrap=bootstrap, max_overlap=max_overlap,
        created_by=actor if actor is not None and actor.is_authenticated else None)
    try:
        # The constraints and the fields left out say what the checks above said.
        evaluation.full_clean(exclude=["real_split", "evaluation_split", "release", "evaluation_set", "classifier",
                                       "grid"], validate_constraints=False)
    except ValidationError as error:
        for field, messages in error.message_dict.items():
            for message in messages:
                problem(field, message)
    if not problems:
        try:
            evaluation_plan(evaluation).check()
        except ValidationError as error:
            for message in error.messages:
                problem("__all__", message)
    if problems:
        raise ValidationError(problems)
    evaluation.save()
    audit_write(actor=actor, action=AuditEvent.START_UTILITY_EVALUATION, obj=evaluation, to_state=evaluation.status,
                extra={name: (value.pk if isinstance(value, Release | EvaluationSet) else value)
                       for name, value in evaluation_parameters(evaluation).items()})
    if enqueue:
        job_send_on_commit(evaluation)
    return evaluation


@transaction.atomic
def do_cancel_utility_evaluation(*, evaluation: UtilityEvaluation,
                                 actor: AbstractBaseUser | None) -> UtilityEvaluation:
    """Stop a queued or running evaluation: each worker stops after its current fit, and no result is computed (the
    fits stored are kept). StateConflict when it has already finished."""
    return job_cancel(evaluation, actor=actor, event=AuditEvent.CANCEL_UTILITY_EVALUATION,
                      already_finished=_("Utility evaluation %(id)s has already finished (%(status)s): nothing to "
                                         "cancel."),
                      extra=lambda evaluation: {"fits_done": evaluation.progress_done})
