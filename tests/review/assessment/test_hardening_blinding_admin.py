"""Issue 11 (hardening), item 4: "nobody who can see origins may rate", for origins seen in Django admin.

roles.sees_origins reads the product's permissions (medsyn_site.view_results, curate_notes, ...) and superusers. A
staff user given only Django admin's view permission on notes or study items sees each note's origin there (the
Note list's "origin" column, the StudyItem list's "is synthetic" column by token) and is not refused as a rater.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied

from review.assessment.services import assignment_next, do_build_study_pool, do_create_study, do_open_study

pytestmark = pytest.mark.django_db

ADMIN_VIEWS = {"generation.view_note": "/admin/generation/note/?origin__exact=synthetic",
               "assessment.view_studyitem": "/admin/assessment/studyitem/?is_synthetic__exact=1"}


def _staff_physician(make_user, permission: str):
    app_label, codename = permission.split(".")
    doctor = make_user("physician")
    doctor.is_staff = True
    doctor.save()
    doctor.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return type(doctor).objects.get(pk=doctor.pk)  # a fresh object: no cached permissions


@pytest.fixture
def open_study(make_user, note_pool):
    curator = make_user("curator")
    study = do_create_study(actor=curator, name="admin view", overlap_k=1)
    do_build_study_pool(actor=curator, study=study, n_per_origin=2, seed=3)
    do_open_study(actor=curator, study=study)
    return study


@pytest.mark.parametrize("permission", list(ADMIN_VIEWS))
def test_a_staff_physician_sees_origins_in_django_admin(client, make_user, open_study, permission):
    """The premise of the next test: the page lists the synthetic notes (or items) only, to this physician."""
    doctor = _staff_physician(make_user, permission)
    client.force_login(doctor)
    listing = client.get(ADMIN_VIEWS[permission])
    assert listing.status_code == 200 and "0 results" not in listing.content.decode()
    assert doctor.has_perm("medsyn_site.rate_notes")


@pytest.mark.parametrize("permission", list(ADMIN_VIEWS))
def test_a_staff_physician_who_sees_origins_in_django_admin_may_not_rate(make_user, open_study, permission):
    doctor = _staff_physician(make_user, permission)
    with pytest.raises(PermissionDenied, match="origins"):
        assignment_next(study=open_study, physician=doctor)
