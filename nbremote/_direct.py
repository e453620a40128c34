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

`Leases` is a session's side of it: its leases, one per function pool, and the calls that go on
them; the session's own channel (to the runner) is where a lease is asked for, interrupted and
ended.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._client import Channel
from ._reconnect import NotSent
from .errors import RunnerError
from .wire.codec import Header
from .wire.ops import Op
from .wire.shm import big_digests
from .wire.spin import spin_until_readable

LEASE_IDLE = 1.0  # as in nbremote_runner.worker_lease (the worker lets go after this)

_Frame = tuple[Header, list[bytearray]]  # as `nbremote._session.Frame`
_OnFrame = Callable[[Header, list[bytearray]], None]


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


class LeasingSession(Protocol):
    """What of `nbremote._session.RemoteSession` its leases use (that module imports this one):
    its table of requests awaiting answers, and its way of sending one and serving its frames."""

    _pending: dict[str, Any]
    _stash: dict[str, deque[Any]]

    def _send(self, channel: Channel, request: Any) -> str: ...

    def _next_done(
        self,
        channel: Channel,
        wanted: set[str],
        on_frame: _OnFrame,
        until: tuple[str, ...] = ...,
    ) -> _Frame: ...


class Leases:
    """A session's leases on workers, one per function pool, and the calls that go on them.

    Args:
        session: the session whose channel asks the runner for leases (and ends them).
        request: the session's request class (`nbremote._session.Request`), to make its
            requests with.
    """

    def __init__(self, session: LeasingSession, request: Callable[..., Any]) -> None:
        self.session = session
        self.request = request
        self.by_pool: dict[str, Lease] = {}  # pool key -> a worker leased to this kernel
        self.direct = True  # until a leased worker turns out unreachable (another netns)

    def call(self, channel: Channel, request: Any, on_frame: _OnFrame) -> _Frame | None:
        """Serve a call (or spawn) on a worker leased to this kernel; None when it must go
        through the runner instead: it may not go direct (then every lease ends, so that the
        runner may give it the worker: ``max_containers=1``), no lease is to be had, or the
        lease ended before the call ran."""
        if self.direct and direct_eligible(request.header, channel.shm_dir):
            return self._call(channel, request, on_frame)
        self.end_all()
        return None

    def _call(self, channel: Channel, request: Any, on_frame: _OnFrame) -> _Frame | None:
        session = self.session
        pool = request.header["pool"]
        digests = big_digests(request.buffers)  # hashed before the lease's idle clock runs
        lease = self._take(channel, pool, on_frame)
        if lease is None:
            return None
        header = leased_call(request.header)
        direct = self.request(header, request.buffers, request.packed, image=request.image)
        lease.channel.ahead = digests
        try:
            request_id = session._send(lease.channel, direct)
        except NotSent:  # the worker let go while a big frame was written: the runner's way
            self.end(pool["key"])
            return None
        if not lease.channel.reader.buffered:  # its done comes within µs: no sleep and wake
            spin_until_readable([lease.channel.sock])
        interrupted = False
        while True:
            try:
                frame = session._next_done(lease.channel, {request_id}, on_frame)
                lease.last_used = time.monotonic()
                return frame
            except RunnerError:  # a frame of the leased worker's that cannot be read
                self.end(pool["key"])
                raise
            except KeyboardInterrupt:
                if interrupted:
                    session._pending.pop(request_id, None)
                    self.end(pool["key"])
                    if not channel.broken:  # the runner kills its worker if it is stuck
                        channel.send({"op": Op.CANCEL, "id": lease.lease_id})
                    raise
                interrupted = True
                channel.send({"op": Op.INTERRUPT, "id": lease.lease_id})
            except OSError:
                break
        # The worker's socket closed: the lease's done (from the runner) says whether it died.
        session._pending.pop(request_id, None)
        session._stash.pop(request_id, None)
        self.by_pool.pop(pool["key"], None)
        done, _ = session._next_done(channel, {lease.lease_id}, lambda *_: None)  # prints nothing
        died = (done.get("error") or {}).get("ename") == "WorkerDied"
        retries = (request.header.get("retries") or {}).get("max_retries", 0)
        if died and not retries:
            return {**done, "id": request_id}, []
        return None  # it never ran (the worker let go first), or the runner retries it

    def _take(self, channel: Channel, pool: Header, on_frame: _OnFrame) -> Lease | None:
        """This kernel's usable lease on a worker of ``pool``, taken now if need be (notices
        while a worker starts or waits for a GPU go to ``on_frame``)."""
        lease = self.by_pool.get(pool["key"])
        if lease is not None and lease.usable:
            return lease
        self.end(pool["key"])
        pending = self.session._pending
        lease_id = uuid.uuid4().hex
        pending[lease_id] = self.request({"op": Op.LEASE})
        try:
            channel.send({"op": Op.LEASE, "id": lease_id, "pool": pool})
            until = (Op.LEASED, Op.DONE)
            leased, _ = self.session._next_done(channel, {lease_id}, on_frame, until)
        except BaseException as exc:
            pending.pop(lease_id, None)
            if isinstance(exc, OSError):  # the call itself was not sent yet
                raise NotSent(str(exc)) from exc
            raise
        if leased["op"] == Op.DONE:
            if leased.get("error", {}).get("ename") == "NotLeasable":  # its backend's workers
                self.direct = False  # are out of reach (containers): not asked again
            return None  # no worker to lease: the call through the runner will say why
        try:
            lease = self.by_pool[pool["key"]] = connect_lease(leased, lease_id, channel.shm_dir)
        except OSError:  # the worker's socket is out of reach: go through the runner from now on
            pending.pop(lease_id, None)
            self.direct = False
            return None
        return lease

    def end(self, pool_key: str) -> None:
        """Let go of the worker leased for ``pool_key``, if any."""
        lease = self.by_pool.pop(pool_key, None)
        if lease is not None:
            lease.close()
            self.session._pending.pop(lease.lease_id, None)  # its late done is dropped
            self.session._stash.pop(lease.lease_id, None)

    def end_all(self) -> None:
        """Let go of every leased worker (a map, a generator, a reset may want them)."""
        for pool_key in list(self.by_pool):
            self.end(pool_key)
