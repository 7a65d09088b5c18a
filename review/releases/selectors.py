"""Reads of releases: the list, a release's neighbours to diff against, the notes it froze."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Release, ReleaseNote


def releases_list() -> QuerySet[Release]:
    return Release.objects.select_related("created_by", "export")


def releases_other_than(release: Release) -> QuerySet[Release]:
    return Release.objects.exclude(pk=release.pk)


def release_sample(release: Release, limit: int = 20) -> QuerySet[ReleaseNote]:
    """The first notes of a release's snapshot, in export order."""
    return release.notes.order_by("idx")[:limit]
