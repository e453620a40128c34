"""Named volumes: committed versions of a folder tree, and the working copies containers mount.

Each volume lives in ``volumes/<id>/`` under the runner's data dir: ``blobs/`` (contents by
hash), ``manifests/<version>.json`` (one per committed version; the highest is the current one,
the last few are kept). Its name, id and creation time are rows of the SQLite state.

A container mounting a volume gets a working copy of the current version, in
``volumes/checkouts/<id>/``; nothing it writes is seen elsewhere until it commits. A commit
publishes what the container added, changed or removed since its copy was last synced, on top of
the current version: concurrent commits merge, and for a path both changed, the last commit wins.
A reload brings the copy up to the current version, keeping the container's uncommitted changes.

Requests from workers (``op`` "volume"): lookup {name, create} · commit {name, checkouts}
· reload {name, checkouts}; each answered with a ``done`` frame.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import re
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbremote.wire.codec import Header
from nbremote.wire.http import CommitVolume, DescribeVolume, VolumeEntry
from nbremote.wire.ops import Op

from .errors import Refusal, error_done
from .state import State
from .volume_tree import (
    Blobs,
    Local,
    Manifest,
    VolumePathError,
    apply,
    clean_path,
    diff,
    listing,
    scan,
    sync,
    write_json,
)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
KEEP_VERSIONS = 3
log = logging.getLogger(__name__)


class VolumeError(Refusal):
    """A volume request the runner refuses; ``kind`` is the API error type."""


@dataclass
class Volume:
    """One volume: where it lives and its current version."""

    name: str
    id: str
    created_at: float
    root: Path
    version: int = 0
    manifest: Manifest = field(default_factory=dict)
    modified_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one commit at a time

    @property
    def blobs(self) -> Blobs:
        """The volume's contents."""
        return Blobs(self.root / "blobs")

    def describe(self) -> DescribeVolume:
        """The volume as the API shows it."""
        return DescribeVolume(
            name=self.name,
            created_at=self.created_at,
            modified_at=self.modified_at,
            version=self.version,
            files=sum(entry["type"] == "file" for entry in self.manifest.values()),
            size=sum(entry.get("size", 0) for entry in self.manifest.values()),
        )

    def entries(self, path: str, recursive: bool) -> list[VolumeEntry]:
        """What ``listdir`` shows under ``path``.

        Raises:
            VolumeError: nothing is there, or the path leaves the volume.
        """
        try:
            found = listing(self.manifest, _clean(path), recursive)
        except FileNotFoundError:
            raise VolumeError(
                "NotFound", f"no file or folder {path!r} in volume {self.name!r}"
            ) from None
        kinds = {"file": "file", "dir": "directory", "link": "link"}
        return [
            VolumeEntry(path=key, type=kinds[e["type"]], size=e.get("size", 0), mtime=e["mtime"])
            for key, e in found
        ]

    def file(self, path: str) -> tuple[Path, int]:
        """The blob holding a file's content, and its size.

        Raises:
            VolumeError: there is no file at ``path``.
        """
        entry = self.manifest.get(_clean(path))
        if entry is None or entry["type"] != "file":
            what = "a folder" if entry else "not there"
            raise VolumeError(
                "NotFound", f"{path!r} is {what}: no file to read in volume {self.name!r}"
            )
        return self.blobs.path(entry["hash"]), entry["size"]


@dataclass
class Checkout:
    """A container's working copy of a volume."""

    id: str
    volume: Volume
    root: Path
    local: Local
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _load_latest(root: Path) -> tuple[int, Manifest, float]:
    manifests = sorted((root / "manifests").glob("*.json"))
    if not manifests:
        return 0, {}, 0.0
    document = json.loads(manifests[-1].read_text())
    return document["version"], document["entries"], document["committed_at"]


