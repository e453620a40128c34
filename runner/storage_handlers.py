"""HTTP resources for volumes and secrets (routes in ``STORAGE_ROUTES``, added to the API's).

File contents stream both ways: an upload is hashed and written to a blob as it arrives, a
download is read from its blob a chunk at a time; neither is ever whole in the runner's memory.
Secrets are write-only: no answer carries a value.
"""

from __future__ import annotations

from typing import Any

from tornado.iostream import StreamClosedError

from nbremote.wire.http import (
    CommitVolume,
    CreateVolume,
    DescribeBlob,
    DescribeSecret,
    DescribeVolume,
    ListSecretsResponse,
    ListVolumeFilesResponse,
    ListVolumesResponse,
    SetSecret,
)

from .errors import ApiError, RunnerError
from .handlers import API, BaseHandler, Operation
from .volume_tree import CHUNK, BlobWriter
from .volumes import Volume, disk_error

MAX_UPLOAD = 1 << 40


class StorageHandler(BaseHandler):
    """Volume and secret resources: their files' OSErrors are answered too (a full disk)."""

    def volume(self, name: str) -> Volume:
        """The volume, or a 404 listing those there are."""
        return self.runner.volumes.get(name)

    def translate(self, exc: BaseException | None) -> RunnerError | None:
        if isinstance(exc, OSError):  # a full disk, say: the committed versions are intact
            return disk_error(exc)
        return super().translate(exc)


class VolumesHandler(StorageHandler):
    api = {
        "get": Operation("List volumes", ListVolumesResponse),
        "post": Operation("Create a volume", DescribeVolume, CreateVolume, 201, True),
    }

    def get(self) -> None:
        volumes = self.runner.volumes.volumes.values()
        listed = [volume.describe() for volume in sorted(volumes, key=lambda v: v.name)]
        self.reply(ListVolumesResponse(volumes=listed))

    async def post(self) -> None:
        request: CreateVolume = self.parse(CreateVolume)
        if request.name in self.runner.volumes.volumes and not request.exist_ok:
            raise ApiError(409, "Conflict", f"volume {request.name!r} exists")
        volume, created = await self.runner.volumes.create(request.name)
        self.set_header("Location", f"{API}/volumes/{volume.name}")
        self.reply(volume.describe(), 201 if created else 200)


class VolumeHandler(StorageHandler):
    api = {
        "get": Operation("Describe a volume", DescribeVolume),
        "delete": Operation("Delete a volume and its files", status=204),
    }

    def get(self, name: str) -> None:
        self.reply(self.volume(name).describe())

    async def delete(self, name: str) -> None:
        self.volume(name)
        await self.runner.volumes.delete(name)
        self.set_status(204)


class VolumeFilesHandler(StorageHandler):
    api = {
        "get": Operation("List a volume's files (?path=, ?recursive=1)", ListVolumeFilesResponse)
    }

    def get(self, name: str) -> None:
        volume = self.volume(name)
        path = self.get_argument("path", "/")
        recursive = self.get_argument("recursive", "0") not in ("0", "", "false")
        self.reply(ListVolumeFilesResponse(entries=volume.entries(path, recursive)))


class VolumeFileHandler(StorageHandler):
    api = {"get": Operation("A file's content (application/octet-stream, streamed)")}

    async def get(self, name: str, path: str) -> None:
        blob, size = self.volume(name).file(path)
        run = self.runner.volumes.run
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Length", str(size))
        with await run(blob.open, "rb") as source:
            try:
                while chunk := await run(source.read, CHUNK):
                    self.write(chunk)
                    await self.flush()
            except StreamClosedError:
                pass


class VolumeBlobsHandler(StorageHandler):
    api = {
        "post": Operation(
            "Upload a file's content (streamed); commit it with a version", DescribeBlob, status=201
        )
    }

    _writer: BlobWriter | None = None
    _failed: OSError | None = None

    def body_limit(self) -> int:
        return MAX_UPLOAD  # streamed to disk, never whole in memory

    async def prepare(self) -> None:  # type: ignore[override]
        super().prepare()
        assert self.path_kwargs is not None
        volume = self.volume(self.path_kwargs["name"])
        if self.request.method == "POST":  # another method is answered 405: nothing to write
            self._writer = await self.runner.volumes.run(volume.blobs.writer)

    async def data_received(self, chunk: bytes) -> None:
        if self._writer is None or self._failed is not None:
            return
        try:
            await self.runner.volumes.run(self._writer.write, chunk)
        except OSError as exc:  # keep reading (and dropping) the body, then answer the error
            self._failed = exc
            self._writer.abort()

    async def post(self, name: str) -> None:
        assert self._writer is not None
        if self._failed is not None:
            raise self._failed
        writer, self._writer = self._writer, None
        digest = await self.runner.volumes.run(writer.finish)
        size = writer.size
        self.reply(DescribeBlob(hash=digest, size=size), 201)

    def on_connection_close(self) -> None:
        super().on_connection_close()  # ends the wait for the rest of the body
        self._drop()

    def on_finish(self) -> None:  # answered without `post` filing it (an error): drop it
        self._drop()

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None


class VolumeVersionsHandler(StorageHandler):
    api = {
        "post": Operation(
            "Commit a version: uploaded files put, paths removed or copied",
            DescribeVolume,
            CommitVolume,
            201,
        )
    }

    async def post(self, name: str) -> None:
        volume = self.volume(name)
        request: CommitVolume = self.parse(CommitVolume)
        await self.runner.volumes.change(volume, request)
        self.reply(volume.describe(), 201)


class SecretsHandler(StorageHandler):
    api = {
        "get": Operation("List secrets: names, keys and dates (never values)", ListSecretsResponse)
    }

    def get(self) -> None:
        self.reply(ListSecretsResponse(secrets=self.runner.secrets.list()))


class SecretHandler(StorageHandler):
    api = {
        "get": Operation("Describe a secret (never its values)", DescribeSecret),
        "put": Operation(
            "Create or replace a secret (write-only)", DescribeSecret, SetSecret, 201, True
        ),
        "delete": Operation("Delete a secret", status=204),
    }

    def get(self, name: str) -> None:
        self.reply(self.runner.secrets.describe(name))

    async def put(self, name: str) -> None:
        request: SetSecret = self.parse(SetSecret)
        described, created = await self.runner.secrets.set(name, request.values)
        self.set_header("Location", f"{API}/secrets/{name}")
        self.reply(described, 201 if created else 200)

    async def delete(self, name: str) -> None:
        await self.runner.secrets.delete(name)
        self.set_status(204)


NAME = r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)"
STORAGE_ROUTES: list[tuple[str, Any]] = [
    (f"{API}/volumes", VolumesHandler),
    (f"{API}/volumes/{NAME}", VolumeHandler),
    (f"{API}/volumes/{NAME}/files", VolumeFilesHandler),
    (f"{API}/volumes/{NAME}/files/(?P<path>.+)", VolumeFileHandler),
    (f"{API}/volumes/{NAME}/blobs", VolumeBlobsHandler),
    (f"{API}/volumes/{NAME}/versions", VolumeVersionsHandler),
    (f"{API}/secrets", SecretsHandler),
    (f"{API}/secrets/{NAME}", SecretHandler),
]
