"""Big buffers a worker keeps, so that a function argument it has seen is not shipped again.

`f.remote(a)` with the same 256 MiB array twice would copy it into shared memory twice. On a
leased worker's connection (`nbremote._direct`) the kernel names each big buffer by its digest:
the first time with its shared-memory file (``shm`` entry ``[index, path, digest]``), after that
by digest alone (``by_digest`` entry ``[index, digest]``). The worker keeps the files it
received, by digest, as open descriptors of unlinked files: each use maps one copy-on-write, so
a function that writes into its argument changes its own private pages, never the kept file.

The other side is not trusted with the digest: a received file is hashed here (on a thread,
while the function runs; xxhash lets go of the GIL) and kept only if it matches. A ``by_digest``
entry for a digest this worker does not keep is refused, as is any such entry on a
connection without a cache (through the runner). The cache is this process's own and bounded
(`CAPACITY` bytes; the least recently used files go first).

Standard library and xxhash only: the worker imports this module.
"""

from __future__ import annotations

import mmap
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import xxhash

from .shm_pages import populate

CAPACITY = 1 << 30  # bytes of files one worker keeps; the kernel sends bigger ones each time
DIGEST = re.compile(r"[0-9a-f]{32}")
_CHUNK = 32 << 20  # the two halves of a digest are hashed on two threads above twice this


class NotHeld(ValueError):
    """A frame names a held buffer that this receiver does not keep."""


def _xxh(view: memoryview) -> bytes:
    return xxhash.xxh3_128(view).digest()


def digest(buffer: Any) -> str:
    """A buffer's content digest (xxh3-128 of its two halves, hashed on two threads when it is
    big: the hash then takes about half of one copy of it)."""
    view = memoryview(buffer).cast("B")
    if view.nbytes < 2 * _CHUNK:
        halves = [_xxh(view), b""]
    else:
        middle = view.nbytes // 2
        second: list[bytes] = []
        thread = threading.Thread(target=lambda: second.append(_xxh(view[middle:])))
        thread.start()
        first = _xxh(view[:middle])
        thread.join()
        halves = [first, second[0]]
    size = view.nbytes.to_bytes(8, "little")
    return xxhash.xxh3_128(halves[0] + halves[1] + size).hexdigest()


def digests_ahead(buffers: Any, threshold: int) -> dict[int, str]:
    """The digests of a frame's buffers of at least ``threshold`` bytes, by index: computed
    before a leased worker's idle clock runs (hashing 256 MiB takes a while on a busy machine)."""
    views = [memoryview(buffer) for buffer in buffers]
    return {index: digest(view) for index, view in enumerate(views) if view.nbytes >= threshold}


def _private_map(fd: int, size: int) -> mmap.mmap:
    mapped = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    populate(mapped)
    return mapped


class _Entry:
    """One received file: its descriptor, its size, and whether its digest was checked yet."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self.checked = threading.Event()
        self.good = False


class HeldBuffers:
    """Received files by digest, verified before use and bounded in bytes."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def offer(
        self, claimed: str, fd: int, size: int, write: Callable[[int], None] | None = None
    ) -> None:
        """Keep the file open on ``fd`` (this takes it over) if it hashes to ``claimed``; with
        ``write``, the file is filled by ``write(fd)`` first, on the thread that hashes it (a
        use of it waits for both)."""
        if not DIGEST.fullmatch(claimed) or size > self.capacity:
            os.close(fd)
            return
        entry = _Entry(fd, size)
        with self._lock:
            old = self._entries.pop(claimed, None)
            self._entries[claimed] = entry
            self._evict()
        if old is not None:
            old.checked.wait()
            os.close(old.fd)
        threading.Thread(target=self._verify, args=(claimed, entry, write), daemon=True).start()

    def _verify(self, claimed: str, entry: _Entry, write: Callable[[int], None] | None) -> None:
        try:
            if write is not None:
                write(entry.fd)
            with mmap.mmap(entry.fd, entry.size, prot=mmap.PROT_READ) as view:
                entry.good = digest(view) == claimed
        except (OSError, ValueError):
            entry.good = False
        finally:
            entry.checked.set()
        if not entry.good:
            self._drop(claimed, entry)

    def _evict(self) -> None:
        """Drop the least recently used files until the rest fit (called holding the lock)."""
        total = sum(entry.size for entry in self._entries.values())
        while total > self.capacity:
            claimed, entry = next(iter(self._entries.items()))
            total -= entry.size
            del self._entries[claimed]
            threading.Thread(target=_close_when_checked, args=(entry,), daemon=True).start()

    def _drop(self, claimed: str, entry: _Entry) -> None:
        with self._lock:
            if self._entries.get(claimed) is entry:
                del self._entries[claimed]
            else:
                return
        os.close(entry.fd)

    def take(self, claimed: Any) -> mmap.mmap:
        """A private, writable mapping of the file kept under ``claimed``.

        Raises:
            NotHeld: no file is kept under it (never received, evicted, or its content did not
                hash to it).
        """
        with self._lock:
            entry = self._entries.get(claimed) if isinstance(claimed, str) else None
            if entry is not None:
                self._entries.move_to_end(claimed)
        if entry is None or not (entry.checked.wait() and entry.good):
            raise NotHeld(f"this worker keeps no buffer of digest {claimed!r}: refused")
        with self._lock:  # it may have been evicted (and closed) meanwhile
            if self._entries.get(claimed) is not entry:
                raise NotHeld(f"the buffer of digest {claimed!r} was just evicted: refused")
            return _private_map(entry.fd, entry.size)

    def __contains__(self, claimed: object) -> bool:
        with self._lock:
            return claimed in self._entries


def _close_when_checked(entry: _Entry) -> None:
    entry.checked.wait()
    os.close(entry.fd)
