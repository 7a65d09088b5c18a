"""Evaluation sets (uploaded RuMedTop3 files, their notes stored) and utility evaluations (chunked background jobs on
the default queue whose units are the run's classifier fits, each stored once as a UtilityFit; the result, computed
from them, stored as JSON).

Utility depends on releases (an evaluation may read a release's synthetic notes), never the reverse: releases shows
utility through medsyn_site.core.sections.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from medsyn_site.core.models import BackgroundJob
from review.releases.models import Release

# The permission of utility pages and API: researchers and administrators hold it (medsyn_site.roles).
UTILITY_PERMISSION = "run_generation"
MAX_SEEDS = 10
MAX_BOOTSTRAP = 10_000
# evaluation.UtilityPlan's defaults and overlap.OverlapThresholds.max_share (tests hold them equal). Written out:
# the engine imports scikit-learn, which every process that loads the models (each manage.py command) would pay for.
PLAN_DEFAULTS = {"classifier": "tfidf-lr", "grid": "paper", "seeds": 3, "upsample_to": 50, "held_out_count": 5,
                 "bootstrap": 1000, "max_overlap": 0.01}


class EvaluationSet(models.Model):
    """A labelled RuMedTop3 jsonl file (idx, symptoms, code), uploaded and imported all or nothing: its notes are
    stored (EvaluationSetNote), so an evaluation reads exactly them whatever happens to the file.

    file_sha256 names the uploaded bytes; sha256 the notes as the evaluation reads them (datasets.notes_sha256 over
    label and normalised text): the same as `evaluate_utility --eval-file` computes for that file."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    original_name = models.CharField(max_length=255)
    file_sha256 = models.CharField(max_length=64)
    sha256 = models.CharField(max_length=64)
    note_count = models.PositiveIntegerField(default=0)
    code_count = models.PositiveIntegerField(default=0)  # distinct ICD-10 categories
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name


class EvaluationSetNote(models.Model):
    """One line of an evaluation set's file, as read: position is its order in the set (the bootstrap resamples by
    position), line its line in the file (the key a report names it by)."""

    evaluation_set = models.ForeignKey(EvaluationSet, on_delete=models.CASCADE, related_name="notes")
    position = models.PositiveIntegerField()
    line = models.PositiveIntegerField()
    idx = models.CharField(max_length=200)
    code = models.CharField(max_length=16)  # the ICD-10 code as written (upper-cased); the label is its category
    text = models.TextField()

    class Meta:
        ordering = ["evaluation_set", "position"]
        constraints = [models.UniqueConstraint(fields=["evaluation_set", "position"],
                                               name="evaluation_set_note_position")]

    def __str__(self) -> str:
        return f"{self.evaluation_set_id}:{self.line}"


