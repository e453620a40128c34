"""Direct calls: a same-host kernel calls a leased warm worker with no runner hop in between.

For a plain ``.remote()`` the runner would relay the call to a pool's worker and the answer back:
four socket hops. Instead the kernel asks the runner once for a *lease* on one of the pool's
workers; the worker answers where it listens (an abstract Unix socket) and with a one-time token,
and the next calls go straight to it: two hops (bench/RESULTS.md, W1). The runner still counts
the worker as busy, still interrupts it on Ctrl-C, and gets it back when the lease ends.

A lease ends when the worker has had no call for ``LEASE_IDLE`` seconds; this side stops using
it after half that, so a call never races its end. Only the plainest calls go direct: one input,
no timeout, no concurrent inputs, no GPU, not a deployed function, a runner on this machine.
Anything else, and a lease that cannot be had, goes through the runner as before.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from ._client import Channel
from .wire.codec import Header
from .wire.ops import Op

LEASE_IDLE = 1.0  # as in nbremote_runner.worker_lease (the worker lets go after this)


@dataclass
class Lease:
    """A worker leased to this kernel, for one function's pool."""

    lease_id: str
    channel: Channel
    last_used: float = field(default_factory=time.monotonic)

    @property
    def usable(self) -> bool:
        """Whether a call may go on it now (well before the worker would let go)."""
        idle = time.monotonic() - self.last_used
        return not self.channel.broken and idle < LEASE_IDLE / 2

    def close(self) -> None:
        """Let go of the worker (it ends the lease when it sees the socket close)."""
        if not self.channel.broken:
            self.channel.close()


def direct_eligible(header: Header, shm_dir: str | None) -> bool:
    """Whether a request may go to a leased worker rather than through the runner."""
    return (
        shm_dir is not None  # the runner, so its workers, share this machine
        and header.get("op") == Op.CALL
        and header.get("count") == 1
        and "deployed" not in header
        and not header.get("timeout")  # the runner's safety net over timeouts stays in the loop
        and (header.get("concurrency") or 1) == 1
        and not header.get("batch")  # the runner groups a batched function's callers' inputs
        # A GPU worker goes back to the allocator as soon as it is idle, to be given to others.
        and not ((header.get("pool") or {}).get("spec") or {}).get("gpu")
    )


# A call's fields at the values a worker takes when they are absent.
_DEFAULTS: Header = {"count": 1, "first": 0, "concurrency": 1}


def leased_call(header: Header) -> Header:
    """The call as its leased worker reads it: without the pool, which the lease names already,
    nor the fields at their defaults. Its JSON is ~150 bytes instead of ~860: written, read and
    checked on each call, that was a fifth of a warm round trip (bench W1)."""
    return {
        key: value
        for key, value in header.items()
        if key != "pool" and value is not None and _DEFAULTS.get(key) != value
    }


_HELD_BY: dict[str, set[str]] = {}  # worker -> the digests it keeps (as far as known)
_WORKERS_REMEMBERED = 16


def _held_by(worker: str) -> set[str]:
    """The digests of big buffers ``worker`` keeps (`nbremote.wire.held`): the same worker
    leased again still has them."""
    held = _HELD_BY.pop(worker, None)
    if held is None:
        held = set()
        while len(_HELD_BY) >= _WORKERS_REMEMBERED:
            del _HELD_BY[next(iter(_HELD_BY))]
    _HELD_BY[worker] = held  # the most recent last
    return held


def connect_lease(leased: Header, lease_id: str, shm_dir: str | None) -> Lease:
    """Connect to a leased worker and show it the token.

    Raises:
        OSError: the worker cannot be reached (the caller goes through the runner instead).
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(f"\0{leased['address']}")
    except OSError:
        sock.close()
        raise
    channel = Channel(sock)
    channel.shm_dir = shm_dir
    # The address is nbremote-<pid>-<token>, the token new for each lease: the same worker is
    # known again by the rest (a new worker that got a dead one's pid refuses what it lacks).
    channel.shm_held = _held_by(str(leased["address"]).rpartition("-")[0])
    channel.send({"op": Op.HELLO, "token": leased["token"]})
    return Lease(lease_id, channel)
