"""Shared storage of dataset releases, LoRA adapters and uploaded import files, so web and worker hosts on different
machines see the same files: Django storages (STORAGES aliases "releases", "adapters" and "default", the storage of
every FileField: the uploads) chosen by MEDSYN_STORAGE_URL.

- unset: folders on this machine, as `make up` always had them (settings.RELEASES_DIR, var/releases,
  settings.ADAPTERS_DIR, the adapters folder of the model cache, and settings.MEDIA_ROOT, var/media);
- file:///path: a folder every host mounts (NFS, CephFS...): path/releases, path/adapters and path/uploads (the
  settings' MEDIA_ROOT);
- s3://bucket/prefix: an S3-compatible bucket (django-storages' S3 backend): prefix/releases, prefix/adapters and
  prefix/uploads;
  MEDSYN_S3_ENDPOINT_URL for MinIO, Ceph or any other S3-compatible server (path-style addressing then),
  MEDSYN_S3_REGION, and the credentials from boto3's usual places (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a
  profile, an instance role).

A folder of files is built on local disk (folder_workspace) and published whole (folder_publish): into a folder
storage by one rename, so it appears complete or not at all; into a bucket file by file. Either way its readers only
learn of it once every file is there (a release export is marked done, a fine-tuned model is registered), so nothing
half-published is ever read; what a failed publish left in a bucket is replaced by the next publish of that name.
folder_publish_addressed names a folder after the SHA-256 of its manifest, which folder_fetch_addressed checks with
every file it downloads: a worker can trust the copy in its cache (an adapter fetched by a GPU host from the bucket).

Downloads stream from the storage through the web process (file_stream), not by a redirect to a presigned URL: the
permission check stays on every request, the bucket stays private and need not be reachable from browsers (a MinIO
on the hosts' own network), and no URL that works without a login is handed out.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage
from django.utils.deconstruct import deconstructible

from medsyn_site.env import ConfigError

RELEASES = "releases"
ADAPTERS = "adapters"
UPLOADS = "default"  # Django's default storage: every FileField's (the uploaded import files)
UPLOADS_FOLDER = "uploads"  # its folder in a shared folder or bucket
MANIFEST = "MANIFEST.json"
ADDRESS_DIGITS = 16  # of the manifest's SHA-256 in an addressed folder's name
COPY_CHUNK = 1024 * 1024
S3_EXAMPLE = "s3://medsyn/prod"


class StorageUnavailable(OSError):
    """The shared storage could not be reached or refused the request (a bucket missing, credentials refused)."""


class StoredFolderInvalid(ValueError):
    """A stored folder is not what its manifest says (a file missing, changed or unlisted): it is not used."""


# --- Configuration (read by the settings) -------------------------------------------------------------------------

@dataclass(frozen=True)
class SharedStorage:
    """What MEDSYN_STORAGE_URL says: a shared folder (None: this machine's folders) and the STORAGES entries."""

    folder: Path | None
    storages: dict[str, dict[str, Any]] = field(default_factory=dict)


def _folder_storages(root: Path | None = None) -> dict[str, dict[str, Any]]:
    """Folder storages of releases and adapters; in a shared folder (root), the uploads' too (settings.MEDIA_ROOT
    is root/uploads then), so that an upload never lands on this host's disk when the share is not mounted."""
    shared = {"root": str(root)} if root else {}
    folders = [(RELEASES, "RELEASES_DIR"), (ADAPTERS, "ADAPTERS_DIR")] + ([(UPLOADS, "MEDIA_ROOT")] if root else [])
    return {alias: {"BACKEND": "medsyn_site.core.storage.FolderStorage", "OPTIONS": {"setting": setting, **shared}}
            for alias, setting in folders}


def shared_storage_from_url(variable: str, url: str, *, endpoint_url: str = "", region: str = "") -> SharedStorage:
    """MEDSYN_STORAGE_URL ("" / file:///path / s3://bucket/prefix) as the settings use it; ConfigError naming the
    variable when it is malformed."""
    if not url:
        return SharedStorage(folder=None, storages=_folder_storages())
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigError(variable, f"a folder is file:///absolute/path, got {url!r}", "file:///srv/medsyn-shared")
        folder = Path(unquote(parts.path)).resolve()
        return SharedStorage(folder=folder, storages=_folder_storages(folder))
    if parts.scheme == "s3":
        bucket, prefix = parts.netloc, parts.path.strip("/")
        if not bucket or parts.query or parts.fragment:
            raise ConfigError(variable, f"a bucket is s3://bucket/prefix, got {url!r}", S3_EXAMPLE)
        if ".." in PurePosixPath(prefix).parts:
            raise ConfigError(variable, f"the prefix may not hold '..', got {url!r}", S3_EXAMPLE)
        options: dict[str, Any] = {
            "bucket_name": bucket,
            "file_overwrite": True,
            "default_acl": None,  # the bucket's own policy: private unless its owner says otherwise
            "max_memory_size": 8 * 1024 * 1024,  # storage.open spools larger objects to a temporary file
        }
        if endpoint_url:
            # MinIO, Ceph and most S3-compatible servers answer on one host: the bucket goes in the path.
            options.update(endpoint_url=endpoint_url, addressing_style="path")
        if region:
            options["region_name"] = region
        return SharedStorage(folder=None, storages={
            alias: {"BACKEND": "storages.backends.s3.S3Storage",
                    "OPTIONS": {**options, "location": posixpath.join(prefix, folder) if prefix else folder}}
            for alias, folder in ((RELEASES, RELEASES), (ADAPTERS, ADAPTERS), (UPLOADS, UPLOADS_FOLDER))})
    raise ConfigError(variable, f"expected file:///path or s3://bucket/prefix, got {url!r}", S3_EXAMPLE)


@deconstructible(path="medsyn_site.core.storage.FolderStorage")
class FolderStorage(FileSystemStorage):
    """A folder named by a setting, read at every use (not once per process), so that a test pointing
    settings.RELEASES_DIR elsewhere moves the storage with it. root: the shared folder it lies in (file:///path),
    which must exist before anything is written (folder_location)."""

    def __init__(self, setting: str, root: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.setting, self.root = setting, root

    @property
    def base_location(self) -> str:
        return str(self._location if self._location is not None else getattr(settings, self.setting))

    @property
    def location(self) -> str:
        return os.path.abspath(self.base_location)

    def _save(self, name: str, content: File) -> str:
        folder_location(self)  # a shared folder that is not mounted: StorageUnavailable, nothing written here
        return super()._save(name, content)


def storage_for(alias: str) -> Storage:
    from django.core.files.storage import storages

    return storages[alias]


def releases_storage() -> Storage:
    return storage_for(RELEASES)


def adapters_storage() -> Storage:
    return storage_for(ADAPTERS)


def is_folder(storage: Storage) -> bool:
    return isinstance(storage, FileSystemStorage)


def _object_key(storage: Storage, name: str) -> str:
    location = getattr(storage, "location", "")
    return posixpath.join(location, name) if location and name else location or name


def storage_where(storage: Storage, name: str = "") -> str:
    """Where `name` is, for people and logs: a path, or s3://bucket/key."""
    if is_folder(storage):
        return storage.path(name) if name else storage.location
    bucket = getattr(storage, "bucket_name", "")
    return f"s3://{bucket}/{_object_key(storage, name)}" if bucket else name


@contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """botocore's errors as FileNotFoundError (no such object) or StorageUnavailable (anything else), `what` saying
    what was being done; a folder storage's own errors pass unchanged."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            raise FileNotFoundError(f"{what}: not in the shared storage") from error
        raise StorageUnavailable(f"{what}: {error}") from error
    except BotoCoreError as error:
        raise StorageUnavailable(f"{what}: {error}") from error


def folder_location(storage: FileSystemStorage) -> Path:
    """A folder storage's folder, made when missing; but the root of a shared folder (file:///path) must exist: a
    file system that is not mounted must not quietly become a folder on this host's own disk."""
    root = getattr(storage, "root", None)
    if root and not Path(root).is_dir():
        raise StorageUnavailable(f"the shared folder {root} does not exist (not mounted?)")
    location = Path(storage.location)
    location.mkdir(parents=True, exist_ok=True)
    return location


def storage_check(storage: Storage) -> str:
    """Where the storage is, after checking it answers (a folder: it exists or can be made in its parent; a bucket:
    it exists and these credentials may use it); StorageUnavailable when it does not (medsyn_site.health)."""
    if is_folder(storage):
        return str(folder_location(storage))
    where = storage_where(storage)
    try:
        with storage_errors(where):
            if hasattr(storage, "bucket_name"):  # django-storages' S3Storage: one request, however full the bucket
                storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)
            else:
                storage.listdir("")
    except FileNotFoundError as error:
        raise StorageUnavailable(f"{where}: the bucket does not exist") from error
    return where


# --- Files and folders --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredFile:
    path: str  # relative to its folder, posix
    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_entry(root: Path, path: str) -> StoredFile:
    with (root / path).open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
        size = os.fstat(handle.fileno()).st_size
    return StoredFile(path=path, bytes=size, sha256=digest)


def folder_entries(folder: Path) -> list[StoredFile]:
    """Every file under folder (hidden ones too), by path."""
    paths = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    return [file_entry(folder, path) for path in paths]


def _safe_relative(path: str) -> str:
    parts = PurePosixPath(path).parts
    if not path or PurePosixPath(path).is_absolute() or ".." in parts or "." in parts:
        raise StoredFolderInvalid(f"{path!r} is not a path inside a folder")
    return path


def folder_swap(work: Path, folder: Path) -> None:
    """Rename `work` to `folder` (same file system), replacing a folder already there: os.replace cannot replace a
    non-empty directory, so an old one is moved aside first and removed after."""
    if folder.exists():
        aside = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:12]}"
        os.replace(folder, aside)
        try:
            os.replace(work, folder)
        except BaseException:
            os.replace(aside, folder)
            raise
        shutil.rmtree(aside)
    else:
        os.replace(work, folder)
    directory = os.open(folder.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@contextmanager
def folder_workspace(storage: Storage) -> Iterator[Path]:
    """An empty local folder to build a folder in before folder_publish, removed on exit: for a folder storage a
    hidden one inside it (the same file system, so publishing is a rename), else a temporary one under VAR_DIR
    (exports can be larger than a tmpfs /tmp)."""
    if is_folder(storage):
        work = Path(tempfile.mkdtemp(prefix=".work-", dir=folder_location(storage)))
    else:
        parent = Path(settings.VAR_DIR) / "tmp"
        parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="storage-", dir=parent))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def folder_publish(storage: Storage, local: Path, name: str, paths: list[str], *,
                   previous: dict[str, Path] | None = None) -> None:
    """Publish the files `paths` of the local folder as folder `name` of the storage.

    A folder storage gets the whole local folder by one rename when it lies inside the storage (folder_workspace),
    else a copy renamed into place; `name` is replaced whole, so it is there complete or not at all. A bucket gets the
    files one by one, in the order of `paths`, each object replaced whole; when one fails the error is raised, and the
    files already uploaded are put back as they were when `previous` has them (path -> a local copy of the stored file
    before). Otherwise they stay: nothing refers to them until the caller records the publish (they are not deleted,
    which could delete the same files of a concurrent publish of `name` that succeeded), and the next publish of
    `name` replaces them.
    """
    for path in paths:
        _safe_relative(path)
    if is_folder(storage):
        target = folder_location(storage) / name
        if Path(local).resolve().is_relative_to(Path(storage.location).resolve()):
            folder_swap(local, target)
            return
        work = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:12]}"
        try:
            shutil.copytree(local, work)
            folder_swap(work, target)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return
    done: list[str] = []
    try:
        for path in paths:
            _file_put(storage, Path(local) / path, f"{name}/{path}")
            done.append(path)
    except BaseException:
        for path in done:
            if previous and path in previous:
                try:
                    _file_put(storage, previous[path], f"{name}/{path}")
                except Exception:  # noqa: BLE001, S110 - the storage is failing: the first error is the one to raise
                    pass
        raise


