"""The lake: an object store of raw uploads, curated Parquet, quarantine and logs.

`Lake` is the interface the assets use; `LocalLake` keeps objects as files under
`$FINBI_HOME/lake` (keys are relative paths). The S3 implementation lives in `s3_lake.py`.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg


@dataclass(frozen=True, order=True)
class LakeObject:
    """One stored object. `version` changes whenever the content is replaced."""

    key: str
    version: str
    size: int
    last_modified: float  # epoch seconds: when it was last stored or replaced


class Lake(dg.ConfigurableResource, ABC):
    """Object-store operations the pipeline needs, identical for a folder and for S3."""

    @abstractmethod
    def list_objects(
        self, prefix: str, start_after: str | None = None, page_size: int = 1000
    ) -> Iterator[LakeObject]:
        """Objects under `prefix` in key order, after `start_after`, fetched a page at a time."""

    @abstractmethod
    def head(self, key: str) -> LakeObject | None:
        """The object at `key`, or None when there is none."""

    @abstractmethod
    def read_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's content, or its first `max_bytes`."""

    def iter_bytes(self, key: str, chunk_size: int = 1 << 22) -> Iterator[bytes]:
        """The object's content in chunks, so large objects never sit in memory whole."""
        yield self.read_bytes(key)

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Store `data` at `key` atomically: readers see the old or the new object, whole."""

    @abstractmethod
    def upload_file(self, path: Path, key: str) -> LakeObject:
        """Store a local file at `key` atomically."""

    @abstractmethod
    def delete(self, keys: list[str]) -> None:
        """Delete objects; keys that do not exist are ignored."""

    @abstractmethod
    def move(self, source_key: str, target_key: str) -> None:
        """Move an object; the target is replaced atomically."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where a query engine reads or writes `key` (a path or an s3:// URI)."""

    @abstractmethod
    def list_children(self, prefix: str) -> tuple[list[str], list[str]]:
        """The folders and the objects directly under `prefix` (which ends with "/"), as
        sorted keys (folders with a trailing "/"); one call, however many objects below."""

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under `prefix`."""
        self.delete([obj.key for obj in self.list_objects(prefix)])


@functools.cache
def _lake_folder(home: str) -> Path:
    return Path(home).resolve() / "lake"


class LocalLake(Lake):
    """The lake as a folder: `<home>/lake/<key>`."""

    home: str

    @property
    def root(self) -> Path:
        return _lake_folder(self.home)

    def _path(self, key: str) -> Path:
        # Lexically, not with resolve(): that stats every folder of the path, several times
        # per object a small upload touches (305 UCI files: 15.8 s -> 15.2 s).
        root = self.root
        path = Path(os.path.normpath(root / key))
        if not path.is_relative_to(root):
            raise ValueError(f"lake key {key!r} escapes the lake folder")
        return path

    def list_objects(
        self, prefix: str, start_after: str | None = None, page_size: int = 1000
    ) -> Iterator[LakeObject]:
        # A folder has no pages; keys come sorted like S3's so cursors behave the same.
        base = self._path(prefix) if prefix else self.root
        search = base if base.is_dir() else base.parent
        root = str(self.root) + os.sep
        found = []
        for entry in _walk_files(str(search)):
            key = entry.path[len(root) :].replace(os.sep, "/")
            if not key.startswith(prefix) or (start_after is not None and key <= start_after):
                continue
            try:
                key.encode()  # a key is text, as on S3
                stat = entry.stat()
            except FileNotFoundError:  # deleted while we listed
                continue
            except (UnicodeEncodeError, OSError) as exc:
                # One such file must not stop the listing, and with it every upload.
                _not_listed(key, exc)
                continue
            found.append(_object(key, stat))
        yield from sorted(found)

    def list_children(self, prefix: str) -> tuple[list[str], list[str]]:
        folders, objects = [], []
        try:
            entries = list(os.scandir(self._path(prefix)))
        except FileNotFoundError:
            return [], []
        for entry in entries:
            if entry.name.startswith("."):  # as list_objects: hidden names are no objects
                continue
            try:
                entry.name.encode()
            except UnicodeEncodeError as exc:
                _not_listed(f"{prefix}{entry.name}", exc)
                continue
            if _is_dir(entry):
                folders.append(f"{prefix}{entry.name}/")
            else:
                objects.append(f"{prefix}{entry.name}")
        return sorted(folders), sorted(objects)

    def head(self, key: str) -> LakeObject | None:
        try:
            return _object(key, self._path(key).stat())
        except FileNotFoundError:
            return None

    def read_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        with self._path(key).open("rb") as handle:
            return handle.read(-1 if max_bytes is None else max_bytes)

    def iter_bytes(self, key: str, chunk_size: int = 1 << 22) -> Iterator[bytes]:
        with self._path(key).open("rb") as handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def write_bytes(self, key: str, data: bytes) -> None:
        with self._atomic_target(key) as tmp:
            tmp.write_bytes(data)

    def upload_file(self, path: Path, key: str) -> LakeObject:
        with self._atomic_target(key) as tmp:
            shutil.copyfile(path, tmp)
        obj = self.head(key)
        assert obj is not None
        return obj

    def delete(self, keys: list[str]) -> None:
        # Emptied folders stay: removing them would race with a concurrent writer that has
        # just created one (uploads are staged in parallel). Listings skip them anyway.
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def move(self, source_key: str, target_key: str) -> None:
        source, target = self._path(source_key), self._path(target_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        # Moves empty the temporary folders a partitioned write fills: drop those (only
        # one writer ever uses such a folder, so no concurrent write can race with this).
        for parent in source.parents:
            if parent == self.root or not parent.is_relative_to(self.root):
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def local_dir(self, prefix: str) -> Path:
        """The folder for `prefix` (local only: DuckDB writes partitioned Parquet into it)."""
        return self._path(prefix)

    def _atomic_target(self, key: str):
        return _AtomicFile(self._path(key))


def _walk_files(folder: str) -> Iterator[os.DirEntry]:
    """Files below `folder`, skipping hidden names (in-flight temporaries) and links to
    folders (which may loop); a link to a file is a file."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    except OSError as exc:  # a folder we may not read
        _not_listed(folder, exc)
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_files(entry.path)
        elif not _is_dir(entry):
            yield entry


