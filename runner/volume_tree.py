"""A volume's files on disk: content-addressed blobs, manifests, and containers' working copies.

A volume version is a manifest: ``{path: entry}`` where an entry is a file (``hash``, ``size``,
``mtime``), a directory or a symbolic link (``target``, relative and inside the volume). File
contents live once each in the volume's blob folder, named by their xxh3-128 hash. Blobs and
manifests are written to a temporary name and renamed into place, so that a failure (a full
disk) leaves every committed version intact.

A working copy is a folder a container sees at its mount path. The runner writes into it and
scans it through directory descriptors opened without following links: code in the container
(which runs as whatever user the runner does) cannot redirect the runner's writes outside it by
swapping a folder for a link. Everything here is blocking and runs in the runner's executors.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import xxhash

from nbremote.wire.http import CONTENT_HASH

Entry = dict[str, Any]
Manifest = dict[str, Entry]
Signature = tuple[int, int, int]  # size, mtime_ns, inode: a working-copy file left untouched
Local = dict[str, tuple[Entry, Signature | None]]  # what a working copy held at its last sync
CHUNK = 1 << 20
GC_AGE = 3600.0  # seconds an unreferenced blob is kept
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class VolumePathError(ValueError):
    """A path that is not inside the volume (``..``, a link pointing out, a special file)."""


def clean_path(path: str) -> str:
    """A volume path made canonical: relative to the volume's root, ``""`` for the root.

    A leading ``/`` names the volume's root (as in Modal: ``vol.listdir("/")``).

    Raises:
        VolumePathError: it has a ``..`` component or a NUL byte.
    """
    if "\0" in path:
        raise VolumePathError(f"{path!r}: a volume path cannot hold a NUL byte")
    parts = [part for part in path.replace("\\", "/").split("/") if part not in ("", ".")]
    if ".." in parts:
        raise VolumePathError(f"{path!r}: '..' would leave the volume; use a path inside it")
    return "/".join(parts)


def _ancestors(path: str) -> Iterator[str]:
    parts = path.split("/")
    for end in range(1, len(parts)):
        yield "/".join(parts[:end])


def _inside(path: str, root: str) -> bool:
    return not root or path == root or path.startswith(root + "/")


def check_link(path: str, target: str) -> None:
    """Refuse a link that points outside the volume (absolutely, or by climbing out)."""
    if target.startswith("/"):
        raise VolumePathError(
            f"{path!r} links to the absolute path {target!r}; links in a volume must be relative "
            "and stay inside it"
        )
    depth = path.count("/")
    for part in target.split("/"):
        depth += -1 if part == ".." else 0 if part in ("", ".") else 1
        if depth < 0:
            raise VolumePathError(f"{path!r} links to {target!r}, outside the volume")


# -- manifests --------------------------------------------------------------------------------


def apply(latest: Manifest, changes: Manifest, removed: list[str], now: float) -> Manifest:
    """A new version: ``latest`` with ``changes`` set and ``removed`` gone (the last writer
    wins, per path); parent directories are implied, a file replacing a folder drops what the
    folder held."""
    result = dict(latest)
    for path in removed:
        for key in [key for key in result if _inside(key, path)]:
            del result[key]
    for path, entry in changes.items():
        if entry["type"] != "dir":
            for key in [key for key in result if key.startswith(path + "/")]:
                del result[key]
        result[path] = {**entry, "mtime": entry.get("mtime", now)}
        for parent in _ancestors(path):
            if result.get(parent, {}).get("type") != "dir":
                result[parent] = {"type": "dir", "mtime": now}
    return result


def listing(manifest: Manifest, path: str, recursive: bool) -> list[tuple[str, Entry]]:
    """Entries under ``path`` (a folder: its children; a file: itself), sorted.

    Raises:
        FileNotFoundError: nothing is at ``path``.
    """
    if path and path not in manifest:
        raise FileNotFoundError(path)
    if path and manifest[path]["type"] != "dir":
        return [(path, manifest[path])]
    prefix = f"{path}/" if path else ""
    return sorted(
        (key, entry)
        for key, entry in manifest.items()
        if key.startswith(prefix) and (recursive or "/" not in key[len(prefix) :])
    )


def write_json(path: Path, document: Any) -> None:
    """Write a JSON file atomically (temporary name, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("w") as file:
            json.dump(document, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- blobs --------------------------------------------------------------------------------------


class BlobWriter:
    """Receives a file's bytes (hashing them on the way) and files them under their hash."""

    def __init__(self, blobs: Blobs) -> None:
        self._blobs = blobs
        self._tmp = blobs.root / f".{uuid.uuid4().hex}.tmp"
        self._file = self._tmp.open("wb")
        self._hash = xxhash.xxh3_128()
        self.size = 0

    def write(self, chunk: bytes | memoryview) -> None:
        """Append bytes."""
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def finish(self) -> str:
        """Make the blob durable and visible; its hash."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            digest = self._hash.hexdigest()
            target = self._blobs.path(digest)
            if target.exists():
                self._tmp.unlink()
                os.utime(target)  # in use again: fresh for `collect`
            else:
                target.parent.mkdir(exist_ok=True)
                os.replace(self._tmp, target)
            return digest
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop what was written."""
        with contextlib.suppress(OSError):  # flushing what is buffered fails on a full disk
            self._file.close()
        self._tmp.unlink(missing_ok=True)


class Blobs:
    """A volume's file contents, one file per distinct content."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        """Where the blob with this hash lives.

        Raises:
            VolumePathError: ``digest`` is not a blob hash (it would name another file).
        """
        if not CONTENT_HASH.fullmatch(digest):
            raise VolumePathError(f"{digest[:80]!r} is not a blob hash (32 lowercase hex digits)")
        return self.root / digest[:2] / digest

    def writer(self) -> BlobWriter:
        """A writer for a new blob."""
        return BlobWriter(self)

    def store_fd(self, fd: int) -> tuple[str, int]:
        """Copy an open file into a blob; its hash and size."""
        writer = self.writer()
        try:
            while chunk := os.read(fd, CHUNK):
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        return writer.finish(), writer.size

    def collect(self, keep: set[str]) -> None:
        """Remove blobs that no kept version refers to and that were not written or reused
        for an hour (a commit in progress, or an upload not yet committed, may need them)."""
        now = time.time()
        for folder in self.root.iterdir():
            for blob in folder.iterdir() if folder.is_dir() else [folder]:
                with contextlib.suppress(FileNotFoundError):
                    if blob.name not in keep and now - blob.stat().st_mtime > GC_AGE:
                        blob.unlink()


# -- working copies -----------------------------------------------------------------------------


def _signature(st: os.stat_result) -> Signature:
    return st.st_size, st.st_mtime_ns, st.st_ino


def scan(root: Path, base: Local, blobs: Blobs | None, refused: list[str] | None = None) -> Local:
    """What a working copy holds now, as entries; files whose signature changed since ``base``
    are stored as blobs (or, without ``blobs``, marked with ``hash: None``: changed, unread).

    Args:
        refused: given, entries the volume cannot hold are left out and why is added to it
            (a container that stops must still be able to commit the rest and go).

    Raises:
        VolumePathError: a link points outside the volume, or there is a special file (unless
            ``refused`` is given).
    """
    found: Local = {}
    for folder, dirs, files, dir_fd in os.fwalk(root, follow_symlinks=False):
        relative = os.path.relpath(folder, root)
        relative = "" if relative == "." else relative
        for name in [*dirs, *files]:
            path = f"{relative}/{name}" if relative else name
            try:
                found[path] = _scan_entry(path, name, dir_fd, base, blobs)
            except VolumePathError as exc:
                if refused is None:
                    raise
                refused.append(str(exc))
    return found


def _scan_entry(
    path: str, name: str, dir_fd: int, base: Local, blobs: Blobs | None
) -> tuple[Entry, Signature | None]:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        return {"type": "dir"}, None
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(name, dir_fd=dir_fd)
        check_link(path, target)
        return {"type": "link", "target": target}, None
    if stat.S_ISREG(st.st_mode):
        return _file_entry(path, name, dir_fd, st, base, blobs)
    raise VolumePathError(f"{path!r} is not a file, folder or link; remove it")


def _file_entry(
    path: str, name: str, dir_fd: int, st: os.stat_result, base: Local, blobs: Blobs | None
) -> tuple[Entry, Signature | None]:
    known = base.get(path)
    if known is not None and known[1] == _signature(st):
        return known
    if blobs is None:
        return {"type": "file", "hash": None, "size": st.st_size}, _signature(st)
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        digest, size = blobs.store_fd(fd)
        return {"type": "file", "hash": digest, "size": size}, _signature(os.fstat(fd))
    finally:
        os.close(fd)


def _same(a: Entry | None, b: Entry | None) -> bool:
    if a is None or b is None:
        return a is b
    keys = ("type", "hash", "target")
    return all(a.get(key) == b.get(key) for key in keys)


def diff(base: Local, now: Local) -> tuple[Manifest, list[str]]:
    """What changed from ``base`` to ``now``: entries set, paths removed."""
    changes = {
        path: entry for path, (entry, _) in now.items() if not _same(entry, _entry(base, path))
    }
    removed = [path for path in base if path not in now]
    return changes, removed


def _entry(local: Local, path: str) -> Entry | None:
    item = local.get(path)
    return item[0] if item is not None else None


@contextlib.contextmanager
def _folder(root_fd: int, path: str) -> Iterator[int]:
    """A descriptor of the folder ``path`` under ``root_fd``, created if missing, reached one
    component at a time without following links."""
    fd = os.dup(root_fd)
    try:
        for part in [part for part in path.split("/") if part]:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except NotADirectoryError:
                os.unlink(part, dir_fd=fd)  # a file or link where a folder now is
                os.mkdir(part, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _remove(root_fd: int, path: str) -> None:
    parent, _, name = path.rpartition("/")
    with _folder(root_fd, parent) as fd:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=fd)
            return
        with _folder(fd, name) as child:
            for entry in os.listdir(child):
                _remove(child, entry)
        os.rmdir(name, dir_fd=fd)


def _copy(source: int, out: int, size: int) -> None:
    offset = 0
    while offset < size:
        sent = os.sendfile(out, source, offset, size - offset)
        if not sent:
            raise OSError(f"blob ended after {offset} of {size} bytes")
        offset += sent


def _place(root_fd: int, path: str, entry: Entry, blobs: Blobs) -> Signature | None:
    """Write one entry into a working copy; a file appears whole, by rename."""
    if entry["type"] == "dir":
        with _folder(root_fd, path):
            return None
    parent, _, name = path.rpartition("/")
    with _folder(root_fd, parent) as fd:
        tmp = f".nbremote-{uuid.uuid4().hex}.tmp"
        if entry["type"] == "link":
            os.symlink(entry["target"], tmp, dir_fd=fd)
            signature = None
        else:
            out = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=fd
            )
            try:
                with blobs.path(entry["hash"]).open("rb") as source:
                    _copy(source.fileno(), out, entry["size"])
                signature = _signature(os.fstat(out))
            finally:
                os.close(out)
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                _remove(fd, name)
        os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        return signature


def sync(root: Path, local: Local, target: Manifest, blobs: Blobs, keep: set[str]) -> Local:
    """Bring a working copy from ``local`` to ``target``, leaving the paths in ``keep`` (changed
    in the container, not yet committed) as they are; the new ``local``."""
    result = {path: item for path, item in local.items() if path in keep}
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        stale = [p for p in local if p not in target and p not in keep]
        for path in sorted(stale, key=lambda p: -p.count("/")):
            if not any(_inside(k, path) for k in keep):
                _remove(root_fd, path)
        for path in sorted(target, key=lambda p: p.count("/")):
            if path in keep:
                continue
            entry = target[path]
            if path in local and _same(local[path][0], entry):
                result[path] = local[path]
                continue
            result[path] = (entry, _place(root_fd, path, entry, blobs))
    finally:
        os.close(root_fd)
    return result
