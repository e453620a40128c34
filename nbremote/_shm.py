"""Big buffers through shared memory, when both ends of a frame are on one machine.

Sending 256 MiB over two loopback sockets (kernel -> runner -> worker) copies it four times.
When the sender knows that the receiver shares its machine (same boot id) and can write to the
runner's shared-memory folder, it writes each buffer of at least `THRESHOLD` bytes into a file
there instead, and the frame carries the file's name. The receiver maps the file copy-on-write
(so an array rebuilt on it is writable and private) and unlinks it at once, so the memory is
freed when the array goes. The runner relays such frames without touching the data.

Standard library only: the worker imports this module.
"""

from __future__ import annotations

import mmap
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

THRESHOLD = 1 << 20
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
SHM_ROOT = Path("/dev/shm")


def host_id() -> str | None:
    """This machine's identity for this boot (None where Linux does not tell it)."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return None


def create_dir(owner: str) -> str | None:
    """A private folder in /dev/shm for one runner's frames; None if there is no /dev/shm."""
    if not SHM_ROOT.is_dir() or host_id() is None:
        return None
    path = SHM_ROOT / f"nbremote-{os.getuid()}-{owner}"
    path.mkdir(mode=0o700, exist_ok=True)
    return str(path)


def usable(directory: str | None, runner_host: str | None) -> str | None:
    """``directory`` if this process shares the runner's machine and may write there."""
    same_host = runner_host is not None and runner_host == host_id()
    return directory if directory and same_host and os.access(directory, os.W_OK) else None


def _write(path: str, buffer: Any) -> None:
    view = memoryview(buffer).cast("B")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        written = 0
        while written < view.nbytes:
            written += os.write(fd, view[written:])
    finally:
        os.close(fd)


def externalize(
    header: dict[str, Any], buffers: Sequence[Any], directory: str | None
) -> tuple[dict[str, Any], list[Any]]:
    """Move the big buffers of a frame into files of ``directory`` (if given)."""
    if directory is None or all(memoryview(b).nbytes < THRESHOLD for b in buffers):
        return header, list(buffers)
    moved, kept = [], list(buffers)
    for index, buffer in enumerate(buffers):
        if memoryview(buffer).nbytes >= THRESHOLD:
            path = os.path.join(directory, uuid.uuid4().hex)
            _write(path, buffer)
            moved.append([index, path])
            kept[index] = b""
    return {**header, "shm": moved}, kept


def _map(path: str) -> mmap.mmap:
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        mapped = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
        os.unlink(path)
    return mapped


def internalize(header: dict[str, Any], buffers: list[Any]) -> None:
    """Put the mapped files of a received frame back in place of their buffers."""
    for index, path in header.pop("shm", ()):
        buffers[index] = _map(path)
