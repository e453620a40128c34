"""The docker backend's images: an `nr.Image` chain built as Docker images, one per step.

Each step is one ``docker build`` from its parent, tagged ``nbremote/layer:<key>`` with the key
the image registry gives that layer (its content, its parents', the runner's Python): a built
step is found by its tag, so a changed step rebuilds that step and those after it, nothing
before, and `nbremote images ls`/``prune`` see the layers as on the process backend (a
``layer.json`` per layer, with the bytes the docker layer adds). The last layer, tagged
``nbremote/img:<hash>``, holds no files: it is the image's Python asked its version (a minor
version other than the runner's, the kernel's, is refused: pickles and the worker's compiled
packages do not cross it), committed with the worker's environment.

What the worker itself imports (the runner's ``nbremote``/``nbremote_runner`` code, IPython,
cloudpickle, dill, pydantic... copied from the runner's environment and compiled once) is a
docker volume, ``nbremote-worker-<hash>``, mounted read-only in every container: made once per
runner version, it costs an image build nothing (as a copied layer it cost 6 s per image here).

Builds use the host's network (the daemon has no bridge); workers run without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbremote.wire.images import ImageStep, layer_ids

from ..image_types import Definition, ImageBuildError
from ..images import BUILD_LOG, Images
from .docker_base import BaseImageError, ensure_base, python_minor
from .docker_steps import SITE, SOURCES, WORKDIR, step_context, tar, worker_context, worker_key

LAYER_REPOSITORY = "nbremote/layer"
IMAGE_REPOSITORY = "nbremote/img"
WORKER_REPOSITORY = "nbremote/worker"
WORKER_LAYER = "python-checked; PYTHONPATH, WORKDIR, labels"  # what the last layer adds (v1)
LABEL = "nbremote.image"
LAYER_LABEL = "nbremote.layer"  # a final image's last step's layer key


@dataclass(frozen=True)
class DockerImage:
    """A built image as a container needs it."""

    id: str  # the registry's image id (im-...), or "default"
    tag: str
    worker_volume: str  # the docker volume of the worker's files, mounted read-only at SITE


class DockerImages:
    """Builds the registry's images in a Docker daemon (see the module's docstring).

    Args:
        client: a ``docker.DockerClient``.
        images: the runner's image registry (definitions and the files steps copy), if any.
    """

    def __init__(self, client: Any, images: Images | None) -> None:
        self.client = client
        self.images = images
        self._ready: dict[str, DockerImage] = {}
        self._lock = asyncio.Lock()  # one build at a time: steps share layers

    async def ensure(self, ref: str | None) -> DockerImage:
        """The image ``ref`` (None: the default one, ``debian_slim`` of the runner's Python),
        built if need be, its log to `BUILD_LOG`.

        Raises:
            LookupError: no such image. ImageBuildError: a step failed, or its Python differs.
        """
        definition = self._definition(ref)
        ready = self._ready.get(definition.id)
        if ready is not None:
            return ready
        async with self._lock:
            ready = self._ready.get(definition.id) or await self._build(definition)
        self._ready[definition.id] = ready
        if self.images is not None and ref is not None:
            self.images.touch(definition)
        return ready

    def _definition(self, ref: str | None) -> Definition:
        if ref is not None:
            if self.images is None:
                raise LookupError(f"no image {ref!r}: this runner has no image registry")
            return self.images.lookup(ref)
        base = ImageStep(kind="debian_slim", options={"python_version": python_minor()})
        return Definition("default", [base])

    async def _keys(self, definition: Definition) -> list[str]:
        """Its layers' keys: the registry's (so that its listings and prunes see them)."""
        _check_base_python(definition.steps[0])
        if self.images is None or definition.id == "default":
            return [_hash(layer) for layer in layer_ids(definition.steps)]
        return await self.images.layer_keys(definition)

    async def _build(self, definition: Definition) -> DockerImage:
        log = _Log()
        keys = await self._keys(definition)
        started = time.monotonic()
        parent = ""
        for number, (step, key) in enumerate(zip(definition.steps, keys, strict=True), 1):
            tag = f"{LAYER_REPOSITORY}:{key}"
            where = f"step {number}/{len(definition.steps)}"
            if await log.run(self._exists, tag):
                await log(f"{where} cached: {step.describe()}")
                if self._unrecorded(definition, key):  # built for another data dir's runner
                    await log.run(self._record, key, step, parent, 0.0)
            else:
                await log(f"{where} {step.describe()}")
                built = time.monotonic()
                if number == 1:
                    base_id = await log.run(self._base, step, log)
                    await log.run(self.client.api.tag, base_id, LAYER_REPOSITORY, key)
                else:
                    context = step_context(parent, step, self._blobs())
                    what = f"{where} ({step.describe()})"
                    await log.run(self._docker_build, context, tag, log, what)
                if self._unrecorded(definition, key):
                    seconds = time.monotonic() - built
                    await log.run(self._record, key, step, parent, seconds)
            parent = tag
        final = f"{IMAGE_REPOSITORY}:{_hash(parent, WORKER_LAYER)[:24]}"
        volume = await log.run(self._worker_volume, log)
        if not await log.run(self._exists, final):
            labels = {LABEL: definition.id, LAYER_LABEL: keys[-1]}
            await log.run(self._finish, parent, final, labels, definition.id)
        await log(f"image {definition.id} ready ({time.monotonic() - started:.1f} s): {final}")
        return DockerImage(definition.id, final, volume)

    def _finish(self, parent: str, final: str, labels: dict[str, str], image: str) -> None:
        """The image's last layer: its Python's version checked (that container committed with
        the worker's environment, so no file changes), or an ImageBuildError saying why not."""
        import docker.errors

        probe = "import sys; print('%d.%d' % sys.version_info[:2])"
        try:
            container = self.client.containers.create(
                parent, entrypoint=["python3", "-B", "-c", probe], network_mode="none"
            )
        except docker.errors.APIError as exc:
            raise ImageBuildError(f"image {image}: {exc.explanation or exc}") from None
        try:
            container.start()
            code = int(container.wait(timeout=120).get("StatusCode", -1))
            version = bytes(container.logs(stderr=False)).decode().strip() if code == 0 else ""
            if version != python_minor():
                raise ImageBuildError(
                    f"image {image} has Python {version or '(python3 not found)'}, but the "
                    f"kernel and this runner run Python {python_minor()}: pickles do not cross "
                    f"minor versions. Start from an image with Python {python_minor()} "
                    "(Image.debian_slim(), or a registry image of that version)"
                )
            label = " ".join(f"{key}={json.dumps(value)}" for key, value in labels.items())
            repository, tag = final.split(":", 1)
            changes = [f'ENV PYTHONPATH="{SITE}:{SOURCES}"', f"WORKDIR {WORKDIR}", f"LABEL {label}"]
            container.commit(repository, tag, changes=changes)
        finally:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)

    def _worker_volume(self, log: _Log) -> str:
        """A docker volume holding the worker's files, compiled (made once per runner
        version, from an image of them); every container mounts it read-only at `SITE`."""
        import docker.errors

        name = f"nbremote-worker-{worker_key()[:24]}"
        with contextlib.suppress(docker.errors.NotFound):
            self.client.volumes.get(name)
            return name
        tag = f"{WORKER_REPOSITORY}:{worker_key()[:24]}"
        if not self._exists(tag):
            log.threadsafe("building the worker's files (once)")
            try:
                base = ensure_base(self.client, log.threadsafe)
            except BaseImageError as exc:
                raise ImageBuildError(str(exc)) from None
            self._docker_build(worker_context(base), tag, log, "the worker's files")
        # A new volume mounted where an image has files is filled with them, by the daemon.
        mount = {name: {"bind": SITE, "mode": "rw"}}
        self.client.containers.run(tag, ["true"], volumes=mount, remove=True, network_mode="none")
        return name

    def _unrecorded(self, definition: Definition, key: str) -> bool:
        """Whether a registered image's layer is missing from the registry's cache."""
        if self.images is None or definition.id == "default":
            return False
        return not (self.images.layers / key / "layer.json").exists()

    def _record(self, key: str, step: ImageStep, parent: str, seconds: float) -> None:
        """The layer in the registry's cache (`Images` lists and prunes it): what it adds."""
        assert self.images is not None
        size = int(self.client.images.get(f"{LAYER_REPOSITORY}:{key}").attrs["Size"])
        if parent:
            size -= int(self.client.images.get(parent).attrs["Size"])
        folder = self.images.layers / key
        folder.mkdir(parents=True, exist_ok=True)
        layer = {"step": step.describe(), "bytes": max(size, 0), "build_seconds": seconds}
        (folder / "layer.json").write_text(json.dumps(layer | {"built_at": time.time()}))

    def delete(self, key: str) -> None:
        """The registry deleted layer ``key``: its image goes, and the images built on it as
        their last step (those a running container uses stay until it ends)."""
        import docker.errors

        doomed = [f"{LAYER_REPOSITORY}:{key}"]
        for image in self.client.images.list(filters={"label": f"{LAYER_LABEL}={key}"}):
            doomed += [tag for tag in image.tags if tag.startswith(IMAGE_REPOSITORY)]
        for tag in doomed:
            with contextlib.suppress(docker.errors.APIError):
                self.client.images.remove(tag, noprune=False)
        self._ready = {k: v for k, v in self._ready.items() if v.tag not in doomed}

    def _blobs(self) -> Path | None:
        return self.images.blobs if self.images is not None else None

    def _exists(self, tag: str) -> bool:
        import docker.errors

        try:
            self.client.images.get(tag)
            return True
        except docker.errors.ImageNotFound:
            return False

    def _base(self, step: ImageStep, log: _Log) -> str:
        """The base step's image id: debian_slim's, a registry image or a Dockerfile's."""
        import docker.errors

        if step.kind == "debian_slim":
            try:
                return str(self.client.images.get(ensure_base(self.client, log.threadsafe)).id)
            except BaseImageError as exc:
                raise ImageBuildError(str(exc)) from None
        if step.kind == "from_registry":
            ref = step.options["tag"]
            try:
                return str(self.client.images.get(ref).id)
            except docker.errors.ImageNotFound:
                pass
            log.threadsafe(f"pulling {ref}")
            try:
                return str(self.client.images.pull(ref).id)
            except docker.errors.APIError as exc:
                raise ImageBuildError(
                    f"Image.from_registry({ref!r}): pulling it failed: "
                    f"{exc.explanation or exc}. Check the name, or pull or build it on the "
                    "runner's host (docker pull / docker tag) so that a local image has that name"
                ) from None
        dockerfile = step.options["dockerfile"]
        tag = f"{LAYER_REPOSITORY}:df-{_hash(dockerfile)}"
        if not self._exists(tag):
            files = {"Dockerfile": dockerfile.encode()}
            self._docker_build(files, tag, log, "Image.from_dockerfile()")
        return str(self.client.images.get(tag).id)

    def _docker_build(self, files: dict[str, bytes], tag: str, log: _Log, what: str) -> None:
        """``docker build`` of a context (file name -> content), its output to the log."""
        import docker.errors

        tail: list[str] = []
        try:
            stream = self.client.api.build(
                fileobj=tar(files),
                custom_context=True,
                tag=tag,
                rm=True,
                forcerm=True,
                decode=True,
                network_mode="host",
                labels={LABEL: "layer"},
            )
            for chunk in stream:
                if "error" in chunk:
                    raise ImageBuildError(
                        f"{what} failed: {chunk['error'].strip()}\n" + "\n".join(tail[-15:])
                    )
                for line in str(chunk.get("stream", "")).splitlines():
                    if line.strip():
                        tail.append(line)
                        log.threadsafe(f"    {line}")
        except docker.errors.APIError as exc:
            raise ImageBuildError(f"{what} failed: {exc.explanation or exc}") from None


class _Log:
    """The build log: to `BUILD_LOG`'s listener (the cell), also from the builder's thread."""

    def __init__(self) -> None:
        self._listener = BUILD_LOG.get()
        self._loop = asyncio.get_running_loop()

    async def __call__(self, line: str) -> None:
        if self._listener is not None:
            await self._listener(line)

    def threadsafe(self, line: str) -> None:
        """A line from a thread of the builder (docker's API blocks)."""
        if self._listener is not None:
            listener = self._listener
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(listener(line)))

    async def run(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in a thread: docker's client blocks."""
        return await self._loop.run_in_executor(None, functools.partial(fn, *args))


def _check_base_python(step: ImageStep) -> None:
    """A debian_slim of another Python minor than the kernel's is refused before anything."""
    wanted = step.options.get("python_version") if step.kind == "debian_slim" else None
    if wanted and ".".join(wanted.split(".")[:2]) != python_minor():
        raise ImageBuildError(
            f"Image.debian_slim(python_version={wanted!r}): the kernel and this runner run "
            f"Python {python_minor()}, and pickles do not cross minor versions; use "
            f"python_version={python_minor()!r} (or leave it out)"
        )


def _hash(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]