def _is_dir(entry: os.DirEntry) -> bool:
    """Whether an entry is (or links to) a folder; a link that cannot be followed (one that
    loops) is not: its stat then says why it is no object."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _not_listed(name: str, exc: Exception) -> None:
    """Say which file a listing leaves out, and why (the sensor's tick log, `finbi run`)."""
    printable = name.encode(errors="surrogateescape").decode(errors="backslashreplace")
    if isinstance(exc, UnicodeEncodeError):
        cause = "its name is not UTF-8 text, which lake keys (as S3's) must be: rename it"
    else:
        cause = f"{exc.strerror or exc}"
    dg.get_dagster_logger().warning(f"{printable}: not listed in the lake, never ingested: {cause}")


def _object(key: str, stat: os.stat_result) -> LakeObject:
    return LakeObject(
        key=key,
        version=f"{stat.st_mtime_ns:x}-{stat.st_size:x}",
        size=stat.st_size,
        last_modified=_changed_ns(stat) / 1e9,
    )


def _changed_ns(stat: os.stat_result) -> int:
    """When a file last changed here, as S3's LastModified says when an object was stored.

    Not its mtime alone: a move, or a copy that keeps times (`cp -p`, `rsync -a`, tar,
    unzip), lands a file with an old mtime, which the sensor's high-water mark would pass
    over. Its ctime is set to now by any of those and by every write, and nothing sets it
    back."""
    return max(stat.st_mtime_ns, stat.st_ctime_ns)


class _AtomicFile:
    """Yields a hidden temporary path beside `target`; renames it into place on success."""

    def __init__(self, target: Path):
        self.target = target

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        # A shortened prefix: the random suffix must not take a long name past the file
        # system's 255 bytes.
        prefix = f".{self.target.name.encode()[:100].decode(errors='ignore')}."
        fd, name = tempfile.mkstemp(dir=self.target.parent, prefix=prefix)
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.replace(self.tmp, self.target)
        else:
            self.tmp.unlink(missing_ok=True)