def _file_put(storage: Storage, source: Path, name: str) -> None:
    with storage_errors(f"could not store {storage_where(storage, name)}"), source.open("rb") as handle:
        stored = storage.save(name, File(handle, name=source.name))
    if stored != name:
        raise StorageUnavailable(f"{storage_where(storage, name)}: the storage kept it as {stored!r} instead")


def file_stream(storage: Storage, name: str) -> BinaryIO:
    """A binary stream of a stored file, read as it is sent: a file opened on disk, or the body of an S3 GET (not
    downloaded whole first, as storage.open would). FileNotFoundError when it is not there."""
    if is_folder(storage):
        return Path(storage.path(name)).open("rb")
    with storage_errors(f"could not read {storage_where(storage, name)}"):
        if hasattr(storage, "bucket"):  # django-storages' S3Storage
            return storage.bucket.Object(_object_key(storage, name)).get()["Body"]
        return storage.open(name, "rb")


@contextmanager
def file_local(storage: Storage, name: str) -> Iterator[Path]:
    """A stored file as a local path to read (an import reads its upload so): the file itself in a folder storage,
    else a temporary copy downloaded from the bucket, deleted when the block ends. FileNotFoundError when it is not
    stored, StorageUnavailable when the storage cannot be reached."""
    if is_folder(storage):
        path = Path(storage.path(name))
        if not path.is_file():
            raise FileNotFoundError(f"{storage_where(storage, name)}: no such file")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="medsyn-stored-") as work:
        target = Path(work) / PurePosixPath(name).name
        file_fetch(storage, name, target)
        yield target


