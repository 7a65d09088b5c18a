"""An uploaded graph file in the shared storage (MEDSYN_STORAGE_URL=s3://...): the import reads it from the bucket,
so the default worker need not run on the web host that stored it."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from graph.models import ImportJob
from medsyn_site.core.models import JobStatus
from tests.medsyn_site.core.s3_server import storages_use

from .conftest import DRUG_ROWS
from .test_upload_job import _jsonl, admin_client  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


def test_an_upload_in_the_bucket_is_imported_and_a_repeat_deleted(admin_client, graph_store, s3, s3_bucket,  # noqa: F811
                                                                   settings):
    storages_use(settings, s3, s3_bucket, "default")
    for name in ("drugs.jsonl", "drugs-again.jsonl"):
        response = admin_client.post(reverse("graph:import_upload"),
                                     {"kind": "generic", "upload": SimpleUploadedFile(name, _jsonl(DRUG_ROWS))})
        assert response.status_code == 302
    again, first = ImportJob.objects.all()
    assert (first.status, first.changed) == (JobStatus.DONE, True), first.error
    assert graph_store.run("MATCH (d:Drug) RETURN d.key AS k") == [{"k": "amoxicillin"}]
    assert (again.status, again.changed, again.version) == (JobStatus.DONE, False, first.version)
    # The first file stays as the provenance of the version it made; the unchanged repeat is deleted.
    assert s3.keys(s3_bucket) == [f"medsyn/uploads/{first.upload.name}"] and not again.upload
