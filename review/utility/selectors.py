"""Reads of utility evaluations: the lists, the splits to choose from, the latest evaluation of a release, and the
command line that repeats an evaluation."""

from __future__ import annotations

import shlex

from django.db.models import Count, QuerySet

from generation.models import Note
from medsyn_site.core.models import JobStatus
from review.releases.models import Release

from .models import EvaluationSet, UtilityEvaluation


def utility_evaluations_list() -> QuerySet[UtilityEvaluation]:
    return UtilityEvaluation.objects.select_related("release", "evaluation_set", "created_by").order_by("-id")


def evaluation_sets_list() -> QuerySet[EvaluationSet]:
    return EvaluationSet.objects.select_related("created_by").order_by("-id")


def real_splits() -> list[dict]:
    """The splits of real notes with their note counts: [{split, notes}], by name."""
    rows = (Note.objects.filter(origin=Note.Origin.REAL).exclude(split="").values("split")
            .annotate(notes=Count("id")).order_by("split"))
    return list(rows)


def releases_sealed() -> QuerySet[Release]:
    """Releases whose snapshot is complete (an evaluation can read them)."""
    return Release.objects.exclude(content_sha256="").order_by("name", "-version")


def utility_latest_for_release(release: Release) -> UtilityEvaluation | None:
    """The release's most recent finished evaluation of its own synthetic notes, or None."""
    return (UtilityEvaluation.objects.filter(release=release, synthetic=UtilityEvaluation.Synthetic.RELEASE,
                                             status=JobStatus.DONE)
            .select_related("release", "evaluation_set").order_by("-finished_at", "-id").first())


def utility_command_line(evaluation: UtilityEvaluation) -> str:
    """The `manage.py evaluate_utility` call that runs the same evaluation on this server: the same notes give the
    same figures (a release and an uploaded set never change; a split or the approved notes may have since, which
    the content hashes in the result show)."""
    parts = ["manage.py", "evaluate_utility", "--real-split", evaluation.real_split]
    if evaluation.synthetic == UtilityEvaluation.Synthetic.RELEASE:
        parts += ["--release", f"{evaluation.release.name}:{evaluation.release.version}"]
    elif evaluation.synthetic == UtilityEvaluation.Synthetic.APPROVED:
        parts.append("--approved")
        for key, value in sorted(evaluation.approved_filters.items()):
            parts += ["--filter", f"{key}={value}"]
    if evaluation.evaluation_set_id:
        parts += ["--eval-set", evaluation.evaluation_set.name]
    else:
        parts += ["--eval-split", evaluation.evaluation_split]
    parts += ["--classifier", evaluation.classifier, "--grid", evaluation.grid, "--seeds", str(evaluation.seeds),
              "--upsample-to", str(evaluation.upsample_to)]
    if evaluation.held_out_codes:
        parts += ["--held-out-codes", ",".join(evaluation.held_out_codes)]
    parts += ["--held-out-count", str(evaluation.held_out_count), "--bootstrap", str(evaluation.bootstrap),
              "--max-overlap", f"{evaluation.max_overlap:g}", "--json", f"utility-{evaluation.pk}.json"]
    return shlex.join(parts)
