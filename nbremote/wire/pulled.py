"""Big call arguments that the worker pulls by digest, where no shared memory links the two.

On the ray and docker backends, and for a kernel on another machine, big buffers travel inside
the frames, through the runner: ``f.remote(a)`` with the same 256 MiB array twice would send it
twice over two hops. So on such a channel the kernel sends each buffer of a call of at least
`THRESHOLD` bytes as its digest alone (a ``pulled`` entry ``[index, digest, size]``, an empty
buffer in its place) and keeps it until the call's ``done``. The worker maps those it keeps
(`nbremote.wire.held`: a copy-on-write mapping each, so a function writing into its argument
changes only its own copy) and asks for the others with one ``need``; the kernel's ``blobs``
answer brings them, and the worker keeps a copy for the next call. A worker of another node
asks once; the runner relays the frames as they are.

The kernel is not trusted with the digest either: the worker's cache keeps only a copy that
hashes to it (`HeldBuffers.offer`), and a received buffer of another size than announced fails
the call.

Standard library and xxhash only: the worker imports this module.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from .held import DIGEST, HeldBuffers, NotHeld, digest

THRESHOLD = 1 << 20  # smaller buffers go inline: their round trip would cost more than them
_SLICE = 64 << 20  # bytes copied by one system call

Ask = Callable[[list[str]], tuple[dict[str, Any], list[bytearray]]]


class PullFailed(ValueError):
    """A call's pulled arguments cannot be had: the call fails, saying why."""


def withhold(buffers: Sequence[Any]) -> tuple[list[list[Any]], list[Any], dict[str, Any]]:
    """The ``pulled`` entries of a call's buffers, the buffers to send (an empty one for each
    big one), and the big ones by digest, kept to answer the worker's ``need``."""
    entries: list[list[Any]] = []
    sent = list(buffers)
    kept: dict[str, Any] = {}
    for index, buffer in enumerate(buffers):
        size = memoryview(buffer).nbytes
        if size < THRESHOLD:
            continue
        known = digest(buffer)
        entries.append([index, known, size])
        sent[index] = b""
        kept[known] = buffer
    return entries, sent, kept


def fill(entries: Any, buffers: list[Any], held: HeldBuffers, ask: Ask) -> None:
    """Put each pulled buffer in its place among ``buffers``: from ``held``, else asked for
    (one ``need`` for all of them) and kept in ``held`` for the next call.

    Raises:
        PullFailed: an entry names no empty buffer of the frame, or a bad digest, or the answer
            lacks a buffer or brings one of another size than announced.
    """
    missing: list[tuple[int, str, int]] = []
    for index, claimed, size in _checked(entries, buffers):
        try:
            buffers[index] = held.take(claimed)
        except NotHeld:
            missing.append((index, claimed, size))
    if not missing:
        return
    reply, got = ask(sorted({claimed for _, claimed, _ in missing}))
    answered = _answered(reply, got)
    placed: set[str] = set()
    for index, claimed, size in missing:
        buffer = answered.get(claimed)
        if buffer is None or memoryview(buffer).nbytes != size:
            raise PullFailed(f"the kernel's answer lacks the {size}-byte argument {claimed}")
        if claimed in placed:  # two arguments of the same content: each its own memory
            buffers[index] = bytearray(buffer)
            continue
        buffers[index] = buffer
        placed.add(claimed)
        if size <= held.capacity:
            _keep(held, claimed, buffer)


def _checked(entries: Any, buffers: list[Any]) -> list[tuple[int, str, int]]:
    """The (index, digest, size) of a frame's ``pulled`` entries, each checked."""
    if not isinstance(entries, list):
        raise PullFailed(f"a call's 'pulled' must be a list of [index, digest, size]: {entries!r}")
    seen: set[int] = set()
    checked = []
    for entry in entries:
        index, claimed, size = entry if isinstance(entry, list) and len(entry) == 3 else (None,) * 3
        if type(index) is not int or not 0 <= index < len(buffers) or index in seen:
            raise PullFailed(f"a 'pulled' entry {entry!r} names no buffer of the call")
        if memoryview(buffers[index]).nbytes:
            raise PullFailed(f"a 'pulled' entry {entry!r} stands for a buffer that came whole")
        if not isinstance(claimed, str) or not DIGEST.fullmatch(claimed):
            raise PullFailed(f"a 'pulled' entry {entry!r} has no digest")
        if type(size) is not int or not THRESHOLD <= size <= 1 << 40:
            raise PullFailed(f"a 'pulled' entry {entry!r} has no size")
        seen.add(index)
        checked.append((index, claimed, size))
    return checked


def _answered(reply: dict[str, Any], buffers: list[bytearray]) -> dict[str, bytearray]:
    """The buffers of a ``blobs`` answer by digest (one buffer each)."""
    answered: dict[str, bytearray] = {}
    items = reply.get("items")
    for position, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict) and item.get("nbuf") == 1 and position < len(buffers):
            answered[str(item.get("hash"))] = buffers[position]
    return answered


def _keep(held: HeldBuffers, claimed: str, buffer: Any) -> None:
    """Keep a copy of ``buffer`` in ``held``, in an unnamed memory file filled on a thread while
    the call runs (the next call that names it waits for that). The copy is hashed: a function
    that wrote into its argument meanwhile leaves one that no longer matches, and is not kept."""
    view = memoryview(buffer).cast("B")
    try:
        fd = os.memfd_create("nbremote-pulled", os.MFD_CLOEXEC)
    except OSError:
        return  # not kept: asked for again next time
    try:
        os.ftruncate(fd, view.nbytes)
    except OSError:
        os.close(fd)
        return

    def write(fd: int) -> None:
        written = 0
        while written < view.nbytes:
            written += os.pwrite(fd, view[written : written + _SLICE], written)

    held.offer(claimed, fd, view.nbytes, write)
