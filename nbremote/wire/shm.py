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

On a leased worker's connection big buffers also carry their digest, and one the worker keeps
already goes by digest alone (`nbremote.wire.held`).

Standard library and xxhash only: the worker imports this module.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import shm_pages
from .held import CAPACITY, HeldBuffers, NotHeld, digest, digests_ahead

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


def big_digests(buffers: Sequence[Any]) -> dict[int, str]:
    """`nbremote.wire.held.digests_ahead` of the buffers that would go through shared memory."""
    return digests_ahead(buffers, THRESHOLD)


def _write(directory: str, buffer: Any) -> str:
    """Put ``buffer`` into a new file of ``directory``; its path."""
    return shm_pages.write(directory, buffer)


def externalize(
    header: dict[str, Any],
    buffers: Sequence[Any],
    directory: str | None,
    held: set[str] | None = None,
    ahead: dict[int, str] | None = None,
) -> tuple[dict[str, Any], list[Any]]:
    """Move the big buffers of a frame into files of ``directory`` (if given).

    With ``held`` (the digests the receiving worker keeps, as far as this side knows), each big
    buffer carries its digest (from ``ahead`` if it was computed already), and one in ``held``
    goes by digest alone; those sent are added.
    """
    if directory is None or all(memoryview(b).nbytes < THRESHOLD for b in buffers):
        return header, list(buffers)
    moved: list[list[Any]] = []
    by_digest: list[list[Any]] = []
    kept = list(buffers)
    for index, buffer in enumerate(buffers):
        size = memoryview(buffer).nbytes
        if size < THRESHOLD:
            continue
        kept[index] = b""
        if held is None:
            moved.append([index, _write(directory, buffer)])
            continue
        known = (ahead or {}).get(index) or digest(buffer)
        if known in held:
            by_digest.append([index, known])
            continue
        moved.append([index, _write(directory, buffer), known])
        if size <= CAPACITY:  # the worker keeps it (once it has checked the digest)
            held.add(known)
    header = {**header, "shm": moved} if moved else dict(header)
    if by_digest:
        header["by_digest"] = by_digest
    return header, kept


def discard(header: dict[str, Any]) -> None:
    """Remove the files ``externalize`` wrote for a frame that was not sent after all."""
    for entry in header.get("shm", ()):
        with contextlib.suppress(OSError):
            os.unlink(entry[1])


def _names(entries: Any, count: int, directory: str | None) -> list[tuple[int, str, str | None]]:
    """The (buffer index, file name, digest or None) of a frame's ``shm`` entries, each checked.

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
    names: dict[int, tuple[str, str | None]] = {}
    for entry in entries:
        index, path, claimed = _entry(entry)
        if type(index) is not int or not 0 <= index < count or index in names:
            raise ShmRefused(f"a frame's 'shm' entry {entry!r} names no buffer of the frame")
        path = path if isinstance(path, str) else ""
        name = os.path.basename(path)
        if not _NAME.fullmatch(name) or os.path.dirname(os.path.realpath(path)) != folder:
            raise ShmRefused(
                f"a frame names the shared-memory file {path!r}, which is not one of "
                f"{directory}: refused (it is left untouched)"
            )
        names[index] = (name, claimed)
    return [(index, name, claimed) for index, (name, claimed) in names.items()]


def _entry(entry: Any) -> tuple[Any, Any, str | None]:
    """An ``shm`` entry's index, path and digest (a digest that is not a string: none)."""
    if isinstance(entry, list) and len(entry) in (2, 3):
        claimed = entry[2] if len(entry) == 3 and isinstance(entry[2], str) else None
        return entry[0], entry[1], claimed
    return None, None, None


def _map(name: str, folder: int, keep: bool = False) -> tuple[mmap.mmap, int | None]:
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
        shm_pages.populate(mapped)
    except BaseException:
        os.close(fd)
        raise
    if not keep:
        os.close(fd)
    os.unlink(name, dir_fd=folder)
    return mapped, fd if keep else None


def internalize(
    header: dict[str, Any],
    buffers: list[Any],
    directory: str | None,
    held: HeldBuffers | None = None,
) -> None:
    """Put the mapped files of a received frame back in place of their buffers.

    Args:
        header: the frame's header; its ``shm`` (and ``by_digest``) entries are taken out.
        buffers: the frame's buffers; those in ``shm`` are replaced by their mapped files.
        directory: the one folder this receiver takes files from (the runner's, as it told this
            process); None where the sender is on another machine.
        held: the files this receiver keeps by digest (a leased worker's): a file that comes
            with its digest is offered to it, and ``by_digest`` entries are mapped from it. None: a
            ``by_digest`` entry is refused.

    Raises:
        ShmRefused: an entry names anything but a file of ``directory`` for an empty buffer, or
            a digest ``held`` does not keep (nothing outside ``directory`` is ever opened or
            removed).
    """
    by_digest = _held_entries(header.pop("by_digest", None), buffers, held)
    if "shm" in header:
        entries = _names(header.pop("shm"), len(buffers), directory)
        if any(memoryview(buffers[index]).nbytes for index, _, _ in entries):
            raise ShmRefused("a frame's 'shm' entry stands for a buffer that arrived with bytes")
        assert directory is not None
        _map_all(entries, buffers, directory, held)
    try:
        for index, claimed in by_digest:
            buffers[index] = held.take(claimed)  # type: ignore[union-attr]
    except (NotHeld, OSError) as exc:
        raise ShmRefused(str(exc)) from exc


def _map_all(
    entries: list[tuple[int, str, str | None]],
    buffers: list[Any],
    directory: str,
    held: HeldBuffers | None,
) -> None:
    folder = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, name, claimed in entries:
            keep = held is not None and claimed is not None
            buffers[index], fd = _map(name, folder, keep)
            if fd is not None and held is not None and claimed is not None:
                held.offer(claimed, fd, len(buffers[index]))
    except OSError as exc:
        raise ShmRefused(f"a shared-memory file of the frame cannot be mapped: {exc}") from exc
    finally:
        os.close(folder)


def _held_entries(entries: Any, buffers: list[Any], held: HeldBuffers | None) -> list[Any]:
    """The (buffer index, digest) of a frame's ``by_digest`` entries, each checked."""
    if entries is None:
        return []
    if held is None:
        raise ShmRefused("a frame names buffers by digest, but this receiver keeps none: refused")
    if not isinstance(entries, list):
        raise ShmRefused(
            f"a frame's 'by_digest' must be a list of [index, digest], not {entries!r}"
        )
    seen: set[int] = set()
    for entry in entries:
        index = entry[0] if isinstance(entry, list) and len(entry) == 2 else None
        if type(index) is not int or not 0 <= index < len(buffers) or index in seen:
            raise ShmRefused(f"a frame's 'by_digest' entry {entry!r} names no buffer of the frame")
        if memoryview(buffers[index]).nbytes:
            raise ShmRefused(
                "a frame's 'by_digest' entry stands for a buffer that arrived with bytes"
            )
        seen.add(index)
    return [tuple(entry) for entry in entries]
