"""Token authentication loads the user's permissions with the token (medsyn_site.accounts.ExpiringTokenAuthentication):
the same permissions as ModelBackend's, for every kind of user, and a change is seen at the next request."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import exceptions
from rest_framework.authtoken.models import Token

from medsyn_site.accounts import ExpiringTokenAuthentication

pytestmark = pytest.mark.django_db


def _authenticate(user: User) -> User:
    key = Token.objects.get_or_create(user=user)[0].key
    authenticated, token = ExpiringTokenAuthentication().authenticate_credentials(key)
    assert token.key == key and authenticated.pk == user.pk
    return authenticated


def _as_model_backend_has_them(user: User) -> set[str]:
    return User.objects.get(pk=user.pk).get_all_permissions()  # a fresh object: ModelBackend's own two queries


def test_the_permissions_loaded_with_the_token_are_model_backends(make_user):
    physician = make_user("physician")
    assert _authenticate(physician).get_all_permissions() == _as_model_backend_has_them(physician)
    assert _authenticate(physician).has_perm("medsyn_site.rate_notes")
    both = make_user("curator")
    both.groups.add(Group.objects.get(name="researcher"))
    both.user_permissions.add(Permission.objects.get(codename="view_note"))  # a permission of its own, outside groups
    loaded = _authenticate(both)
    assert loaded.get_all_permissions() == _as_model_backend_has_them(both)
    assert {"generation.view_note", "medsyn_site.curate_notes"} <= loaded.get_all_permissions()
    nobody = make_user()
    assert _authenticate(nobody).get_all_permissions() == set() == _as_model_backend_has_them(nobody)


def test_has_perm_asks_the_database_nothing_more_after_the_token(make_user):
    physician = make_user("physician")
    user = _authenticate(physician)
    with CaptureQueriesContext(connection) as queries:
        assert user.has_perm("medsyn_site.rate_notes") and not user.has_perm("medsyn_site.curate_notes")
    assert len(queries) == 0


def test_a_permission_taken_away_is_gone_at_the_next_request(make_user):
    physician = make_user("physician")
    assert _authenticate(physician).has_perm("medsyn_site.rate_notes")
    physician.groups.clear()
    assert not _authenticate(physician).has_perm("medsyn_site.rate_notes")


def test_a_superuser_keeps_every_permission_and_an_inactive_user_is_refused(make_user):
    admin = make_user("admin")
    admin.is_superuser = True
    admin.save(update_fields=["is_superuser"])
    assert _authenticate(admin).has_perm("generation.delete_note")  # not among its groups' permissions
    inactive = make_user("physician")
    key = Token.objects.create(user=inactive).key
    inactive.is_active = False
    inactive.save(update_fields=["is_active"])
    with pytest.raises(exceptions.AuthenticationFailed, match="inactive"):
        ExpiringTokenAuthentication().authenticate_credentials(key)
    with pytest.raises(exceptions.AuthenticationFailed, match="Invalid token"):
        ExpiringTokenAuthentication().authenticate_credentials("0" * 40)
