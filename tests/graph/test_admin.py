"""Graph versions and import jobs are read-only in Django admin: they change only through imports."""

from __future__ import annotations

import pytest
from django.urls import reverse

from graph.models import ImportJob

pytestmark = pytest.mark.django_db


def test_an_import_job_cannot_be_changed_or_deleted_in_the_admin(admin_client):
    job = ImportJob.objects.create(kind="generic", original_name="drugs.jsonl", status="failed", error="bad line 2")
    change = reverse("admin:graph_importjob_change", args=[job.pk])
    assert admin_client.get(change).status_code == 200  # shown, read-only
    assert admin_client.post(change, {"status": "done", "error": ""}).status_code == 403
    assert admin_client.post(reverse("admin:graph_importjob_delete", args=[job.pk]), {"post": "yes"}).status_code == 403
    job.refresh_from_db()
    assert (job.status, job.error) == ("failed", "bad line 2")
    assert admin_client.get(reverse("admin:graph_importjob_add")).status_code == 403
