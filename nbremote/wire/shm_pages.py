"""Shared-memory files written at the speed of one copy, and mapped without a fault per page.

Besides the copy itself, two costs of the kernel's dominated W3 (256 MiB, this 2-core VM, load
about 5): giving a new /dev/shm file its pages (`os.write` takes each 4 KiB page through the page
cache, allocating and zeroing it: 200-270 ms, where a memcpy into memory that already has its
pages takes 55 ms), and, on the receiving side, a page fault per page as the array is first read
(a sum over a fresh mapping: 120-150 ms, against 40-55 ms over the sender's own array).

So a sender keeps one *spare* file whose pages are already there (made on a thread after each big
write, while the receiver works), and the next big buffer goes into it with one memcpy through a
shared mapping; and a receiver fills its mapping's page table in one call
(``MADV_POPULATE_READ``: read-only entries for the file's pages, so a write into the private
mapping still copies only the page it writes).

Standard library only: the worker imports this module.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
import uuid
from typing import Any

MADV_POPULATE_READ = 22  # Linux 5.14; not named by Python 3.11's mmap
SPARE_MIN = 16 << 20  # smaller buffers are written as they come
SPARE_MAX = 1 << 30  # the most this process keeps allocated ahead


def populate(mapped: mmap.mmap) -> None:
    """Map all of a file mapping's pages now, read-only, in one system call."""
    with contextlib.suppress(OSError, ValueError):  # an older kernel: they fault in as read
        mapped.madvise(MADV_POPULATE_READ)


class _Spare:
    """The one file of allocated pages this process keeps for its next big buffer: unnamed
    (``O_TMPFILE``), so nothing is left in the folder, and its memory goes with the process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.file: _File | None = None
        self.making = False
        self.broken = False  # a spare could not be named here: none is made

    def take(self, directory: str, size: int) -> _File | None:
        """The spare if it fits a buffer of ``size`` bytes for ``directory``."""
        with self.lock:
            spare = self.file
            if spare is None or spare.folder != directory or not size <= spare.size <= 2 * size:
                return None
            self.file = None
            return spare

    def make_later(self, directory: str, size: int) -> None:
        """Allocate a spare of ``size`` bytes on a thread, unless one is there or coming."""
        with self.lock:
            if self.broken or self.making or (self.file is not None and self.file.size >= size):
                return
            self.making = True
        threading.Thread(target=self._make, args=(directory, size), daemon=True).start()

    def _make(self, directory: str, size: int) -> None:
        made: _File | None = None
        fd = None
        try:
            fd = os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
            os.posix_fallocate(fd, 0, size)
            # Mapped now, page table and all (that costs ~4x the copy on this VM's 4 KiB pages).
            made = _File(directory, fd, size, mmap.mmap(fd, size, flags=_SHARED))
        except OSError:  # no O_TMPFILE here, or the folder is full: no spare
            if fd is not None:
                os.close(fd)
        with self.lock:
            old, self.making = self.file, False
            if made is not None:
                self.file = made
        if old is not None and made is not None:
            old.close()


_SHARED = mmap.MAP_SHARED | mmap.MAP_POPULATE


class _File:
    """An unnamed file with its pages allocated, and a shared mapping of all of it."""

    def __init__(self, folder: str, fd: int, size: int, mapped: mmap.mmap) -> None:
        self.folder, self.fd, self.size, self.mapped = folder, fd, size, mapped

    def close(self) -> None:
        self.mapped.close()
        os.close(self.fd)


_SPARE = _Spare()


def _fill_spare(spare: _File, path: str, view: memoryview) -> bool:
    """Fill the spare file with ``view`` (one memcpy) and give it ``path`` as its name (False:
    it cannot be named here, no /proc say; the caller writes a file of its own)."""
    try:
        spare.mapped[: view.nbytes] = view
        spare.mapped.close()
        if spare.size != view.nbytes:
            os.ftruncate(spare.fd, view.nbytes)
        _name(spare.fd, path)
    except OSError:
        _SPARE.broken = True  # not again: the background work would be for nothing
        return False
    finally:
        spare.close()
    return True


def _name(fd: int, path: str) -> None:
    """Give the unnamed file ``fd`` the name ``path`` (as open(2) says, through /proc; else
    by the descriptor itself, where /proc is another device, as in some sandboxes)."""
    try:
        os.link(f"/proc/self/fd/{fd}", path)
        return
    except OSError as exc:
        failure = exc
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.linkat(fd, b"", _AT_FDCWD, os.fsencode(path), _AT_EMPTY_PATH) != 0:
        raise failure


_AT_FDCWD, _AT_EMPTY_PATH = -100, 0x1000


def _write(path: str, view: memoryview) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        written = 0
        while written < view.nbytes:
            written += os.write(fd, view[written:])
    finally:
        os.close(fd)


def write(directory: str, buffer: Any) -> str:
    """Put ``buffer`` into a new file of ``directory`` named as receivers expect; its path."""
    view = memoryview(buffer).cast("B")
    path = os.path.join(directory, uuid.uuid4().hex)
    spare = _SPARE.take(directory, view.nbytes) if view.nbytes >= SPARE_MIN else None
    if spare is None or not _fill_spare(spare, path, view):
        _write(path, view)
    if SPARE_MIN <= view.nbytes <= SPARE_MAX:
        _SPARE.make_later(directory, view.nbytes)
    return path
