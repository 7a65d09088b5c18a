"""Demo users, one per role, for `make up`. Idempotent: running it again changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from medsyn_site.roles import ROLES, roles_sync


@dataclass(frozen=True)
class DemoLogin:
    role: str
    username: str
    password: str


DEMO_LOGINS = tuple(DemoLogin(role.name, f"demo_{role.name}", f"medsyn-{role.name}-demo") for role in ROLES)


@transaction.atomic
def demo_users_ensure() -> list[DemoLogin]:
    roles_sync()
    User = get_user_model()
    for login in DEMO_LOGINS:
        user, created = User.objects.get_or_create(username=login.username)
        if created:
            user.set_password(login.password)
        user.is_staff = login.role == "admin"
        user.is_superuser = login.role == "admin"
        user.save()
        user.groups.set([Group.objects.get(name=login.role)])
    return list(DEMO_LOGINS)
