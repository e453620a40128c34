"""``nr.Volume``: a named folder tree on the runner that containers mount, as in Modal.

A container mounting a volume (``volumes={"/models": vol}`` or ``%%remote --volume
models:/models``) works on its own copy of the volume's last committed version. Its writes are
seen elsewhere once it calls ``vol.commit()`` (or stops cleanly); ``vol.reload()`` brings in
what others committed since, keeping its own uncommitted changes. When two containers commit
changes to the same path, the last commit wins for that path.

From a notebook or script, ``listdir``, ``read_file``, ``put_file``, ``remove_file``,
``copy_files`` and ``batch_upload`` act on the committed version directly (each change is a
commit). Volume paths are relative to the volume's root (a leading ``/`` names the root).

Standard library only at import time: workers unpickle functions that capture volumes.
"""

from __future__ import annotations

import contextlib
import enum
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from .errors import NbremoteError, RunnerError
from .wire.mounts import check_mount_paths
from .wire.ops import Op
from .wire.transport import worker_transport

if TYPE_CHECKING:
    from ._client import RunnerClient

API = "/api/v1/volumes"


class FileEntryType(enum.Enum):
    """What a volume entry is."""

    FILE = "file"
    DIRECTORY = "directory"
    LINK = "link"


@dataclass(frozen=True)
class FileEntry:
    """A file, folder or link of a volume, as ``listdir`` gives it."""

    path: str
    type: FileEntryType
    mtime: float
    size: int


def _client() -> RunnerClient:
    from . import _session

    return _session.current_session().client


def _in_worker() -> bool:
    return worker_transport() is not None


def _progress(total: int, desc: str) -> Any:
    from tqdm.std import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, delay=1.0)


class Volume:
    """A named folder tree on the runner, mounted by containers and shared between them.

    Example:
        >>> vol = Volume.from_name("models", create_if_missing=True)  # doctest: +SKIP
        >>> @nr.remote(volumes={"/models": vol})                     # doctest: +SKIP
        ... def save():
        ...     Path("/models/weights.txt").write_text("1 2 3")
        ...     vol.commit()
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<nbremote.Volume {self.name!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Volume) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("volume", self.name))

    # -- lookup --------------------------------------------------------------------------------

    @classmethod
    def from_name(cls, name: str, *, create_if_missing: bool = False) -> Volume:
        """The volume called ``name`` on the runner.

        Raises:
            RunnerError: there is none (and ``create_if_missing`` is false); the message lists
                those there are.
        """
        volume = cls(name)
        if _in_worker():
            volume._worker_request("lookup", create=create_if_missing)
        else:
            from ._client import build
            from .wire.http import CreateVolume, DescribeVolume

            if create_if_missing:
                body = build(CreateVolume, name=name, exist_ok=True)
                _client().call("POST", API, body, response=DescribeVolume)
            else:
                _client().call("GET", f"{API}/{quote(name)}", response=DescribeVolume)
        return volume

    @classmethod
    @contextlib.contextmanager
    def ephemeral(cls) -> Iterator[Volume]:
        """A new volume that lives as long as the ``with`` block."""
        volume = cls.from_name(f"ephemeral-{uuid.uuid4().hex[:16]}", create_if_missing=True)
        try:
            yield volume
        finally:
            volume.delete()

    def delete(self) -> None:
        """Remove the volume and every file in it."""
        _client().call("DELETE", f"{API}/{quote(self.name)}")

    # -- inside a container -------------------------------------------------------------------

    def _worker_request(self, action: str, **fields: Any) -> dict[str, Any]:
        transport = worker_transport()
        assert transport is not None
        header = {"op": Op.VOLUME, "name": self.name, "action": action, **fields}
        done, _ = transport(header, [])
        if not done["ok"]:
            error = done["error"]
            raise RunnerError(error["ename"], error["evalue"])
        return done

    def _checkouts(self) -> list[str]:
        import json

        mounts = json.loads(os.environ.get("NBREMOTE_VOLUMES", "{}"))
        return [m["checkout"] for m in mounts.values() if m["name"] == self.name]

    def commit(self) -> None:
        """Publish this container's changes to the volume (others see them from now on).

        Outside a container it does nothing: changes made from a notebook are committed as
        they are made.

        Raises:
            RunnerError: the volume is not mounted here, a link points out of it, or the
                runner's disk is full (then nothing was committed).
        """
        if _in_worker():
            self._worker_request("commit", checkouts=self._checkouts())

    def reload(self) -> None:
        """Bring in what others committed since this container's copy was made or synced
        (its own uncommitted changes stay). Outside a container it does nothing."""
        if _in_worker():
            self._worker_request("reload", checkouts=self._checkouts())

    # -- from a notebook or script ------------------------------------------------------------

    def _outside(self, what: str) -> RunnerClient:
        if _in_worker():
            raise NbremoteError(
                f"Volume.{what} works from a notebook or script; inside a container, use the "
                "files at the volume's mount path"
            )
        return _client()

    def listdir(self, path: str = "/", *, recursive: bool = False) -> list[FileEntry]:
        """The entries under ``path`` (the path itself if it is a file).

        Raises:
            RunnerError: nothing is there, or the path leaves the volume.
        """
        from .wire.http import ListVolumeFilesResponse

        query = urlencode({"path": path, "recursive": int(recursive)})
        url = f"{API}/{quote(self.name)}/files?{query}"
        listed = self._outside("listdir").call("GET", url, response=ListVolumeFilesResponse)
        return [FileEntry(e.path, FileEntryType(e.type), e.mtime, e.size) for e in listed.entries]

    def iterdir(self, path: str = "/", *, recursive: bool = False) -> Iterator[FileEntry]:
        """As `listdir`, one entry at a time."""
        yield from self.listdir(path, recursive=recursive)

    def read_file(self, path: str) -> Iterator[bytes]:
        """The content of a file, in chunks as they arrive."""
        client = self._outside("read_file")
        yield from client.stream(f"{API}/{quote(self.name)}/files/{quote(path.lstrip('/'))}")

    def read_file_into_fileobj(self, path: str, fileobj: IO[bytes]) -> int:
        """Write a file's content into ``fileobj``; the number of bytes written."""
        written = 0
        for chunk in self.read_file(path):
            written += fileobj.write(chunk) or 0
        return written

    def put_file(self, local_file: str | os.PathLike[str] | IO[bytes], remote_path: str) -> None:
        """Upload a local file (a path or a binary file object) to ``remote_path``."""
        with self.batch_upload(force=True) as batch:
            batch.put_file(local_file, remote_path)

    def remove_file(self, path: str, recursive: bool = False) -> None:
        """Remove a file (or, with ``recursive``, a folder and what it holds)."""
        self._commit("remove_file", remove=[path], recursive=recursive)

    def copy_files(self, src_paths: Sequence[str], dst_path: str) -> None:
        """Copy files or folders within the volume (into ``dst_path`` if it is a folder)."""
        from .wire.http import CopyFiles

        copy = CopyFiles(sources=list(src_paths), destination=dst_path)
        self._commit("copy_files", copy_files=[copy])

    def batch_upload(self, force: bool = False) -> BatchUpload:
        """Upload many files as one commit: ``with vol.batch_upload() as b: b.put_file(...)``.

        Args:
            force: replace files that exist (else the commit fails, naming them).
        """
        self._outside("batch_upload")
        return BatchUpload(self, force)

    def _commit(self, what: str, **fields: Any) -> None:
        """A new version of the volume: `CommitVolume` of ``fields``."""
        from ._client import build
        from .wire.http import CommitVolume, DescribeVolume

        body = build(CommitVolume, **fields)
        path = f"{API}/{quote(self.name)}/versions"
        self._outside(what).call("POST", path, body, response=DescribeVolume)


