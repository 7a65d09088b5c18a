"""releases 0002: the export fields of every release move to its ReleaseExport job (and back), and a sealed release
refuses any update once they are gone."""

from __future__ import annotations

import pytest
from django.db import Error as DatabaseError

from tests.scratch_database import SCRATCH, migrate_to

BEFORE = [("releases", "0001_initial")]
AFTER = [("releases", "0002_release_export")]




def _release(apps, user, name: str, **export) -> int:
    """A sealed release with the export fields of the old schema."""
    releases = apps.get_model("releases", "Release").objects.using(SCRATCH)
    release = releases.create(name=name, version=1, content_sha256="", created_by=user, **export)
    releases.filter(pk=release.pk).update(note_count=40, content_sha256="c" * 64)
    return release.pk


@pytest.mark.django_db
def test_exports_move_to_their_job_and_back(scratch_database):
    apps = migrate_to(scratch_database, BEFORE).loader.project_state(BEFORE).apps
    user = apps.get_model("auth", "User").objects.using(SCRATCH).create(username="curator-before-export-jobs")
    files = [{"path": "README.md", "bytes": 1, "sha256": "0" * 64}]
    done = _release(apps, user, "done", export_status="done", export_progress=100, export_folder="done-v1",
                    export_files=files, export_stats={"rows": 40}, exported_at="2026-11-30T10:00:00Z")
    failed = _release(apps, user, "failed", export_status="failed", export_progress=25, export_error="OSError: full")
    queued = _release(apps, user, "queued")

    apps = migrate_to(scratch_database, AFTER).loader.project_state(AFTER).apps
    exports = {e.release_id: e for e in apps.get_model("releases", "ReleaseExport").objects.using(SCRATCH).all()}
    assert set(exports) == {done, failed, queued}
    assert (exports[done].status, exports[done].progress_done, exports[done].progress_total) == ("done", 40, 40)
    assert (exports[done].folder, exports[done].files, exports[done].stats) == ("done-v1", files, {"rows": 40})
    assert exports[done].finished_at.isoformat() == "2026-11-30T10:00:00+00:00"
    assert (exports[failed].status, exports[failed].progress_done, exports[failed].error) == ("failed", 10,
                                                                                              "OSError: full")
    assert exports[queued].status == "queued" and exports[queued].created_by_id == user.pk
    releases = apps.get_model("releases", "Release").objects.using(SCRATCH)
    with pytest.raises(DatabaseError, match="immutable"):
        releases.filter(pk=done).update(description="changed after sealing")

    apps = migrate_to(scratch_database, BEFORE).loader.project_state(BEFORE).apps
    back = {r.pk: r for r in apps.get_model("releases", "Release").objects.using(SCRATCH).all()}
    assert (back[done].export_status, back[done].export_progress, back[done].export_files) == ("done", 100, files)
    assert (back[failed].export_status, back[failed].export_progress, back[failed].export_error) == (
        "failed", 25, "OSError: full")
    assert back[queued].export_status == "queued"
