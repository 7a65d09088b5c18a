"""Demo users, one per role, for `make up`. Idempotent: running it again changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

ROLE_NAMES = ("physician", "curator", "researcher", "admin")


@dataclass(frozen=True)
class DemoLogin:
    role: str
    username: str
    password: str


# Importable before Django is set up (the stack prints these), so no model imports at module level.
DEMO_LOGINS = tuple(DemoLogin(role, f"demo_{role}", f"medsyn-{role}-demo") for role in ROLE_NAMES)


def demo_users_ensure() -> list[DemoLogin]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import transaction

    from medsyn_site.roles import roles_sync

    with transaction.atomic():
        roles_sync()
        _demo_users_write(get_user_model(), Group)
    return list(DEMO_LOGINS)


def _demo_users_write(User, Group) -> None:
    for login in DEMO_LOGINS:
        user, created = User.objects.get_or_create(username=login.username)
        if created:
            user.set_password(login.password)
        user.is_staff = login.role == "admin"
        user.is_superuser = login.role == "admin"
        user.save()
        user.groups.set([Group.objects.get(name=login.role)])
