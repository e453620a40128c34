"""Big buffers through shared memory, when both ends of a frame are on one machine.

Sending 256 MiB over two loopback sockets (kernel -> runner -> worker) copies it four times.
When the sender knows that the receiver shares its machine (same boot id) and can write to the
runner's shared-memory folder, it writes each buffer of at least `THRESHOLD` bytes into a file
there instead, and the frame carries the file's name. The receiver maps the file copy-on-write
(so an array rebuilt on it is writable and private) and unlinks it at once, so the memory is
freed when the array goes. The runner relays such frames without touching the data.

A receiver maps and unlinks only what it can prove was meant for it: names of the form the
sender makes (`uuid.uuid4().hex`), in the one folder it was told for this runner, never a
symlink, each in place of an empty buffer of the frame. Anything else would let the other side
(a worker runs anyone's code) make it map and delete any file it may touch.

Standard library only: the worker imports this module.
"""

from __future__ import annotations

import mmap
import os
import re
import stat
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

THRESHOLD = 1 << 20
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
SHM_ROOT = Path("/dev/shm")
_NAME = re.compile(r"[0-9a-f]{32}")  # uuid4().hex, as `externalize` names files


class ShmRefused(ValueError):
    """A frame names a shared-memory file that this receiver may not take."""


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


def _names(entries: Any, count: int, directory: str | None) -> list[tuple[int, str]]:
    """The (buffer index, file name) pairs of a frame's ``shm`` entries, each checked.

    Raises:
        ShmRefused: an entry that is not one of ``directory``'s files for an empty buffer.
    """
    if directory is None:
        raise ShmRefused(
            "a frame names shared-memory files, but its sender does not share this machine's "
            "shared-memory folder with this process: refused"
        )
    if not isinstance(entries, list):
        raise ShmRefused(f"a frame's 'shm' must be a list of [index, path], not {entries!r}")
    folder = os.path.realpath(directory)
    names: dict[int, str] = {}
    for entry in entries:
        index, path = entry if isinstance(entry, list) and len(entry) == 2 else (None, None)
        if type(index) is not int or not 0 <= index < count or index in names:
            raise ShmRefused(f"a frame's 'shm' entry {entry!r} names no buffer of the frame")
        path = path if isinstance(path, str) else ""
        name = os.path.basename(path)
        if not _NAME.fullmatch(name) or os.path.dirname(os.path.realpath(path)) != folder:
            raise ShmRefused(
                f"a frame names the shared-memory file {path!r}, which is not one of "
                f"{directory}: refused (it is left untouched)"
            )
        names[index] = name
    return list(names.items())


def _map(name: str, folder: int) -> mmap.mmap:
    # O_NOFOLLOW and the folder's descriptor: the file opened is the folder's own, not a link.
    # O_NONBLOCK: a FIFO put there in place of a file does not hang the open.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(name, flags, dir_fd=folder)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
            raise ShmRefused(f"the shared-memory file {name!r} is not a file of bytes: refused")
        mapped = mmap.mmap(
            fd, info.st_size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE
        )
    finally:
        os.close(fd)
    os.unlink(name, dir_fd=folder)
    return mapped


def internalize(header: dict[str, Any], buffers: list[Any], directory: str | None) -> None:
    """Put the mapped files of a received frame back in place of their buffers.

    Args:
        header: the frame's header; its ``shm`` entry is taken out.
        buffers: the frame's buffers; those in ``shm`` are replaced by their mapped files.
        directory: the one folder this receiver takes files from (the runner's, as it told this
            process); None where the sender is on another machine.

    Raises:
        ShmRefused: an entry names anything but a file of ``directory`` for an empty buffer
            (nothing outside ``directory`` is ever opened or removed).
    """
    if "shm" not in header:
        return
    entries = _names(header.pop("shm"), len(buffers), directory)
    if any(memoryview(buffers[index]).nbytes for index, _ in entries):
        raise ShmRefused("a frame's 'shm' entry stands for a buffer that arrived with bytes")
    assert directory is not None
    folder = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, name in entries:
            buffers[index] = _map(name, folder)
    except OSError as exc:
        raise ShmRefused(f"a shared-memory file of the frame cannot be mapped: {exc}") from exc
    finally:
        os.close(folder)