class Volumes:
    """Every volume of a runner, and the working copies of running containers."""

    def __init__(self, state: State, root: Path, checkouts: Path | None = None) -> None:
        self._state = state
        self.root = root
        self._checkouts = checkouts or root / "checkouts"  # a cluster's: where its nodes see
        self.volumes: dict[str, Volume] = {}
        self.checkouts: dict[str, Checkout] = {}
        self._files = ThreadPoolExecutor(4, thread_name_prefix="nbremote-volumes")

    async def run(self, fn: Any, *args: Any) -> Any:
        """Run blocking file work off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._files, fn, *args)

    async def load(self) -> None:
        """Read the volumes back; drop working copies left by containers of a previous run."""
        await self.run(self._reset_checkouts)
        for name, volume_id, created_at in await self._state.query(
            "SELECT name, id, created_at FROM volumes"
        ):
            volume = Volume(name, volume_id, created_at, self.root / volume_id)
            volume.version, volume.manifest, volume.modified_at = await self.run(
                _load_latest, volume.root
            )
            volume.modified_at = volume.modified_at or created_at
            self.volumes[name] = volume

    def _reset_checkouts(self) -> None:
        shutil.rmtree(self._checkouts, ignore_errors=True)
        self._checkouts.mkdir(parents=True, exist_ok=True)

    # -- the registry ------------------------------------------------------------------------------

    def missing(self, name: str) -> str:
        """The message for a volume that does not exist, listing those that do."""
        names = ", ".join(sorted(self.volumes)) or "none"
        return (
            f"no volume named {name!r} (there are: {names}); create it with "
            f"Volume.from_name({name!r}, create_if_missing=True) or "
            f"`nbremote volumes create {name}`"
        )

    def get(self, name: str) -> Volume:
        """The volume called ``name``.

        Raises:
            VolumeError: there is none (the message lists those there are).
        """
        volume = self.volumes.get(name)
        if volume is None:
            raise VolumeError("NotFound", self.missing(name))
        return volume

    async def create(self, name: str) -> tuple[Volume, bool]:
        """The volume called ``name``, created if missing; and whether it was created."""
        if name in self.volumes:
            return self.volumes[name], False
        if not NAME.match(name):
            raise VolumeError(
                "ValidationError",
                f"{name!r} is not a volume name: use letters, digits, '.', '_', '-' (at most 64)",
            )
        volume_id = uuid.uuid4().hex
        volume = Volume(name, volume_id, time.time(), self.root / volume_id)
        volume.modified_at = volume.created_at
        self.volumes[name] = volume
        await self.run(self._make_dirs, volume.root)
        await self._state.query(
            "INSERT INTO volumes VALUES (?, ?, ?)", (name, volume.id, volume.created_at)
        )
        return volume, True

    @staticmethod
    def _make_dirs(root: Path) -> None:
        for sub in ("blobs", "manifests"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    async def delete(self, name: str) -> None:
        """Remove a volume and its files (working copies of running containers stay theirs)."""
        volume = self.get(name)
        del self.volumes[name]
        await self._state.query("DELETE FROM volumes WHERE name = ?", (name,))
        await self.run(lambda: shutil.rmtree(volume.root, ignore_errors=True))

    # -- versions ------------------------------------------------------------------------------

    async def publish(self, volume: Volume, changes: Manifest, removed: list[str]) -> int:
        """Commit changes on top of the current version; the new version's number.

        Raises:
            OSError: the manifest could not be written (a full disk); nothing changed.
        """
        async with volume.lock:
            if not changes and not removed:
                return volume.version
            now = time.time()
            manifest = apply(volume.manifest, changes, removed, now)
            version = volume.version + 1
            await self.run(self._write_version, volume, version, manifest, now)
            volume.version, volume.manifest, volume.modified_at = version, manifest, now
            return version

    def _write_version(self, volume: Volume, version: int, manifest: Manifest, now: float) -> None:
        folder = volume.root / "manifests"
        document = {"version": version, "committed_at": now, "entries": manifest}
        write_json(folder / f"{version:012d}.json", document)
        old = sorted(folder.glob("*.json"))[:-KEEP_VERSIONS]
        for path in old:
            path.unlink(missing_ok=True)
        if old:  # blobs that only dropped versions used
            keep = {entry["hash"] for entry in manifest.values() if entry.get("hash")}
            for path in sorted(folder.glob("*.json")):
                keep |= {e["hash"] for e in _entries(path) if e.get("hash")}
            keep |= {
                entry["hash"]
                for checkout in list(self.checkouts.values())
                if checkout.volume is volume
                for entry, _ in checkout.local.values()
                if entry.get("hash")
            }
            volume.blobs.collect(keep)

    async def change(self, volume: Volume, request: CommitVolume) -> int:
        """A version made from the API: uploaded blobs put at paths, paths removed or copied.

        Raises:
            VolumeError: a path is missing, exists (without ``force``), or leaves the volume.
        """
        manifest = volume.manifest
        removed: list[str] = []
        for raw in request.remove:
            path = _existing(manifest, raw)
            if not path:
                raise VolumeError("BadRequest", "removing the volume's root: delete the volume")
            inside = [key for key in manifest if key.startswith(path + "/")]
            if inside and not request.recursive:
                raise VolumeError(
                    "BadRequest", f"{raw!r} is a folder that is not empty; pass recursive=True"
                )
            removed.append(path)
        changes: Manifest = {}
        for copy in request.copy_files:
            changes.update(_copies(manifest, copy.sources, copy.destination))
        for raw, digest in request.put.items():
            path = _clean(raw)
            if not request.force and path in manifest:
                raise VolumeError(
                    "Conflict", f"{raw!r} exists in volume {volume.name!r}; use force=True"
                )
            blob = volume.blobs.path(digest)
            if not await self.run(blob.is_file):
                raise VolumeError("BadRequest", f"no uploaded blob {digest} (for {raw!r})")
            size = (await self.run(blob.stat)).st_size
            changes[path] = {"type": "file", "hash": digest, "size": size}
        return await self.publish(volume, changes, removed)

    # -- working copies -----------------------------------------------------------------------

    async def checkout(self, name: str) -> Checkout:
        """A new working copy of the volume's current version."""
        volume = self.get(name)
        checkout_id = uuid.uuid4().hex[:16]
        root = self._checkouts / checkout_id
        await self.run(lambda: root.mkdir(parents=True))
        checkout = Checkout(checkout_id, volume, root, {})
        self.checkouts[checkout_id] = checkout
        try:
            checkout.local = await self.run(sync, root, {}, volume.manifest, volume.blobs, set())
        except BaseException:
            await self.release(checkout_id, commit=False)
            raise
        return checkout

    async def commit(self, checkout: Checkout, refused: list[str] | None = None) -> int:
        """Publish what the container changed in its copy; the version it made (or found).

        Args:
            refused: given, what the volume cannot hold is left out, and why added to it.

        Raises:
            VolumePathError: the copy holds a link pointing out of the volume, or a special file.
            OSError: a full disk; the committed versions are intact, the copy is as it was.
        """
        async with checkout.lock:
            volume = checkout.volume
            now = await self.run(scan, checkout.root, checkout.local, volume.blobs, refused)
            changes, removed = diff(checkout.local, now)
            version = await self.publish(volume, changes, removed)
            checkout.local = now
            return version

    async def reload(self, checkout: Checkout) -> None:
        """Bring the copy to the current version, keeping what the container has not committed."""
        async with checkout.lock:
            volume = checkout.volume
            now = await self.run(scan, checkout.root, checkout.local, None)
            changes, removed = diff(checkout.local, now)
            keep = {*changes, *removed}
            checkout.local = await self.run(
                sync, checkout.root, checkout.local, volume.manifest, volume.blobs, keep
            )

    async def release(self, checkout_id: str, commit: bool) -> None:
        """The container stopped: commit its changes if it stopped cleanly; drop the copy.

        It always completes (a stop must): what cannot be committed (a link out of the volume,
        a full disk) is left out and logged, never raised.
        """
        checkout = self.checkouts.get(checkout_id)
        if checkout is None:
            return
        name = checkout.volume.name
        try:
            if commit and name in self.volumes:
                refused: list[str] = []
                await self.commit(checkout, refused)
                for reason in refused:
                    log.warning("volume %r: left out of the commit at stop: %s", name, reason)
        except (VolumePathError, OSError) as exc:
            log.warning("volume %r: changes of a stopped container lost: %s", name, _message(exc))
        finally:
            del self.checkouts[checkout_id]
            await self.run(lambda: shutil.rmtree(checkout.root, ignore_errors=True))

    # -- worker requests ----------------------------------------------------------------------

    async def answer(self, header: Header, buffers: list[Any]) -> tuple[Header, list[Any]]:
        """The ``done`` frame answering a worker's volume request."""
        done: Header = {"op": Op.DONE, "id": header.get("id"), "ok": True}
        try:
            fields = await self._handle(header)
        except OSError as exc:  # in words, named by its class (a full disk: what to do)
            return error_done(done["id"], VolumeError(type(exc).__name__, _message(exc))), []
        except (VolumeError, VolumePathError) as exc:
            return error_done(done["id"], exc), []
        return {**done, **fields}, []

    async def _handle(self, header: Header) -> Header:
        name, action = header["name"], header["action"]
        if action == "lookup":
            if header.get("create"):
                await self.create(name)
            self.get(name)
            return {}
        self.get(name)
        checkouts = [self.checkouts[c] for c in header.get("checkouts", []) if c in self.checkouts]
        if not checkouts:
            raise VolumeError(
                "NotMounted",
                f"volume {name!r} is not mounted in this container: mount it with "
                f"volumes={{'/path': vol}} (or %%remote --volume {name}:/path)",
            )
        if action == "commit":
            return {"versions": [await self.commit(checkout) for checkout in checkouts]}
        if action == "reload":
            for checkout in checkouts:
                await self.reload(checkout)
            return {}
        raise VolumeError("BadRequest", f"unknown volume action {action!r}")

    def close(self) -> None:
        """Stop the file threads."""
        self._files.shutdown()


