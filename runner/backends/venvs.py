"""The process backend's images: venvs built layer by layer from the shared registry's definitions.

The registry (`nbremote_runner.images`) keeps definitions, the files their steps copy and the
layout of the layer cache; building a layer's venv (``uv``, in a sandbox where the backend has
one) is this module's. A layer directory exists only once it is complete, so a build killed
half-way leaves nothing that counts as built. Builds of one image in this process are shared;
builds of one layer across processes are serialized by its lock file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from nbremote.wire.images import ImageStep

from .. import image_build
from ..image_build import Log, StepFailed
from ..image_types import Definition, ImageBuildError, Ready
from ..images import BUILD_LOG, Images
from .sandbox import Sandbox


class _Build:
    """One build in progress, and whoever follows its log."""

    def __init__(self) -> None:
        self.listeners: list[Log] = []
        self.task: asyncio.Task[Ready] | None = None

    async def indented(self, line: str) -> None:
        """A line of a step's own output."""
        await self.emit(f"    {line}")

    async def emit(self, line: str) -> None:
        for listener in list(self.listeners):
            with contextlib.suppress(Exception):  # a caller that went away misses lines
                await listener(line)


class VenvBuilder:
    """Builds the registry's images as venvs in its layer cache.

    Args:
        images: the shared registry.
        sandbox: where build steps run (they run user code), if anywhere.
    """

    def __init__(self, images: Images, sandbox: Sandbox | None = None) -> None:
        self.images = images
        self.sandbox = sandbox
        self._ready: dict[str, Ready] = {}
        self._builds: dict[str, _Build] = {}

    async def ensure(self, ref: str) -> Ready:
        """The image built: from the cache, or built now (its log to `BUILD_LOG`'s callback);
        a build of it already under way is joined, not repeated.

        Raises:
            LookupError: no such image. ImageBuildError: a step failed.
        """
        definition = self.images.lookup(ref)
        ready = self._ready.get(definition.id)
        if ready is not None and ready.python.parent.parent.parent.is_dir():
            self.images.touch(definition)
            return ready
        log = BUILD_LOG.get()
        build = self._builds.get(definition.id)
        if build is None:
            build = self._builds[definition.id] = _Build()
            build.task = asyncio.create_task(self._build(definition, build))
            build.task.add_done_callback(lambda _: self._builds.pop(definition.id, None))
        elif log is not None:
            await log(f"waiting for the build of image {definition.id} already under way")
        if log is not None:
            build.listeners.append(log)
        try:
            assert build.task is not None
            ready = await asyncio.shield(build.task)
        finally:
            if log is not None:
                build.listeners.remove(log)
        self.images.touch(definition)
        return ready

    async def _build(self, definition: Definition, build: _Build) -> Ready:
        images = self.images
        keys = await images.layer_keys(definition)
        steps, total = definition.steps, len(definition.steps)
        version = steps[0].options.get("python_version")
        context = image_build.LayerContext(
            python=await images.find_python(version) if version else "",
            blobs=images.blobs,
            sandbox=self.sandbox,
        )
        started = time.monotonic()
        parent: Path | None = None
        for number, (step, key) in enumerate(zip(steps, keys, strict=True), 1):
            where = f"step {number}/{total}"
            if not (images.layers / key).is_dir():
                async with self._lock(key, build, where):
                    if (images.layers / key).is_dir():
                        await build.emit(f"{where} built by another runner: {step.describe()}")
                    else:
                        await build.emit(f"{where} {step.describe()}")
                        await self._build_layer(key, step, parent, context, build, where)
            else:
                await build.emit(f"{where} cached: {step.describe()}")
            context.env.update(image_build.step_env(step))  # env, workdir
            parent = images.layers / key / "env"
        assert parent is not None
        await build.emit(f"image {definition.id} ready ({time.monotonic() - started:.1f} s)")
        env = context.env | {
            "VIRTUAL_ENV": str(parent),
            "PATH": f"{parent / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "NBREMOTE_IMAGE": definition.id,
        }
        ready = Ready(definition.id, parent / "bin" / "python", env, parent / image_build.FILES_DIR)
        self._ready[definition.id] = ready
        return ready

    async def _build_layer(
        self,
        key: str,
        step: ImageStep,
        parent: Path | None,
        context: image_build.LayerContext,
        build: _Build,
        where: str,
    ) -> None:
        layers, io = self.images.layers, self.images.io
        tmp = layers / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        final = layers / key
        started = time.monotonic()
        try:
            await io(self._clear_leftovers, key)
            await image_build.build_layer(step, tmp, parent, context, build.indented)
            await io(image_build.relocate_scripts, tmp / "env", layers, final / "env")
            size = await io(image_build.new_bytes, tmp / "env", parent)
            seconds = time.monotonic() - started
            layer = {"step": step.describe(), "bytes": size, "build_seconds": seconds}
            (tmp / "layer.json").write_text(json.dumps(layer | {"built_at": time.time()}))
            os.rename(tmp, final)  # atomic: the layer exists only once it is complete
        except StepFailed as exc:
            tail = "\n".join(exc.tail[-15:])
            raise ImageBuildError(
                f"{where} ({step.describe()}) failed: {exc.reason}" + (f"\n{tail}" if tail else "")
            ) from None
        finally:
            if tmp.exists():
                await asyncio.shield(io(shutil.rmtree, tmp, True))

    def _clear_leftovers(self, key: str) -> None:
        """Half-built copies of a layer whose lock we hold: their builders are gone."""
        for leftover in self.images.layers.glob(f".tmp-{key}-*"):
            shutil.rmtree(leftover, ignore_errors=True)

    @contextlib.asynccontextmanager
    async def _lock(self, key: str, build: _Build, where: str) -> AsyncIterator[None]:
        """The layer's lock file, polled (a cancelled build must not leave a thread waiting)."""
        fd = os.open(self.images.layers / f"{key}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            waited = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not waited:
                        await build.emit(f"{where}: waiting for another runner building it")
                        waited = True
                    await asyncio.sleep(0.1)
            yield
        finally:
            os.close(fd)

    async def close(self) -> None:
        """Stop builds in progress (their half-built layers are removed)."""
        for build in list(self._builds.values()):
            if build.task is not None:
                build.task.cancel()
                with contextlib.suppress(BaseException):
                    await build.task