class UtilityEvaluation(BackgroundJob):
    """One run of the utility evaluation on the default queue: real training notes of a split, synthetic notes (a
    release's, the approved ones matching a filter, or none), an evaluation set (a split or an EvaluationSet), and
    the plan (evaluation.UtilityPlan). A chunked job (core.chunks, review.utility.jobs): its units are the run's
    distinct classifier fits, so every default worker, on any host, takes part. Progress is in fits.

    prepared: the run as its first task prepared it (jobs.run_record: the content hashes of the notes it read, the
    overlap exclusions, the number of fits and the run's fingerprint): every chunk checks that it prepares the same.
    result: UtilityResult.as_json() of a finished run (its inputs hold every hash and parameter to repeat it).
    overlap: the overlap report (overlap.OverlapReport.describe()), also of a run refused for overlapping its
    evaluation set (then failed, the reason in error)."""

    class Synthetic(models.TextChoices):
        NONE = "none", _("None: real notes only")
        RELEASE = "release", _("A release's synthetic notes")
        APPROVED = "approved", _("Approved notes a release would take now")

    real_split = models.CharField(_("real training notes (split)"), max_length=16)
    synthetic = models.CharField(_("synthetic notes"), max_length=16, choices=Synthetic.choices,
                                 default=Synthetic.NONE)
    release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="utility_evaluations")
    approved_filters = models.JSONField(default=dict, blank=True)  # a release filter (curation queue keys)
    evaluation_set = models.ForeignKey(EvaluationSet, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="evaluations")
    evaluation_split = models.CharField(max_length=16, blank=True, default="")
    classifier = models.CharField(max_length=32, default=PLAN_DEFAULTS["classifier"])  # a classifiers.CLASSIFIERS key
    grid = models.CharField(max_length=16, default=PLAN_DEFAULTS["grid"])  # an evaluation.GRIDS key
    seeds = models.PositiveSmallIntegerField(default=PLAN_DEFAULTS["seeds"],
                                             validators=[MinValueValidator(1), MaxValueValidator(MAX_SEEDS)])
    upsample_to = models.PositiveIntegerField(default=PLAN_DEFAULTS["upsample_to"], validators=[MinValueValidator(1)])
    held_out_codes = models.JSONField(default=list, blank=True)  # ICD-10 categories; empty: drawn with seed 0
    held_out_count = models.PositiveSmallIntegerField(default=PLAN_DEFAULTS["held_out_count"],
                                                      validators=[MinValueValidator(1), MaxValueValidator(100)])
    bootstrap = models.PositiveIntegerField(default=PLAN_DEFAULTS["bootstrap"],
                                            validators=[MinValueValidator(100), MaxValueValidator(MAX_BOOTSTRAP)])
    max_overlap = models.FloatField(default=PLAN_DEFAULTS["max_overlap"],
                                    validators=[MinValueValidator(0.0), MaxValueValidator(0.99)])
    prepared = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    overlap = models.JSONField(default=dict, blank=True)

    progress_unit = "fits"

    class Meta(BackgroundJob.Meta):
        constraints = [
            models.CheckConstraint(
                condition=(Q(evaluation_set__isnull=False, evaluation_split="")
                           | (Q(evaluation_set__isnull=True) & ~Q(evaluation_split=""))),
                name="utility_one_evaluation_set"),
            models.CheckConstraint(condition=Q(synthetic="release", release__isnull=False)
                                   | (~Q(synthetic="release") & Q(release__isnull=True)),
                                   name="utility_release_when_release"),
        ]

    def __str__(self) -> str:
        return f"utility evaluation {self.pk} ({self.status})"

    def task_send(self) -> None:
        from medsyn_site.core.jobs import task_send

        from .tasks import run_utility_evaluation

        task_send(run_utility_evaluation, args=[self.pk], queue="default")

    # A chunked job (core.chunks): its fits are shared out over the workers of the default queue.
    def chunk_queue(self) -> str:
        return "default"

    def chunk_requirements(self) -> None:
        return None  # scikit-learn on the CPU: any default worker

    def chunk_execute(self, chunk) -> bool:
        from .jobs import utility_chunk_execute

        return utility_chunk_execute(self, chunk)

    def chunks_finish(self) -> None:
        from .jobs import utility_chunks_finish

        utility_chunks_finish(self)

    @property
    def evaluation_name(self) -> str:
        return str(self.evaluation_set) if self.evaluation_set_id else _("split %(split)s") % {
            "split": self.evaluation_split}

    @property
    def synthetic_name(self) -> str:
        if self.synthetic == self.Synthetic.RELEASE:
            return str(self.release)
        if self.synthetic == self.Synthetic.APPROVED:
            shown = ", ".join(f"{key}={value}" for key, value in sorted(self.approved_filters.items()))
            return _("approved notes (%(filter)s)") % {"filter": shown} if shown else _("approved notes")
        return _("none")


class UtilityFit(models.Model):
    """One fit of an evaluation's run (a unit of its chunked job: evaluation.UtilityRun.fit): the classifier trained
    on training set `index` and scored on the evaluation set, kept as its Predictions (the predicted label and the
    rank of the true label of each evaluation note, little-endian int32) until the last chunk computes the result from
    all of them. One row per (evaluation, index): a fit computed twice (a chunk delivered again, a worker that died
    after fitting) is stored once. training_sha256 names the training set (UtilityRun.training_sha256)."""

    evaluation = models.ForeignKey(UtilityEvaluation, on_delete=models.CASCADE, related_name="fits")
    index = models.PositiveIntegerField()
    training_sha256 = models.CharField(max_length=64)
    predicted = models.BinaryField()
    rank = models.BinaryField()
    fit_seconds = models.FloatField(default=0.0)
    features_seconds = models.FloatField(default=0.0)  # counting the pool's n-grams first (0: the process had them)
    worker = models.CharField(max_length=200, blank=True, default="")  # "<celery hostname> <boot id>", core.jobs
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["evaluation", "index"]
        constraints = [models.UniqueConstraint(fields=["evaluation", "index"], name="utility_fit_once_per_index")]

    def __str__(self) -> str:
        return f"utility evaluation {self.evaluation_id} fit {self.index}"
