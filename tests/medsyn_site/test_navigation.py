"""The header's navigation follows the role; nobody is led to a page that refuses them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission


def _nav(client, user) -> list[str]:
    client.force_login(user)
    return [item["name"] for item in client.get("/").context["nav_items"]]


@pytest.mark.django_db
@pytest.mark.parametrize(("role", "rates"), [("physician", True), ("curator", False), ("researcher", False),
                                             ("admin", False)])
def test_rate_notes_is_offered_to_blind_raters_only(client, make_user, role, rates):
    assert ("assessment:rate_home" in _nav(client, make_user(role))) is rates


@pytest.mark.django_db
def test_a_physician_who_also_sees_results_is_not_offered_rating(client, make_user):
    """A superuser (the demo admin) or a physician given view_results holds rate_notes but is refused as a rater."""
    physician = make_user("physician")
    physician.user_permissions.add(Permission.objects.get(codename="view_results"))
    assert "assessment:rate_home" not in _nav(client, physician)
    superuser = make_user("admin")
    superuser.is_superuser = True
    superuser.save()
    assert superuser.has_perm("medsyn_site.rate_notes")
    assert "assessment:rate_home" not in _nav(client, superuser)