def file_fetch(storage: Storage, name: str, target: Path) -> StoredFile:
    """Copy a stored file to target (a new local file), returning its size and SHA-256."""
    digest, size = hashlib.sha256(), 0
    target.parent.mkdir(parents=True, exist_ok=True)
    stream = file_stream(storage, name)
    try:
        with target.open("wb") as out, storage_errors(f"could not read {storage_where(storage, name)}"):
            while chunk := stream.read(COPY_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
    finally:
        stream.close()
    return StoredFile(path=target.name, bytes=size, sha256=digest.hexdigest())


def folder_fetch(storage: Storage, name: str, files: list[StoredFile], target: Path) -> None:
    """Download folder `name` (the files listed) to the local folder target, each checked against its size and
    SHA-256; target appears only complete and checked (several processes may fetch at once: the first rename wins,
    the others keep it). StoredFolderInvalid when a file differs, FileNotFoundError when one is missing."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f".{target.name}.fetch-{uuid.uuid4().hex[:12]}"
    try:
        for entry in files:
            got = file_fetch(storage, f"{name}/{_safe_relative(entry.path)}", work / entry.path)
            if (got.bytes, got.sha256) != (entry.bytes, entry.sha256):
                raise StoredFolderInvalid(f"{storage_where(storage, name)}/{entry.path}: {got.bytes} bytes with "
                                          f"SHA-256 {got.sha256}, the manifest says {entry.bytes} / {entry.sha256}")
        work.mkdir(exist_ok=True)
        try:
            os.rename(work, target)
        except OSError:
            if not target.is_dir():  # not another process's finished copy
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def folder_edit(storage: Storage, name: str, paths: list[str], changed: list[str]) -> Iterator[Path]:
    """A local folder holding stored folder `name` (its files `paths`) to change some files of: a folder storage's
    own folder (the caller replaces each file by an atomic rename), else a downloaded copy whose `changed` files are
    uploaded back on a clean exit, all of them or none (those already replaced are put back as they were)."""
    if is_folder(storage):
        yield Path(storage.path(name))
        return
    with folder_workspace(storage) as work:
        local, before = work / "folder", work / "before"
        for path in paths:
            file_fetch(storage, f"{name}/{_safe_relative(path)}", local / path)
        previous = {}
        for path in changed:
            previous[path] = before / path
            previous[path].parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local / path, previous[path])
        yield local
        folder_publish(storage, local, name, changed, previous=previous)


# --- Folders named by their contents ------------------------------------------------------------------------------

def manifest_bytes(files: list[StoredFile]) -> bytes:
    return json.dumps({"files": [entry.as_dict() for entry in files]}, sort_keys=True, indent=1).encode()


def manifest_read(data: bytes) -> list[StoredFile]:
    try:
        entries = json.loads(data)["files"]
        return [StoredFile(path=_safe_relative(str(e["path"])), bytes=int(e["bytes"]), sha256=str(e["sha256"]))
                for e in entries]
    except (ValueError, KeyError, TypeError) as error:
        raise StoredFolderInvalid(f"{MANIFEST} is not a manifest: {error}") from error


def folder_publish_addressed(storage: Storage, local: Path, stem: str) -> str:
    """Publish a local folder under "<stem>-<the first digits of its manifest's SHA-256>", the manifest (every
    file's path, size and SHA-256) last; returns that name. The same files always get the same name, so a name
    stands for one content for ever, and publishing it again is harmless."""
    files = [entry for entry in folder_entries(local) if entry.path != MANIFEST]
    manifest = manifest_bytes(files)
    key = f"{stem}-{hashlib.sha256(manifest).hexdigest()[:ADDRESS_DIGITS]}"
    with folder_workspace(storage) as work:
        folder = work / key
        shutil.copytree(local, folder)
        (folder / MANIFEST).write_bytes(manifest)
        folder_publish(storage, folder, key, [entry.path for entry in files] + [MANIFEST])
    return key


def folder_fetch_addressed(storage: Storage, key: str, target: Path) -> None:
    """Download folder `key` (published by folder_publish_addressed) to target, checking its manifest against the
    name and every file against the manifest. FileNotFoundError when it was never (completely) published,
    StoredFolderInvalid when anything differs."""
    stem, _, address = key.rpartition("-")
    if not stem or len(address) != ADDRESS_DIGITS:
        raise StoredFolderInvalid(f"{key!r} is not the name of a published folder (<name>-<{ADDRESS_DIGITS} digits>)")
    with folder_workspace(storage) as work:
        manifest = file_fetch(storage, f"{key}/{MANIFEST}", work / MANIFEST)
        if not manifest.sha256.startswith(address):
            raise StoredFolderInvalid(f"{storage_where(storage, key)}: its {MANIFEST} is not the one it was "
                                      "published with")
        files = manifest_read((work / MANIFEST).read_bytes())
    folder_fetch(storage, key, [*files, StoredFile(path=MANIFEST, bytes=manifest.bytes, sha256=manifest.sha256)],
                 target)
