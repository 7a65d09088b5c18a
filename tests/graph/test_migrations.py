"""graph 0002: import jobs take the shared background-job shape with every row kept (and back)."""

from __future__ import annotations

import pytest

from tests.scratch_database import SCRATCH, state_apps

BEFORE = [("graph", "0001_initial")]
AFTER = [("graph", "0002_importjob_background_job")]




@pytest.mark.django_db
def test_import_jobs_keep_their_outcome_and_progress_and_go_back(scratch_database):
    apps = state_apps(scratch_database, BEFORE)
    user = apps.get_model("auth", "User").objects.using(SCRATCH).create(username="admin-before-job-shape")
    version = apps.get_model("graph", "GraphVersion").objects.using(SCRATCH).create(
        source="upload:generic", content_hash="h" * 64, status="published")
    jobs = apps.get_model("graph", "ImportJob").objects.using(SCRATCH)
    old = {status: jobs.create(created_by=user, original_name=f"{status}.jsonl", upload=f"graph_imports/{status}.jsonl",
                               status=status, progress=progress, step=step, errors=errors, version=version_of).pk
           for status, progress, step, errors, version_of in [
               ("done", 100, "done", [], version), ("unchanged", 100, "done", [], version),
               ("failed", 0, "parse", [{"line": 2, "message": "not valid JSON"}], None),
               ("running", 40, "write", [], None), ("queued", 0, "", [], None)]}

    apps = state_apps(scratch_database, AFTER)
    jobs = {job.pk: job for job in apps.get_model("graph", "ImportJob").objects.using(SCRATCH).all()}
    done, unchanged, failed, running, queued = (jobs[old[s]] for s in ("done", "unchanged", "failed", "running",
                                                                       "queued"))
    assert (done.status, done.changed, done.version_id) == ("done", True, version.pk)
    assert (unchanged.status, unchanged.changed, unchanged.version_id) == ("done", False, version.pk)
    assert (failed.status, failed.changed, failed.errors) == ("failed", False, [{"line": 2,
                                                                                  "message": "not valid JSON"}])
    assert (running.status, running.progress_done, running.progress_total) == ("running", 40, 100)
    assert (queued.status, queued.progress_done, queued.created_by_id) == ("queued", 0, user.pk)
    assert all(job.updated_at == job.created_at for job in jobs.values())

    apps = state_apps(scratch_database, BEFORE)
    back = {job.pk: job for job in apps.get_model("graph", "ImportJob").objects.using(SCRATCH).all()}
    assert {status: (back[pk].status, back[pk].progress) for status, pk in old.items()} == {
        "done": ("done", 100), "unchanged": ("unchanged", 100), "failed": ("failed", 0),
        "running": ("running", 40), "queued": ("queued", 0)}
