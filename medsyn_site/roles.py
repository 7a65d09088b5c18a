"""Roles are Django groups; each is a fixed set of the permissions defined on medsyn_site.Access.

Blinding is a property of permissions too: a user who can see notes' origins anywhere (sees_origins) may not rate,
and their ratings never count (origin_seers). So no role holds rate_notes with any of ORIGIN_PERMISSIONS: the
administrator rates nothing (a demo physician does)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class Role:
    name: str
    label: str
    permissions: tuple[str, ...]


ROLES: tuple[Role, ...] = (
    Role("physician", _("Physician"), ("rate_notes",)),
    Role(
        "curator",
        _("Curator"),
        ("browse_graph", "curate_notes", "manage_studies", "view_results", "manage_releases",
         "download_releases", "view_status"),
    ),
    Role(
        "researcher",
        _("Researcher"),
        ("browse_graph", "run_generation", "manage_studies", "view_results", "download_releases", "view_status"),
    ),
    Role(
        "admin",
        _("Administrator"),
        ("browse_graph", "manage_graph", "run_generation", "manage_studies", "view_results", "curate_notes",
         "manage_releases", "download_releases", "view_status"),
    ),
)
ROLE_NAMES = tuple(role.name for role in ROLES)


@transaction.atomic
def roles_sync() -> list[Group]:
    """Create or update every role group so it has exactly its permissions. Idempotent."""
    groups = []
    for role in ROLES:
        group, _created = Group.objects.get_or_create(name=role.name)
        perms = Permission.objects.filter(content_type__app_label="medsyn_site", codename__in=role.permissions)
        found = {p.codename for p in perms}
        missing = set(role.permissions) - found
        if missing:
            raise RuntimeError(f"permissions missing for role {role.name}: {sorted(missing)}; run migrate first")
        group.permissions.set(perms)
        groups.append(group)
    return groups


def user_roles(user) -> list[str]:
    if not user.is_authenticated:
        return []
    return sorted(user.groups.filter(name__in=ROLE_NAMES).values_list("name", flat=True))


# Permissions that show a note's origin (results, curation, generated notes, pools, releases): a user holding any of
# them may not rate, since they could recognise a note and their answers would not be blind.
ORIGIN_PERMISSIONS = ("view_results", "curate_notes", "run_generation", "manage_studies", "manage_releases",
                      "download_releases")


# Django admin's view (and change) permissions of the models whose admin pages show a note's origin: a staff user
# holding one sees origins there as surely as through the product's own pages.
ADMIN_ORIGIN_PERMISSIONS = tuple(f"{app}.{action}_{model}" for app, model in (
    ("generation", "note"), ("generation", "generationitem"), ("assessment", "studyitem"),
    ("curation", "notecuration")) for action in ("view", "change"))


def sees_origins(user: AbstractBaseUser) -> bool:
    """True for a user who can see notes' origins anywhere in the product or its admin (a superuser always can)."""
    return bool(user.is_superuser) or any(user.has_perm(f"medsyn_site.{name}") for name in ORIGIN_PERMISSIONS) or any(
        user.has_perm(name) for name in ADMIN_ORIGIN_PERMISSIONS)


def origin_seers() -> QuerySet:
    """Every user who sees_origins, as a query (for leaving their ratings out of results)."""
    admin = Q()
    for name in ADMIN_ORIGIN_PERMISSIONS:
        app_label, codename = name.split(".")
        admin |= Q(content_type__app_label=app_label, codename=codename)
    permissions = Permission.objects.filter(Q(content_type__app_label="medsyn_site", codename__in=ORIGIN_PERMISSIONS)
                                            | admin)
    return get_user_model().objects.filter(Q(is_superuser=True) | Q(groups__permissions__in=permissions)
                                           | Q(user_permissions__in=permissions)).values("pk")