class BatchUpload:
    """Files to upload to a volume, sent and committed together when the block ends."""

    def __init__(self, volume: Volume, force: bool) -> None:
        self._volume = volume
        self._force = force
        self._files: list[tuple[str | os.PathLike[str] | IO[bytes], str]] = []

    def put_file(self, local_file: str | os.PathLike[str] | IO[bytes], remote_path: str) -> None:
        """Upload a local file (a path or a binary file object) to ``remote_path``."""
        if not hasattr(local_file, "read") and not Path(local_file).is_file():
            raise NbremoteError(f"{local_file}: no such file to upload")
        self._files.append((local_file, remote_path))

    def put_directory(self, local_path: str | os.PathLike[str], remote_path: str) -> None:
        """Upload a local folder's files, recursively, under ``remote_path``."""
        root = Path(local_path)
        if not root.is_dir():
            raise NbremoteError(f"{local_path}: no such folder to upload")
        for file in sorted(path for path in root.rglob("*") if path.is_file()):
            relative = PurePosixPath(*file.relative_to(root).parts)
            self._files.append((file, f"{remote_path.rstrip('/')}/{relative}"))

    def __enter__(self) -> BatchUpload:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self._upload()

    def _upload(self) -> None:
        from .wire.http import DescribeBlob

        client = _client()
        total = sum(_size(local) for local, _ in self._files)
        put: dict[str, str] = {}
        with _progress(total, f"upload to {self._volume.name}") as bar:
            for local, remote in self._files:
                with contextlib.ExitStack() as stack:
                    file: IO[bytes] = (
                        local  # type: ignore[assignment]
                        if hasattr(local, "read")
                        else stack.enter_context(open(local, "rb"))
                    )
                    path = f"{API}/{quote(self._volume.name)}/blobs"
                    blob = client.upload(path, file, _size(local), bar.update, DescribeBlob)
                put[remote] = blob.hash
        if put:
            self._volume._commit("batch_upload", put=put, force=self._force)


def _size(local: str | os.PathLike[str] | IO[bytes]) -> int:
    if hasattr(local, "read"):
        file: Any = local
        position = file.tell()
        size = file.seek(0, os.SEEK_END) - position
        file.seek(position)
        return int(size)
    return os.path.getsize(local)


def mounts_of(volumes: Any, where: str) -> dict[str, str]:
    """``volumes={path: Volume}`` as mount path -> volume name, checked.

    Raises:
        NbremoteError: not a dict of Volumes, or a mount path is refused (naming it).
    """
    if not volumes:
        return {}
    if not isinstance(volumes, dict):
        raise NbremoteError(f"{where}: volumes= takes a dict {{'/path': nr.Volume}}")
    mounts: dict[str, str] = {}
    for path, volume in volumes.items():
        if isinstance(volume, Volume):
            mounts[path] = volume.name
        elif isinstance(volume, str):  # a name: how settings come back from with_options
            mounts[path] = volume
        else:
            raise NbremoteError(
                f"{where}: volumes[{path!r}] is a {type(volume).__name__}; use "
                "nr.Volume.from_name(...)"
            )
    try:
        check_mount_paths(mounts)
    except ValueError as exc:
        raise NbremoteError(f"{where}: {exc}") from None
    return mounts
