"""Waiting a few microseconds for a socket by polling before blocking on it.

A leased call's round trip (`nbremote._direct`) is two socket hops, each waking a process that
blocked in ``recv``. On an idle machine, and more so in a virtual machine, waking a process whose
core went idle costs tens of microseconds per hop: the pickled loopback floor itself measured
8.5 µs at load and 86 µs on a quiet box (bench/RESULTS.md, W1). So the side that expects a frame
soon polls for it first, for at most `SPIN_SECONDS`: the caller for a call's ``done``, the
leased worker for the next call of a loop. Each poll yields the core to the other side if the
scheduler woke it there.

Polling only pays while a core is free for it: where the cores are busy, a spinning process
takes the core the other side needs, and the frame comes too late for the spin. So after
`MISSES` spins in a row that ran out, no spin is tried for `BACK_OFF` seconds (calls that are
not back to back soon cost no spin either).

Standard library only: the worker imports this module.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterable

SPIN_SECONDS = 300e-6  # a warm call's whole round trip is ~100 µs; a loop's next call as soon
MISSES = 8  # spins in a row that ran out before backing off (one may: a GC pause, say)
BACK_OFF = 1.0  # seconds without spinning after that

_calm_until = 0.0  # when spinning may be tried again
_misses = 0  # spins in a row that ran out


def spin_until_readable(socks: Iterable[socket.socket], seconds: float = SPIN_SECONDS) -> bool:
    """Whether one of ``socks`` became readable within ``seconds`` of polling (no sleeping)."""
    global _calm_until, _misses
    now = time.perf_counter()
    if now < _calm_until:
        return False
    poller = select.poll()
    for sock in socks:
        poller.register(sock, select.POLLIN)
    deadline = now + seconds
    while not poller.poll(0):
        if time.perf_counter() >= deadline:
            _misses += 1
            if _misses >= MISSES:
                _calm_until, _misses = time.perf_counter() + BACK_OFF, 0
            return False
        os.sched_yield()  # the other side, if woken on this core, goes first
    _misses = 0
    return True
