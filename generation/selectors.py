"""Reads for the generation app."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import (
    GenerationItem,
    GenerationJob,
    ModelConfig,
    Note,
    NoteImportJob,
    PromptTemplate,
    SymptomExtractionJob,
    SymptomProposal,
)


def prompt_template_current(*, variant: str, language: str, name: str | None = None) -> PromptTemplate:
    """The current version of a named template, or of the default template for variant and language."""
    return PromptTemplate.objects.get(name=name or f"default-{variant}-{language}", is_current=True)


def prompt_template_versions(*, name: str) -> QuerySet[PromptTemplate]:
    return PromptTemplate.objects.filter(name=name).order_by("-version")


def real_notes_for_category(*, icd_category: str) -> QuerySet[Note]:
    return Note.objects.filter(origin=Note.Origin.REAL, icd_category=icd_category)


def generation_jobs_list() -> QuerySet[GenerationJob]:
    return GenerationJob.objects.select_related("model_config", "prompt_template", "created_by").order_by("-id")


def generation_job_errors(*, job: GenerationJob) -> QuerySet[GenerationItem]:
    """Items that failed or were skipped, with their reasons."""
    return job.items.filter(status__in=[GenerationItem.Status.FAILED, GenerationItem.Status.SKIPPED]).order_by("index")


def note_import_jobs_recent(*, limit: int = 20) -> QuerySet[NoteImportJob]:
    return NoteImportJob.objects.order_by("-id")[:limit]


def symptom_proposals_pending(*, limit: int = 500) -> QuerySet[SymptomProposal]:
    return SymptomProposal.objects.filter(status=SymptomProposal.Status.PROPOSED)[:limit]


def symptom_extractions_recent(*, limit: int = 5) -> QuerySet[SymptomExtractionJob]:
    """The latest extractions, newest first (the running ones among them)."""
    return SymptomExtractionJob.objects.select_related("model_config").order_by("-id")[:limit]


def symptom_proposals_reviewed(*, limit: int = 50) -> QuerySet[SymptomProposal]:
    """The latest decisions, newest first."""
    return (SymptomProposal.objects.exclude(status=SymptomProposal.Status.PROPOSED).select_related("reviewed_by")
            .order_by("-reviewed_at")[:limit])


def synthetic_notes_filter(*, code: str = "", model: str = "", variant: str = "", check: str = "",
                           job: int | str | None = None, generated_only: bool = True) -> QuerySet[Note]:
    """Synthetic notes filtered by ICD-10 code prefix, model configuration name, variant, check outcome and job;
    generated_only leaves out notes imported from a MedSyn release file (they have no job)."""
    notes = Note.objects.filter(origin=Note.Origin.SYNTHETIC).order_by("-id")
    if generated_only:
        notes = notes.filter(metadata__has_key="job_id")
    if code:
        notes = notes.filter(icd_code__istartswith=code.strip())
    if model:
        notes = notes.filter(metadata__generation_model=model)
    if variant:
        notes = notes.filter(metadata__prompt_variant=variant)
    if check in ("pass", "fail"):
        notes = notes.filter(metadata__checks__passed=check == "pass")
    if job:
        notes = notes.filter(metadata__job_id=int(job))
    return notes


def model_configs() -> QuerySet[ModelConfig]:
    """Every model configuration, by name (the first is the forms' default)."""
    return ModelConfig.objects.order_by("name")


def symptom_proposals_by_id(ids: list[int]) -> list[SymptomProposal]:
    return list(SymptomProposal.objects.filter(pk__in=ids))
