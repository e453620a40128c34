"""The image registry, shared by every backend: definitions, the files their steps copy, and the
layer cache's layout (what it holds, what to prune). Building an image is a backend's (the process
backend's venvs: `nbremote_runner.backends.venvs`).

Layout under ``<data dir>/images``::

    defs/<image id>.json     an image's steps, name, creation and last use
    blobs/<sha256>           files that steps copy (add_local_python_source, add_local_dir)
    layers/<key>/            a built layer: env/ (a venv) and layer.json
    layers/<key>.lock        held while that layer is built
    layers/.tmp-<key>-...    a layer being built; renamed to layers/<key> when complete

A layer's key hashes the layer id (its parent's id and its step) with what the runner adds (the
base Python, the worker's packages). A layer being built holds its lock file, which a prune
respects.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import contextvars
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nbremote.wire.http import FILE_HASH
from nbremote.wire.images import (
    CreateImage,
    DescribeImage,
    DescribeLayer,
    PruneImagesResponse,
    image_id,
    layer_ids,
)

from . import image_build
from .image_build import Log
from .image_types import Definition, PythonUnavailable

# Where the request that causes a build wants its log lines (the channel sets it per request).
BUILD_LOG: contextvars.ContextVar[Log | None] = contextvars.ContextVar("build_log", default=None)
TOUCH_EVERY = 60.0  # seconds between writes of an image's last use
IMAGE_ID = re.compile(r"im-[0-9a-f]{24}")  # what `image_id` makes; only these name a defs file


class Images:
    """The runner's image definitions and layer cache (see the module's docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.defs = root / "defs"
        self.blobs = root / "blobs"
        self.layers = root / "layers"
        self._executor = ThreadPoolExecutor(2, thread_name_prefix="nbremote-images")
        self._defs: dict[str, Definition] = {}
        self._keys: dict[str, list[str]] = {}  # image id -> its layers' keys
        self._pythons: dict[str, str] = {}
        self._touched: dict[str, float] = {}
        self.in_use: Callable[[], collections.Counter[str]] = collections.Counter
        # Told each layer key it deletes (from its thread): a backend that keeps layers
        # elsewhere too (the docker backend's images) removes them there.
        self.on_delete: Callable[[str], None] = lambda key: None
        # Held while definitions are added or removed: a prune decides on a list no register
        # changes under it (it used to look up an image registered meanwhile: KeyError).
        self._registry = asyncio.Lock()

    async def io(self, fn: Callable[..., object], *args: object) -> object:
        """``fn(*args)`` in the registry's threads (file work stays off the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def load(self) -> None:
        """Read the definitions back (off the event loop)."""
        await self.io(self._load)

    def _load(self) -> None:
        for folder in (self.defs, self.blobs, self.layers):
            folder.mkdir(parents=True, exist_ok=True)
        for path in self.defs.glob("*.json"):
            with contextlib.suppress(ValueError, OSError):
                definition = Definition.from_json(path.read_text())
                self._defs[definition.id] = definition

    # -- definitions ---------------------------------------------------------------------------

    async def register(self, request: CreateImage) -> Definition:
        """Know an image (and keep the files its steps copy).

        Raises:
            PythonUnavailable: its base asks for a Python the runner does not have.
            ValueError: a file its steps copy was not sent.
        """
        async with self._registry:
            return await self._register(request)

    async def _register(self, request: CreateImage) -> Definition:
        steps = request.steps
        ident = image_id(steps)
        needed = {sha for step in steps for sha in step.files.values()} - set(request.files)
        absent = await self.io(lambda: [sha for sha in needed if not (self.blobs / sha).exists()])
        if absent:
            raise ValueError("files: the content of a file that a step copies was not sent")
        version = steps[0].options.get("python_version")
        if steps[0].kind == "debian_slim" and version:
            await self.find_python(version)
        definition = self._defs.get(ident) or Definition(ident, steps)
        definition.name = request.name or definition.name
        if request.name:  # a name points at one image: the latest registered under it
            for other in self._defs.values():
                if other.name == request.name and other.id != ident:
                    other.name = None
                    await self.io(self._save, other)
        self._defs[ident] = definition
        await self.io(self._store, definition, request.files)
        return definition

    def _store(self, definition: Definition, files: dict[str, str]) -> None:
        for sha, content in files.items():
            if not FILE_HASH.fullmatch(sha):  # the schema checked it: it names a file here
                raise ValueError(f"files: {sha[:80]!r} is not a sha256 (64 lowercase hex digits)")
            data = base64.b64decode(content)
            if hashlib.sha256(data).hexdigest() != sha:
                raise ValueError(f"files: the content sent for {sha[:12]} does not match its hash")
            tmp = self.blobs / f".{sha}.{uuid.uuid4().hex}"
            tmp.write_bytes(data)
            tmp.replace(self.blobs / sha)
        self._save(definition)

    def _save(self, definition: Definition) -> None:
        tmp = self.defs / f".{definition.id}.{uuid.uuid4().hex}"
        tmp.write_text(definition.to_json())
        tmp.replace(self.defs / f"{definition.id}.json")

    def lookup(self, ref: str) -> Definition:
        """An image by id or name.

        Raises:
            LookupError: there is none (the message lists the names there are).
        """
        found = self._defs.get(ref) or next((d for d in self._defs.values() if d.name == ref), None)
        if found is None and IMAGE_ID.fullmatch(ref) and (self.defs / f"{ref}.json").exists():
            found = self._defs[ref] = Definition.from_json((self.defs / f"{ref}.json").read_text())
        if found is None:
            names = sorted(d.name for d in self._defs.values() if d.name)
            raise LookupError(
                f"no image {ref!r} on this runner (named images: {', '.join(names) or 'none'}); "
                "run the cell that defines it, or `nbremote images build`"
            )
        return found

    @property
    def definitions(self) -> list[Definition]:
        """Every known image, most recently used first."""
        return sorted(self._defs.values(), key=lambda d: -(d.last_used or d.created_at))

    # -- pythons -------------------------------------------------------------------------------

    async def find_python(self, version: str) -> str:
        """The interpreter for ``version`` (the runner's own when it matches).

        Raises:
            PythonUnavailable: none, with the versions there are.
        """
        if version in self._pythons:
            return self._pythons[version]
        found: str | None = image_build.base_python()
        if version != image_build.python_label():
            found = await self._uv_output("python", "find", "--no-project", "--no-config", version)
            if found is None:
                listed = await self._uv_output(
                    "python", "list", "--only-installed", "--output-format", "json"
                )
                versions = sorted(
                    {".".join(e["version"].split(".")[:2]) for e in json.loads(listed or "[]")}
                )
                raise PythonUnavailable(
                    f"python_version={version!r} is not available on this runner; it has "
                    f"{', '.join(versions) or 'none'} (install another there with "
                    f"`uv python install {version}`)"
                )
        self._pythons[version] = path = str(found)
        return path

    async def _uv_output(self, *args: str) -> str | None:
        proc = await asyncio.create_subprocess_exec(
            image_build.uv_bin(),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=image_build.uv_env(),
        )
        out, _ = await proc.communicate()
        return out.decode().strip() if proc.returncode == 0 else None

    async def layer_keys(self, definition: Definition) -> list[str]:
        """The keys of an image's layers in this runner's cache."""
        keys = self._keys.get(definition.id)
        if keys is None:
            version = definition.steps[0].options.get("python_version")
            python = await self.find_python(version) if version else ""
            base = image_build.fingerprint(python)
            keys = [
                hashlib.sha256(f"{base}\n{layer}".encode()).hexdigest()[:24]
                for layer in layer_ids(definition.steps)
            ]
            self._keys[definition.id] = keys
        return keys

    def touch(self, definition: Definition) -> None:
        """Record a use of the image (written to its definition at most every `TOUCH_EVERY`)."""
        now = time.time()
        definition.last_used = now
        if now - self._touched.get(definition.id, 0.0) > TOUCH_EVERY:
            self._touched[definition.id] = now
            self._executor.submit(self._save, definition)

    # -- listing and removal -----------------------------------------------------------------

    def _layer_info(self, key: str) -> dict[str, float]:
        try:
            info: dict[str, float] = json.loads((self.layers / key / "layer.json").read_text())
            return info
        except (OSError, ValueError):
            return {}

    async def describe(self, definition: Definition) -> DescribeImage:
        """An image as the API shows it."""
        keys = await self.layer_keys(definition)
        infos = await self.io(lambda: [self._layer_info(key) for key in keys])
        layers = [
            DescribeLayer(
                step=step.describe(),
                built=bool(info),
                bytes=int(info.get("bytes", 0)),
                build_seconds=info.get("build_seconds"),
            )
            for step, info in zip(definition.steps, infos, strict=True)  # type: ignore[call-overload]
        ]
        return DescribeImage(
            id=definition.id,
            name=definition.name,
            python_version=definition.python_version,
            built=all(layer.built for layer in layers),
            bytes=sum(layer.bytes for layer in layers),
            created_at=definition.created_at,
            last_used=definition.last_used,
            in_use=self.in_use()[definition.id],
            layers=layers,
        )

    async def remove(self, ref: str) -> Definition:
        """Forget an image and delete the layers no other image uses.

        Raises:
            LookupError: no such image. RuntimeError: workers run on it.
        """
        async with self._registry:
            definition = self.lookup(ref)
            if self.in_use()[definition.id]:
                raise RuntimeError(
                    f"image {definition.id} is in use by {self.in_use()[definition.id]} "
                    "worker(s); stop them first (%remote reset, or nbremote apps stop)"
                )
            await self._forget([definition])
            return definition

    async def _forget(self, definitions: list[Definition]) -> int:
        for definition in definitions:
            self._defs.pop(definition.id, None)
            await self.io(lambda d=definition: (self.defs / f"{d.id}.json").unlink(True))
        return await self._sweep()

    async def _sweep(self) -> int:
        """Delete layers (and leftovers) no known image uses; the bytes freed."""
        keep = {key for d in self._defs.values() for key in await self.layer_keys(d)}
        freed: int = await self.io(self._delete_unused, keep)  # type: ignore[assignment]
        return freed

    def _delete_unused(self, keep: set[str]) -> int:
        freed = 0
        for path in self.layers.iterdir():
            key = path.name.removeprefix(".tmp-").split("-")[0]
            if path.suffix == ".lock" or key in keep:
                continue
            fd = os.open(self.layers / f"{key}.lock", os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # being built: leave it
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                freed += int(self._layer_info(path.name).get("bytes", 0))
                shutil.rmtree(path, ignore_errors=True)
                self.on_delete(key)
            finally:
                os.close(fd)
        return freed

    async def prune(self, keep_bytes: int | None, older_than: float | None) -> PruneImagesResponse:
        """Free space: images unused for ``older_than`` seconds, then the least recently used
        until the cache holds at most ``keep_bytes``; always what no image uses. Images that
        workers run on are kept."""
        async with self._registry:
            return await self._prune(keep_bytes, older_than)

    async def _prune(self, keep_bytes: int | None, older_than: float | None) -> PruneImagesResponse:
        busy = self.in_use()
        keys = {d.id: await self.layer_keys(d) for d in self.definitions}
        infos = await self.io(lambda: {k: self._layer_info(k) for ks in keys.values() for k in ks})
        sizes = {key: int(info.get("bytes", 0)) for key, info in infos.items()}  # type: ignore[attr-defined]

        def total(remaining: list[Definition]) -> int:
            return sum(sizes[key] for key in {k for d in remaining for k in keys[d.id]})

        now, remaining = time.time(), self.definitions
        removed: list[Definition] = []
        for definition in reversed(self.definitions):  # least recently used first
            if busy[definition.id]:
                continue
            unused_for = now - (definition.last_used or definition.created_at)
            too_old = older_than is not None and unused_for > older_than
            too_big = keep_bytes is not None and total(remaining) > keep_bytes
            if too_old or too_big:
                removed.append(definition)
                remaining = [d for d in remaining if d is not definition]
        freed = await self._forget(removed)
        return PruneImagesResponse(
            removed=[d.id for d in removed], freed_bytes=freed, kept_bytes=total(remaining)
        )

    async def close(self) -> None:
        """Let go of the registry's threads (backends stop their builds first)."""
        self._executor.shutdown()
