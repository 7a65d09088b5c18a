"""Users with a role (a Django group from medsyn_site.roles); admins are also staff and superusers."""

from __future__ import annotations

import factory
from django.contrib.auth.models import Group, User

from medsyn_site.roles import roles_sync

PASSWORD = "pw-test-123456"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user_{n}")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def role(user: User, create: bool, role: str | None, **kwargs) -> None:
        if not create or not role:
            return
        roles_sync()
        user.groups.add(Group.objects.get(name=role))
        if role == "admin":
            user.is_staff = user.is_superuser = True
            user.save(update_fields=["is_staff", "is_superuser"])
