"""The docker backend's images: an `nr.Image` chain built as Docker images, one per step.

Each step is one ``docker build`` from its parent, tagged ``nbremote/layer:<key>`` where the key
hashes the base image's id and the step's layer id (its content and its parents'): a built step
is found by its tag, so a changed step rebuilds that step and those after it, nothing before.
The worker's own needs (the runner's ``nbremote``/``nbremote_runner`` code and the packages the
worker imports, copied from the runner's environment) come last, as one more layer, and the
result is tagged ``nbremote/img:<hash>``. Before that layer, the image's Python is asked its
version: a minor version other than the runner's (the kernel's) is refused, since pickles and
the copied packages do not cross it.

Builds use the host's network (the daemon has no bridge); workers run without one.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib.metadata
import io
import json
import re
import shlex
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbremote.wire.images import ImageStep, layer_ids

from ..image_build import WORKER_NEEDS, code_dirs
from ..image_types import Definition, ImageBuildError
from ..images import BUILD_LOG, Images
from .docker_base import BaseImageError, base_tag, ensure_base, python_minor

LAYER_REPOSITORY = "nbremote/layer"
IMAGE_REPOSITORY = "nbremote/img"
SITE = "/opt/nbremote/site"  # the worker's code and packages (on PYTHONPATH)
SOURCES = "/opt/nbremote/src"  # add_local_python_source modules (on PYTHONPATH)
WORKDIR = "/root"  # where the worker starts, as Modal's containers do
LABEL = "nbremote.image"
# Beyond the worker's own: what code in a container needs to use nbremote's API there
# (nr.Volume.commit(), nr.Dict), as it may on the process backend.
CLIENT_NEEDS = ("pydantic",)


@dataclass(frozen=True)
class DockerImage:
    """A built image as a container needs it."""

    id: str  # the registry's image id (im-...), or "default"
    tag: str


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

    async def _build(self, definition: Definition) -> DockerImage:
        log = _Log()
        base_id = await log.run(self._base, definition.steps[0], log)
        parent = ""
        for number, (step, layer) in enumerate(
            zip(definition.steps, layer_ids(definition.steps), strict=True), 1
        ):
            key = _hash(base_id, layer)
            tag = f"{LAYER_REPOSITORY}:{key}"
            where = f"step {number}/{len(definition.steps)}"
            if await log.run(self._exists, tag):
                await log(f"{where} cached: {step.describe()}")
            elif number == 1:
                await log(f"{where} {step.describe()}")
                await log.run(self.client.api.tag, base_id, LAYER_REPOSITORY, key)
            else:
                await log(f"{where} {step.describe()}")
                context = _context(parent, step, self._blobs())
                await log.run(self._docker_build, context, tag, log, f"{where} ({step.describe()})")
            parent = tag
        worker = _worker_key()
        final = f"{IMAGE_REPOSITORY}:{_hash(parent, worker)[:24]}"
        if not await log.run(self._exists, final):
            version = await log.run(self._python_version, parent)
            if version != python_minor():
                raise ImageBuildError(
                    f"image {definition.id} has Python {version or '(none found)'}, but the "
                    f"kernel and this runner run Python {python_minor()}: pickles do not cross "
                    f"minor versions. Start from an image with Python {python_minor()} "
                    f"(Image.debian_slim(), or a registry image of that version)"
                )
            await log("adding the worker's packages")
            labels = {LABEL: definition.id}
            context = _worker_context(parent, labels)
            await log.run(self._docker_build, context, final, log, "the worker's layer")
        await log(f"image {definition.id} ready: {final}")
        return DockerImage(definition.id, final)

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
            wanted = step.options.get("python_version", python_minor())
            if ".".join(wanted.split(".")[:2]) != python_minor():
                raise ImageBuildError(
                    f"Image.debian_slim(python_version={wanted!r}): the kernel and this runner "
                    f"run Python {python_minor()}, and pickles do not cross minor versions; "
                    f"use python_version={python_minor()!r} (or leave it out)"
                )
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
                fileobj=_tar(files),
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

    def _python_version(self, tag: str) -> str:
        """The image's ``python3`` major.minor ("" if it has none)."""
        import docker.errors

        probe = "import sys; print('%d.%d' % sys.version_info[:2])"
        try:
            out = self.client.containers.run(
                tag, entrypoint=["python3", "-c", probe], network_mode="none", remove=True
            )
        except docker.errors.DockerException:
            return ""
        return bytes(out).decode().strip()


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


