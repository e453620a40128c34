"""Folders mounted at chosen paths in a worker, with bubblewrap (``bwrap``).

The sandbox's root is bwrap's own empty tmpfs; each top-level entry of the host's root is bound
into it one by one (read-write, devices included), and each mount on top. So a mount point like
``/models`` is made inside the tmpfs and never on the host, and the worker sees the host as it
is (same users, same /tmp, same GPUs) plus its mounts. No pid namespace: the worker's pid is its
host pid, which the runner signals directly (bwrap does not forward signals).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from nbremote.volume import check_mount_paths

INSTALL_HINT = "install bubblewrap (`apt-get install -y bubblewrap`, or your system's package)"


class SandboxError(Exception):
    """Mounts that cannot be made; the message says why and what to do."""


def check_host_paths(paths: list[str]) -> None:
    """Refuse mount paths that would hide a host folder's top level, or that bwrap would have
    to create inside a folder bound from the host (which would create it on the host).

    Raises:
        SandboxError: naming the path and a way out.
    """
    try:
        check_mount_paths(paths)
    except ValueError as exc:
        raise SandboxError(str(exc)) from None
    for path in paths:
        top = "/" + path.strip("/").split("/")[0]
        if top == path and os.path.lexists(top):
            raise SandboxError(
                f"mount path {path}: the host's {top} would be hidden from the worker; "
                "mount at a path of its own, such as /models or /data"
            )
        if top != path and os.path.lexists(top) and not os.path.isdir(path):
            raise SandboxError(
                f"mount path {path}: it is inside the host's {top}, where it does not exist, and "
                "the runner will not create folders on the host; mount at a path of its own, "
                "such as /models or /data"
            )


def bwrap_command(command: list[str], mounts: Mapping[str, Path], cwd: Path) -> list[str]:
    """``command`` run under bwrap with ``mounts`` (mount path -> host folder).

    Raises:
        SandboxError: bwrap is not installed, or a mount path is refused.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError(
            f"mounting volumes needs bubblewrap (bwrap), which is missing: {INSTALL_HINT}"
        )
    check_host_paths(list(mounts))
    args = [bwrap, "--die-with-parent", "--tmpfs", "/"]
    for entry in sorted(os.scandir("/"), key=lambda entry: entry.name):
        path = f"/{entry.name}"
        if path in ("/dev", "/proc"):
            continue
        if entry.is_symlink():
            args += ["--symlink", os.readlink(path), path]
        elif entry.is_dir(follow_symlinks=False):
            args += ["--dev-bind", path, path]
        else:
            args += ["--bind", path, path]
    args += ["--dev-bind", "/dev", "/dev", "--dev-bind", "/proc", "/proc"]
    for path, source in sorted(mounts.items()):
        args += ["--bind", str(source), path]
    return [*args, "--chdir", str(cwd), "--", *command]