def _entries(path: Path) -> list[dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = json.loads(path.read_text())["entries"]
    return list(entries.values())


def disk_error(exc: OSError) -> VolumeError:
    """An OSError of a volume's files as the API answers it: DiskFull (507) when the disk is
    full, else OSError (500), in words rather than errno."""
    if exc.errno == errno.ENOSPC:
        return VolumeError("DiskFull", _message(exc))
    return VolumeError("OSError", _message(exc), status=500)


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno == errno.ENOSPC:
            return (
                "the runner's disk is full; nothing was committed and the volume's last version "
                "is intact. Free space under the runner's data dir, then commit again"
            )
        return f"{exc.strerror} ({exc.filename or ''})"
    return str(exc)


def _clean(path: str) -> str:
    try:
        return clean_path(path)
    except VolumePathError as exc:
        raise VolumeError("BadRequest", str(exc)) from None


def _existing(manifest: Manifest, raw: str) -> str:
    path = _clean(raw)
    if path and path not in manifest:
        raise VolumeError("NotFound", f"no file or folder {raw!r} in the volume")
    return path


def _copies(manifest: Manifest, sources: list[str], destination: str) -> Manifest:
    """Entries copied from ``sources`` to ``destination`` (into it if it is a folder, or if
    there are several sources)."""
    target = _clean(destination)
    into = len(sources) > 1 or not target or manifest.get(target, {}).get("type") == "dir"
    changes: Manifest = {}
    for raw in sources:
        source = _existing(manifest, raw)
        if not source:
            raise VolumeError("BadRequest", "copying the volume's root: name what to copy")
        base = f"{target}/{source.rsplit('/', 1)[-1]}".lstrip("/") if into else target
        for path, entry in manifest.items():
            if path == source or path.startswith(source + "/"):
                changes[base + path[len(source) :]] = {
                    k: v for k, v in entry.items() if k != "mtime"
                }
    return changes
