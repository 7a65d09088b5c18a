"""Reads of blind assessment: the studies a physician may rate."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from .models import Assignment, Rating, Study


def _rater_listed(user) -> Q:
    """A study with no rater list is open to every physician; otherwise the list must name the user."""
    return Q(physicians=None) | Q(physicians=user)


def studies_open_for_rater(user) -> QuerySet[Study]:
    """Open studies this user may rate."""
    return Study.objects.filter(state=Study.State.OPEN).filter(_rater_listed(user)).distinct()


def rater_listed_for(study: Study, user) -> bool:
    return Study.objects.filter(pk=study.pk).filter(_rater_listed(user)).exists()


def rater_progress(study: Study, user) -> dict:
    """A physician's own progress in a study and the study's overall progress (k ratings per note)."""
    done = Assignment.objects.filter(study=study, physician=user, status=Assignment.Status.DONE).count()
    skipped = Assignment.objects.filter(study=study, physician=user, status=Assignment.Status.SKIPPED).count()
    items = study.items.count()
    overall = study_progress(study)
    return {"done": done, "skipped": skipped, "items": items, "total_done": overall["total_done"],
            "total_needed": overall["total_needed"], "percent": overall["percent"],
            "mine_percent": round(100 * (done + skipped) / items) if items else 0}


def study_progress(study: Study) -> dict:
    """Ratings given against ratings needed (every item k times)."""
    total_needed = study.items.count() * study.overlap_k
    total_done = Rating.objects.filter(assignment__study=study).count()
    return {"total_done": total_done, "total_needed": total_needed,
            "percent": round(100 * total_done / total_needed) if total_needed else 0}


def ratings_by_rater(study: Study, user, *, limit: int = 50) -> QuerySet[Rating]:
    """The physician's latest answers in a study, newest first (for revising them)."""
    return (Rating.objects.filter(assignment__study=study, assignment__physician=user)
            .select_related("assignment__item").order_by("-assignment__answered_at")[:limit])


def studies_listed() -> QuerySet[Study]:
    return Study.objects.annotate(n_items=Count("items", distinct=True))
