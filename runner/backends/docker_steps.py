"""What one ``docker build`` of the docker backend gets: a step's Dockerfile and context, and
the worker's own files (the runner's code and the packages the worker imports, copied from the
runner's environment) with the Dockerfile that compiles them once.

A step's Dockerfile says exactly what the step does (``RUN`` in exec form, so no Dockerfile
quoting rule touches a command; ``COPY`` of the files a step ships, from the registry's blobs).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import io
import json
import re
import shlex
import tarfile
from pathlib import Path

from nbremote.wire.images import ImageStep

from ..image_build import WORKER_NEEDS, code_dirs
from ..image_types import ImageBuildError

SITE = "/opt/nbremote/site"  # the worker's code and packages (on PYTHONPATH)
SOURCES = "/opt/nbremote/src"  # add_local_python_source modules (on PYTHONPATH)
WORKDIR = "/root"  # where the worker starts, as Modal's containers do
# Beyond the worker's own: what code in a container needs to use nbremote's API there
# (nr.Volume.commit(), nr.Dict), as it may on the process backend.
CLIENT_NEEDS = ("pydantic",)


def step_context(parent: str, step: ImageStep, blobs: Path | None) -> dict[str, bytes]:
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


def tar(files: dict[str, bytes]) -> io.BytesIO:
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
def worker_files() -> tuple[tuple[str, Path], ...]:
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
            if rel.startswith("..") or "__pycache__" in rel or rel.endswith((".pth", ".pyi")):
                continue  # scripts outside site-packages, bytecode made anew, link files, stubs
            if "/third_party/" in rel:  # jedi's typeshed: completions, never the worker's
                continue
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
def worker_key() -> str:
    """A hash of the worker layer's content (names, sizes, modification times)."""
    digest = hashlib.sha256()
    for rel, path in worker_files():
        stat = path.stat()
        digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def worker_context(base: str) -> dict[str, bytes]:
    """The worker image's context: its files under `SITE`, compiled there once (checked by
    hash, not by time: a copy keeps them valid)."""
    files = {f"site/{rel}": path.read_bytes() for rel, path in worker_files()}
    dockerfile = [
        f"FROM {base}",
        f"COPY site/ {SITE}/",
        _run(
            "python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash "
            f"{SITE} >/dev/null || true"
        ),
    ]
    files["Dockerfile"] = ("\n".join(dockerfile) + "\n").encode()
    return files
