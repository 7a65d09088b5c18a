"""graph 0002: import jobs take the shared background-job shape with every row kept (and back)."""

from __future__ import annotations

import pytest
from django.db import connections
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("graph", "0001_initial")]
AFTER = [("graph", "0002_importjob_background_job")]
ALIAS = "graph_migration_check"


@pytest.fixture
def scratch_database(django_db_blocker):
    """An empty database of its own on the suite's PostgreSQL, reachable as connections[ALIAS]."""
    default = connections["default"]
    name = f"{default.settings_dict['NAME']}_graph_migration"
    with django_db_blocker.unblock():
        with default._nodb_cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cursor.execute(f'CREATE DATABASE "{name}"')
        wrapper = type(default)({**default.settings_dict, "NAME": name}, alias=ALIAS)
        connections[ALIAS] = wrapper
        try:
            yield wrapper
        finally:
            wrapper.close()
            del connections[ALIAS]
            with default._nodb_cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _migrate(database, targets):
    MigrationExecutor(database).migrate(targets)
    return MigrationExecutor(database).loader.project_state(targets).apps  # a fresh loader: the state it is in now


@pytest.mark.django_db
def test_import_jobs_keep_their_outcome_and_progress_and_go_back(scratch_database):
    apps = _migrate(scratch_database, BEFORE)
    user = apps.get_model("auth", "User").objects.using(ALIAS).create(username="admin-before-job-shape")
    version = apps.get_model("graph", "GraphVersion").objects.using(ALIAS).create(
        source="upload:generic", content_hash="h" * 64, status="published")
    jobs = apps.get_model("graph", "ImportJob").objects.using(ALIAS)
    old = {status: jobs.create(created_by=user, original_name=f"{status}.jsonl", upload=f"graph_imports/{status}.jsonl",
                               status=status, progress=progress, step=step, errors=errors, version=version_of).pk
           for status, progress, step, errors, version_of in [
               ("done", 100, "done", [], version), ("unchanged", 100, "done", [], version),
               ("failed", 0, "parse", [{"line": 2, "message": "not valid JSON"}], None),
               ("running", 40, "write", [], None), ("queued", 0, "", [], None)]}

    apps = _migrate(scratch_database, AFTER)
    jobs = {job.pk: job for job in apps.get_model("graph", "ImportJob").objects.using(ALIAS).all()}
    done, unchanged, failed, running, queued = (jobs[old[s]] for s in ("done", "unchanged", "failed", "running",
                                                                       "queued"))
    assert (done.status, done.changed, done.version_id) == ("done", True, version.pk)
    assert (unchanged.status, unchanged.changed, unchanged.version_id) == ("done", False, version.pk)
    assert (failed.status, failed.changed, failed.errors) == ("failed", False, [{"line": 2,
                                                                                  "message": "not valid JSON"}])
    assert (running.status, running.progress_done, running.progress_total) == ("running", 40, 100)
    assert (queued.status, queued.progress_done, queued.created_by_id) == ("queued", 0, user.pk)
    assert all(job.updated_at == job.created_at for job in jobs.values())

    apps = _migrate(scratch_database, BEFORE)
    back = {job.pk: job for job in apps.get_model("graph", "ImportJob").objects.using(ALIAS).all()}
    assert {status: (back[pk].status, back[pk].progress) for status, pk in old.items()} == {
        "done": ("done", 100), "unchanged": ("unchanged", 100), "failed": ("failed", 0),
        "running": ("running", 40), "queued": ("queued", 0)}
