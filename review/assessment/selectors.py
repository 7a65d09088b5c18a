"""Reads of blind assessment: the studies a physician may rate."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from .models import Study


def _rater_listed(user) -> Q:
    """A study with no rater list is open to every physician; otherwise the list must name the user."""
    return Q(physicians=None) | Q(physicians=user)


def studies_open_for_rater(user) -> QuerySet[Study]:
    """Open studies this user may rate."""
    return Study.objects.filter(state=Study.State.OPEN).filter(_rater_listed(user)).distinct()


def rater_listed_for(study: Study, user) -> bool:
    return Study.objects.filter(pk=study.pk).filter(_rater_listed(user)).exists()
