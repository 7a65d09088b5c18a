"""Blind assessment: studies, their pooled items, physicians' assignments and ratings.

Tables keep the names they had when review was one app (db_table).
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


def item_rank() -> int:
    """A random position in the study's shared random order (see services.assignment_next)."""
    return secrets.randbits(62)


def item_token() -> str:
    """A random public id for a study item: no link to the note id, origin or order."""
    return secrets.token_urlsafe(12)


class Study(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", _("Draft")
        OPEN = "open", _("Open")
        CLOSED = "closed", _("Closed")

    name = models.CharField(max_length=200, unique=True)
    instructions = models.TextField(blank=True, default="")
    questions = models.JSONField(help_text=_("Editable while the study is a draft; frozen once it opens."))
    overlap_k = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1), MaxValueValidator(50)])
    state = models.CharField(max_length=8, choices=State.choices, default=State.DRAFT)
    pool_report = models.JSONField(default=dict, blank=True)
    # Measured when the pool is built (services.blinding_report): notes the normaliser changed per origin, and the
    # origin classifier's accuracies on raw, normalised and content-only texts (origin_probe).
    blinding_report = models.JSONField(default=dict, blank=True)
    physicians = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="assessment_studies")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "review_study"
        ordering = ["-created_at"]
        verbose_name_plural = _("studies")

    def __str__(self) -> str:
        return self.name


class StudyItem(models.Model):
    """One note in a study's pool, as physicians see it (normalised text and diagnosis only)."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="items")
    note = models.ForeignKey("generation.Note", on_delete=models.PROTECT, related_name="study_items")
    token = models.CharField(max_length=32, unique=True, default=item_token)
    display_text = models.TextField()
    diagnosis_code = models.CharField(max_length=16)
    diagnosis_name = models.CharField(max_length=300, blank=True, default="")
    is_synthetic = models.BooleanField()  # for results only; never rendered to raters
    length_band = models.CharField(max_length=16)
    # The item's claims: physicians who hold it or rated it (a skip gives the claim back). Changed only under the
    # item's row lock (services.assignment_next, do_skip_item), and never above slots: the database refuses it.
    active_assignments = models.PositiveSmallIntegerField(default=0)
    # How many physicians rate the item: the study's overlap k (fixed when the study is created), copied onto the
    # item when the pool is built so that the check constraint below can hold the claims to it.
    slots = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(50)])
    rank = models.BigIntegerField(default=item_rank)

    class Meta:
        db_table = "review_studyitem"
        constraints = [
            models.UniqueConstraint(fields=["study", "note"], name="study_item_note_once"),
            models.CheckConstraint(condition=models.Q(active_assignments__lte=models.F("slots")),
                                   name="study_item_claims_within_k"),
        ]
        indexes = [models.Index(fields=["study", "rank"])]

    def __str__(self) -> str:
        return f"{self.study_id}:{self.token}"


class Assignment(models.Model):
    class Status(models.TextChoices):
        ASSIGNED = "assigned", _("Assigned")
        DONE = "done", _("Done")
        SKIPPED = "skipped", _("Skipped")

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(StudyItem, on_delete=models.CASCADE, related_name="assignments")
    physician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="assignments")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ASSIGNED)
    skip_reason = models.CharField(max_length=500, blank=True, default="")
    assigned_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    seconds_on_item = models.FloatField(null=True, blank=True)  # measured on the server

    class Meta:
        db_table = "review_assignment"
        constraints = [
            models.UniqueConstraint(fields=["item", "physician"], name="assignment_once_per_physician"),
            # One current item per physician and study (services.assignment_next hands it out again until it is
            # answered or skipped).
            models.UniqueConstraint(fields=["study", "physician"], condition=models.Q(status="assigned"),
                                    name="assignment_one_current_per_physician"),
        ]
        indexes = [models.Index(fields=["study", "physician", "status"])]

    def __str__(self) -> str:
        return f"{self.physician_id}→{self.item_id} ({self.status})"


class Rating(models.Model):
    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="rating")
    judged_synthetic = models.BooleanField()
    confidence = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])
    likert = models.JSONField(default=dict)  # question key -> 1..5
    comment = models.TextField(blank=True, default="")
    revisions = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "review_rating"

    def __str__(self) -> str:
        return f"rating of {self.assignment_id}"
