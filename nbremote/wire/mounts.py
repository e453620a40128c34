"""Mount rules: where a volume may be mounted in a worker.

Checked twice: by the client, so a user hears of a bad path before anything is sent, and by the
runner's sandbox, which trusts no client. Standard library only: volumes are unpickled in workers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

SYSTEM_PATHS = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
    "/sbin", "/sys", "/tmp", "/usr", "/var",
)  # fmt: skip


def check_mount_paths(paths: Iterable[str]) -> None:
    """Refuse mount paths that are not plain absolute paths, are system paths, or clash.

    Raises:
        ValueError: naming the path and a way out.
    """
    paths = list(paths)
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"mount path {path!r} must be an absolute path, such as /models")
        parts = path.split("/")[1:]
        if path == "/" or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"mount path {path!r} must be a plain absolute path, such as /models")
        if any(path == system or path.startswith(system + "/") for system in SYSTEM_PATHS):
            raise ValueError(
                f"mount path {path} is a system path; mount at a path of its own, such as /models"
            )
    ordered = sorted(paths)
    for first, second in itertools.pairwise(ordered):
        if second == first or second.startswith(first + "/"):
            raise ValueError(f"mount paths {first} and {second} clash; mount one volume per path")