def _hash(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _context(parent: str, step: ImageStep, blobs: Path | None) -> dict[str, bytes]:
    """The build context of one step: its Dockerfile and the files it copies."""
    lines = [f"FROM {parent}"]
    files: dict[str, bytes] = {}
    kind = step.kind
    if kind in ("pip_install", "uv_pip_install"):
        lines.append(_run(_pip(step, step.args)))
    elif kind == "pip_install_from_requirements":
        files["requirements.txt"] = step.options["requirements"].encode()
        lines.append("COPY requirements.txt /tmp/nbremote-requirements.txt")
        lines.append(_run(_pip(step, ["-r", "/tmp/nbremote-requirements.txt"])))
    elif kind == "run_commands":
        lines.append(_run("set -e\n" + "\n".join(step.args)))
    elif kind == "apt_install":
        packages = " ".join(shlex.quote(p) for p in step.args)
        lines.append(
            _run(
                "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
                f"--no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*"
            )
        )
    elif kind == "env":
        for key, value in step.options.items():
            lines.append(f"ENV {key}={json.dumps(value)}")
    elif kind in ("add_local_python_source", "add_local_dir"):
        target = SOURCES if kind == "add_local_python_source" else _remote_path(step)
        for rel, sha in step.files.items():
            if blobs is None or not re.fullmatch(r"[0-9a-f]{64}", sha):
                raise ImageBuildError(f"{kind}: no content for {rel!r}")
            files[f"files/{rel}"] = (blobs / sha).read_bytes()
        if files:
            lines.append(f"COPY files/ {json.dumps(target + '/')}")
    files["Dockerfile"] = ("\n".join(lines) + "\n").encode()
    return files


def _run(script: str) -> str:
    """A RUN line in exec form: the script as written, no Dockerfile quoting rules."""
    return "RUN " + json.dumps(["/bin/sh", "-c", script])


def _pip(step: ImageStep, args: list[str]) -> str:
    command = ["python3", "-m", "pip", "install", "--no-cache-dir", "--root-user-action=ignore"]
    if step.options.get("index_url"):
        command += ["--index-url", step.options["index_url"]]
    if step.options.get("extra_index_url"):
        command += ["--extra-index-url", step.options["extra_index_url"]]
    if step.options.get("pre"):
        command.append("--pre")
    command += shlex.split(step.options.get("extra_options", ""))
    return " ".join(shlex.quote(part) for part in [*command, *args])


def _remote_path(step: ImageStep) -> str:
    remote = step.options.get("remote_path", "")
    if ".." in Path(remote).parts:
        raise ImageBuildError(f"add_local_dir(remote_path={remote!r}): '..' is not allowed")
    return remote.rstrip("/") if remote.startswith("/") else f"{WORKDIR}/{remote}".rstrip("/")


def _tar(files: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    buffer.seek(0)
    return buffer


@functools.cache
def _worker_files() -> tuple[tuple[str, Path], ...]:
    """What the worker imports, as (path under `SITE`, file on the runner): the runner's code,
    and the installed files of `WORKER_NEEDS` and everything they require."""
    found: list[tuple[str, Path]] = []
    for name, folder in code_dirs().items():
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                found.append((f"{name}/{path.relative_to(folder)}", path))
    for dist in _closure((*WORKER_NEEDS, *CLIENT_NEEDS)):
        for file in dist.files or ():
            rel = str(file)
            if rel.startswith("..") or "__pycache__" in rel or rel.endswith(".pth"):
                continue  # scripts outside site-packages, bytecode made anew, link files
            found.append((rel, Path(str(dist.locate_file(file)))))
    return tuple(found)


def _closure(names: tuple[str, ...]) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``names`` need (their non-extra requirements, recursively)."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = re.split(r"[ ;<>=!~\[(]", todo.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if not name or name in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a requirement for another platform or Python
        seen[name] = dist
        todo.extend(r for r in dist.requires or () if "extra ==" not in r)
    return list(seen.values())


@functools.cache
def _worker_key() -> str:
    """A hash of the worker layer's content (names, sizes, modification times)."""
    digest = hashlib.sha256()
    for rel, path in _worker_files():
        stat = path.stat()
        digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _worker_context(parent: str, labels: dict[str, str]) -> dict[str, bytes]:
    """The last layer's context: the worker's files under `SITE`, compiled there."""
    files = {f"site/{rel}": path.read_bytes() for rel, path in _worker_files()}
    label = " ".join(f"{key}={json.dumps(value)}" for key, value in labels.items())
    dockerfile = [
        f"FROM {parent}",
        f"COPY site/ {SITE}/",
        f'ENV PYTHONPATH="{SITE}:{SOURCES}"',
        # Compiled now, once: a cold container then imports IPython from bytecode.
        _run(f"python3 -m compileall -q -j 0 {SITE} >/dev/null || true"),
        f"WORKDIR {WORKDIR}",
        f"LABEL {label}",
    ]
    files["Dockerfile"] = ("\n".join(dockerfile) + "\n").encode()
    return files


def image_tags(client: Any) -> Iterator[Any]:
    """nbremote's images in the daemon (for listings and prunes)."""
    for repository in (IMAGE_REPOSITORY, LAYER_REPOSITORY):
        yield from client.images.list(name=repository)


__all__ = ["DockerImage", "DockerImages", "base_tag", "image_tags"]
