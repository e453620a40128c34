"""The docker backend's base image for ``Image.debian_slim()``: Debian with the runner's Python.

An image's worker runs the image's own Python, and pickles cross between the kernel and it, so
the Python minor version must be the kernel's (the runner's). ``debian_slim`` therefore starts
from ``nbremote/base:py<major.minor>``: a local image if there is one, else one built here from
a minimal Debian (``mmdebstrap``, or ``debootstrap``) with the runner's own Python copied in at
its own path (its shared libraries found with ``ldd`` and their Debian packages included), else
``python:<major.minor>-slim`` pulled from a registry. The local build needs no registry (CI's
case) and takes about a minute, once: the tag is the cache.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BASE_REPOSITORY = "nbremote/base"
DEBIAN_SUITE = "bookworm"
# Never copied into the base: the runner's packages (the worker's come as a layer of their own)
# and CPython's own test suite.
EXCLUDED = ("site-packages", "test", "idlelib", "tkinter", "turtledemo", "_tkinter*")


class BaseImageError(RuntimeError):
    """The base image could not be found, built or pulled; the message says what to do."""


def python_minor() -> str:
    """The runner's (and its kernels') Python major.minor."""
    return ".".join(platform.python_version_tuple()[:2])


def base_tag() -> str:
    """The local tag of the ``debian_slim`` base for the runner's Python."""
    return f"{BASE_REPOSITORY}:py{python_minor()}"


def ensure_base(client: Any, log: Any = print) -> str:
    """``base_tag()``, present in the daemon: found, built locally, or pulled (in that order).

    Raises:
        BaseImageError: none of the three worked; the message names each failure.
    """
    import docker.errors

    tag = base_tag()
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    reasons = []
    try:
        build_local_base(client, tag, log)
        return tag
    except BaseImageError as exc:
        reasons.append(f"a local build failed: {exc}")
    slim = f"python:{python_minor()}-slim"
    log(f"pulling {slim} as the base image")
    try:
        client.images.pull(slim).tag(BASE_REPOSITORY, tag.split(":", 1)[1])
        return tag
    except docker.errors.APIError as exc:
        reasons.append(f"pulling {slim} failed: {exc.explanation or exc}")
    raise BaseImageError(
        f"no base image {tag} for Image.debian_slim(): " + "; ".join(reasons) + ". Install "
        "mmdebstrap on the runner's host (root), or make a registry reachable, or tag an image "
        f"with Python {python_minor()} as {tag}"
    )


def build_local_base(client: Any, tag: str, log: Any = print) -> None:
    """Build ``tag`` from a minimal Debian and the runner's Python (see the module docstring).

    Raises:
        BaseImageError: no bootstrapper, not root, or the bootstrap failed (its log's tail).
    """
    tool = shutil.which("mmdebstrap")
    if tool is None:
        raise BaseImageError("mmdebstrap is not installed (apt-get install mmdebstrap)")
    if os.geteuid() != 0:
        raise BaseImageError("building a Debian root file system needs root")
    prefix = Path(sys.base_prefix)
    python = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    packages = sorted({"ca-certificates", *_library_packages(prefix, python)})
    excludes = " ".join(f"--exclude={shlex.quote(name)}" for name in EXCLUDED)
    # The runner's Python at its own path (its libpython is found by that path), on PATH too.
    copy = (
        f"tar -C / {excludes} --exclude=__pycache__/*.opt-*.pyc "
        f'-cf - {shlex.quote(str(prefix).lstrip("/"))} | tar -C "$1" -xf - && '
        f'ln -sf {shlex.quote(str(python))} "$1/usr/local/bin/python3" && '
        f'ln -sf python3 "$1/usr/local/bin/python" && '
        # pip for pip_install steps (the runner's own site-packages stay out)
        'chroot "$1" /usr/local/bin/python3 -m ensurepip --default-pip >/dev/null'
    )
    with tempfile.TemporaryDirectory(prefix="nbremote-base-") as work:
        rootfs = Path(work) / "rootfs.tar"
        command = [
            tool,
            "--variant=minbase",
            f"--include={','.join(packages)}",
            f"--customize-hook={copy}",
            DEBIAN_SUITE,
            str(rootfs),
        ]
        log(f"building base image {tag}: Debian {DEBIAN_SUITE} with Python {python}")
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.splitlines()[-10:])
            raise BaseImageError(f"mmdebstrap exited with code {done.returncode}:\n{tail}")
        repository, version = tag.split(":", 1)
        changes = ['ENV PATH="/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin"']
        client.api.import_image_from_file(
            str(rootfs), repository=repository, tag=version, changes=changes
        )
    log(f"base image {tag} built")


def _library_packages(prefix: Path, python: Path) -> set[str]:
    """The Debian packages of the shared libraries the Python and its extension modules load
    (outside its own prefix): ``ldd`` names the files, ``dpkg -S`` their packages."""
    if shutil.which("dpkg") is None:
        return set()
    dynload = prefix.glob("lib/python*/lib-dynload/*.so")
    objects = [str(python), *(str(p) for p in dynload if not p.name.startswith("_tkinter"))]
    ldd = subprocess.run(["ldd", *objects], capture_output=True, text=True, check=False).stdout
    libraries = {
        match.group(1)
        for match in re.finditer(r"=> (/\S+) \(", ldd)
        if not match.group(1).startswith(str(prefix))
    }
    packages: set[str] = set()
    for library in sorted(libraries):
        owner = subprocess.run(
            ["dpkg", "-S", library], capture_output=True, text=True, check=False
        ).stdout
        if not owner:  # /lib is a link to /usr/lib on Debian 12: dpkg knows one of the names
            alternative = library.removeprefix("/usr") if library.startswith("/usr/") else ""
            owner = subprocess.run(
                ["dpkg", "-S", alternative or f"/usr{library}"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
        if owner:
            packages.add(owner.split(":", 1)[0])
    return packages
