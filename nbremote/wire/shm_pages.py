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

import atexit
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
    """The one file of allocated pages this process keeps for its next big buffer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.file: tuple[str, str, int] | None = None  # folder, path, size
        self.making = False

    def take(self, directory: str, size: int) -> str | None:
        """The spare's path if it fits a buffer of ``size`` bytes for ``directory``."""
        with self.lock:
            if self.file is None:
                return None
            folder, path, spare_size = self.file
            if folder != directory or not size <= spare_size <= 2 * size:
                return None
            self.file = None
            return path

    def make_later(self, directory: str, size: int) -> None:
        """Allocate a spare of ``size`` bytes on a thread, unless one is there or coming."""
        with self.lock:
            if self.making or (self.file is not None and self.file[2] >= size):
                return
            self.making = True
        threading.Thread(target=self._make, args=(directory, size), daemon=True).start()

    def _make(self, directory: str, size: int) -> None:
        path = os.path.join(directory, uuid.uuid4().hex)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, size)
            finally:
                os.close(fd)
        except OSError:  # the folder is gone or full: no spare
            with contextlib.suppress(OSError):
                os.unlink(path)
            with self.lock:
                self.making = False
            return
        with self.lock:
            old, self.file, self.making = self.file, (directory, path, size), False
        if old is not None:
            with contextlib.suppress(OSError):
                os.unlink(old[1])

    def drop(self) -> None:
        """Remove the spare (at exit: its pages are memory)."""
        with self.lock:
            old, self.file = self.file, None
        if old is not None:
            with contextlib.suppress(OSError):
                os.unlink(old[1])


_SPARE = _Spare()
atexit.register(_SPARE.drop)


def _copy_into(path: str, view: memoryview) -> None:
    """Fill the existing file ``path`` (pages allocated) with ``view``, through a mapping."""
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, view.nbytes)
        flags = mmap.MAP_SHARED | mmap.MAP_POPULATE
        with mmap.mmap(fd, view.nbytes, flags=flags) as mapped:
            mapped[:] = view
    finally:
        os.close(fd)


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
    spare = _SPARE.take(directory, view.nbytes) if view.nbytes >= SPARE_MIN else None
    path = spare or os.path.join(directory, uuid.uuid4().hex)
    try:
        if spare is not None:
            _copy_into(spare, view)
        else:
            _write(path, view)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    if SPARE_MIN <= view.nbytes <= SPARE_MAX:
        _SPARE.make_later(directory, view.nbytes)
    return path
