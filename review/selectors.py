"""Reads of the assessment app."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from .models import Study


def studies_open_for_rater(user) -> QuerySet[Study]:
    """Open studies this user may rate: those with no rater list, or whose list names them."""
    return Study.objects.filter(state=Study.State.OPEN).filter(Q(physicians=None) | Q(physicians=user)).distinct()
