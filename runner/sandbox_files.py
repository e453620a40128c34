"""Files of a sandbox, opened by the runner for ``sb.open()``: beneath the sandbox's folders only.

A path inside the sandbox maps to a host file only under one of the folders the sandbox owns
(its ``/tmp``, its working directory, its volumes' working copies). The runner opens it one
component at a time from that folder, each with ``O_NOFOLLOW``: code in the sandbox may have
put a symlink anywhere in the path (``/tmp/x -> /etc/shadow``, or a folder swapped for a link
while the runner walks it), and no link is ever followed, so no file outside can be reached.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from .errors import ApiError

MAX_FILE = 64 << 20  # bytes of a file read or written whole in one request


def _locate(folders: Mapping[str, Path], path: str) -> tuple[Path, list[str]]:
    """The host folder that holds ``path`` and the components below it."""
    for inside, outside in sorted(folders.items(), key=lambda item: -len(item[0])):
        prefix = inside.rstrip("/")
        if path == prefix or path.startswith(prefix + "/"):
            parts = [p for p in path[len(prefix) :].split("/") if p not in ("", ".")]
            if ".." in parts:
                break
            if parts:
                return outside, parts
    raise ApiError(
        403,
        "PermissionDenied",
        f"{path!r} is not a file the sandbox owns: sb.open() reaches files under "
        f"{', '.join(sorted(folders))} only",
    )


def _open(folders: Mapping[str, Path], path: str, flags: int) -> int:
    root, parts = _locate(folders, path)
    nofollow = os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | nofollow)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=fd)
            os.close(fd)
            fd = inner
        # Non-blocking: a FIFO put there would hold the runner's thread until someone writes.
        found = os.open(parts[-1], flags | nofollow | os.O_NONBLOCK, 0o644, dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(found).st_mode):
        os.close(found)
        raise ApiError(409, "FileError", f"{path!r} is not a regular file")
    return found


def _refused(path: str, exc: OSError) -> ApiError:
    if isinstance(exc, FileNotFoundError):
        return ApiError(404, "NotFound", f"no file {path!r} in the sandbox")
    if exc.errno in (getattr(os, "ELOOP", 40), 20):  # a symlink, or a file where a folder is
        return ApiError(
            403,
            "PermissionDenied",
            f"{path!r}: a symbolic link, or a file where a folder should be, is on the way "
            "(sb.open() follows no links)",
        )
    return ApiError(409, "FileError", f"{path!r}: {exc.strerror or exc}")


def read(folders: Mapping[str, Path], path: str) -> bytes:
    """The whole file at ``path`` in the sandbox."""
    try:
        fd = _open(folders, path, os.O_RDONLY)
    except OSError as exc:
        raise _refused(path, exc) from None
    with os.fdopen(fd, "rb") as file:
        data = file.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise ApiError(413, "TooLarge", f"{path!r} is over {MAX_FILE >> 20} MiB: read it with exec")
    return data


def write(folders: Mapping[str, Path], path: str, data: bytes, append: bool) -> None:
    """Write ``data`` to ``path`` in the sandbox (created, or truncated unless ``append``)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = _open(folders, path, flags)
    except OSError as exc:
        raise _refused(path, exc) from None
    with os.fdopen(fd, "wb") as file:
        file.write(data)
