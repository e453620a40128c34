"""Notebook sessions and the warm workers that belong to them, from a kernel's first cell to
its exit.

A session is one notebook kernel. It holds at most one warm worker per `WorkerSpec` (its remote
namespace lives there), created on first use and kept until the session is reset or ends, or the
worker dies: a pool of its own per spec, with the policy `CELL` (`nbremote_runner.pool_state`),
beside the session's function pools. Its first cell worker for the default spec is the runner's
spare (`nbremote_runner.pools.SparePool`), already booted.

How a session ends (what "a kernel that goes away releases its workers" means here):

* **Goodbye** — a kernel that exits cleanly (shutdown, restart, the end of a script) says so on
  its way out (``POST /sessions/{id}/end``): the session ends at once, its workers stop and their
  GPUs are free within the second or two a worker takes to exit (its ``@exit`` hooks run).
* **Gone without a goodbye** — a kernel killed (``kill -9``, the OOM killer, a crash) closes its
  channel without one: the OS closes the socket, so the runner sees it at once. The session is
  *detached*: a cell still running is interrupted (its request is cancelled), the workers stay,
  idle, with their namespaces and GPUs, for ``SessionRegistry.grace`` seconds (``nbremote runner
  --session-grace``, 5 minutes by default), so that a new kernel can take the session over
  (``%remote attach ID``: the live remote namespace, a model on a GPU, goes on) or end it
  (``nbremote sessions rm ID``). A GPU cell waiting for such a worker is told both. After the
  grace it is dropped. A kernel whose machine went silent (a laptop asleep, a network gone) is
  noticed by TCP keepalive on its channel (`nbremote_runner.channel.KEEPALIVE`: about 11 s of
  silence), then detached the same way; the kernel's OS answers the probes, so an idle live
  kernel is never detached, and the kernel runs no heartbeat of its own.
* **Ended under a live kernel** (``nbremote sessions rm``): its workers stop; the kernel's next
  request gets a new, empty session of the same id, with a notice saying so (`renew`).

Who may use a session: whoever holds the runner's token, the only principal the runner knows
(so attaching by id with the token is no new power: the token already runs any code). Within
that, a session belongs to the kernel process (the ``client`` id of `CreateSession`) that opened
or last attached it: this keeps two kernels from sharing one by accident. Another process may
take it over only by attaching, and only while it is detached; the goodbye of a kernel that no
longer owns it ends nothing, and that kernel, coming back, is moved to a new session.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from nbremote.wire.codec import Header
from nbremote.wire.http import DescribeSession, WorkerSpec
from nbremote.wire.shm import host_id

from .errors import RunnerError
from .gpus import GpuBroker, Holder
from .pool_state import CELL
from .pools import STARTING, FunctionPool, Pools, Status
from .workers import Worker

if TYPE_CHECKING:
    from .frames import FrameConnection


def _flags(spec: WorkerSpec) -> str:
    """The ``%%remote`` flags that chose a cell worker's spec, as the notebook wrote them
    (its GPU and image: what tells one GPU worker of a notebook from another)."""
    flags = [f"--gpu {spec.gpu}"] if spec.gpu is not None else []
    if spec.image is not None:
        flags.append(f"--image {spec.image}")
    return " ".join(flags) or "cell"


class SessionTaken(RunnerError):
    """A kernel asked for a session another kernel owns (the message says which way out)."""

    status = 409


class Session:
    """One notebook kernel's state on the runner: its warm workers, one per spec.

    Args:
        session_id: the kernel's session id.
        notebook: the notebook's path, if the kernel knows it.
        pool: where its workers come from.
        owner: the kernel process (``CreateSession.client``) it belongs to; None: any.
    """

    def __init__(
        self, session_id: str, notebook: str | None, pool: GpuBroker, owner: str | None = None
    ) -> None:
        self.id = session_id
        self.notebook = notebook
        self.owner = owner
        self.created_at = time.time()
        self.connections: set[FrameConnection] = set()  # its kernel's channels
        self.ended = False  # its workers are stopped: a request on its channel opens a new one
        self.detached_at = time.time()
        self.cells = Pools(pool)  # the cell workers, one pool of one per spec
        self.pools = Pools(pool)  # the function workers, by function and spec
        self._pool = pool

    @property
    def channels(self) -> int:
        """How many channels its kernel holds open (0: detached)."""
        return len(self.connections)

    def attach(self, connection: FrameConnection) -> None:
        """A channel of its kernel opened."""
        self.connections.add(connection)

    def detach(self, connection: FrameConnection) -> None:
        """A channel of its kernel closed (the kernel may be gone: the grace starts)."""
        self.connections.discard(connection)
        self.detached_at = time.time()

    @property
    def workers(self) -> list[Worker]:
        """The session's live workers, for cells and for functions."""
        return [*self.cells.workers, *self.pools.workers]

    def serving(self, request_id: str) -> Worker | None:
        """The worker serving this request, if any."""
        return next((worker for worker in self.workers if worker.serves(request_id)), None)

    def pool_for(self, pool: Header) -> FunctionPool:
        """The warm-worker pool of a function, created on first use."""
        key = pool["key"]
        opened = self.pools.get(key)
        if opened is not None:
            return opened
        app, name = key.split(":")[:2]
        holder = Holder("function", self.id, self.notebook, f"{app}.{name}", group=key)
        return self.pools.get_or_open(pool, holder)

    def find(self, spec: WorkerSpec) -> Worker | None:
        """The live cell worker for ``spec``, if there is one (a ``pull`` starts none)."""
        pool = self.cells.get(spec.key())
        workers = pool.workers if pool is not None else []
        return workers[0] if workers else None

    @contextlib.asynccontextmanager
    async def cell_worker(
        self, spec: WorkerSpec, fresh: bool, status: Status
    ) -> AsyncIterator[Worker]:
        """The session's worker for ``spec``, held while a cell runs on it; a new one if none
        is alive or ``fresh`` is asked (``status`` hears when one starts).

        Raises:
            WorkerStartError: the worker did not start.
        """
        key = spec.key()
        group, flags = f"{self.id}:{key}", _flags(spec)
        holder = Holder("cell", self.id, self.notebook, group=group, flags=flags)
        pool = self.cells.open(key, spec, CELL, holder)
        if fresh:
            await pool.renew()
        token = STARTING.set(status)  # read by the start, in this request's context
        try:
            async with pool.holding() as worker:
                yield worker
        finally:
            STARTING.reset(token)

    async def reset(self) -> None:
        """Stop every worker: the next cell starts with an empty namespace."""
        await asyncio.gather(self.cells.close(), self.pools.close())

    async def end(self) -> None:
        """Stop every worker, for good: a kernel still there gets a new session of the same id
        with its next request (`SessionRegistry.renew`), never a worker started in this one."""
        self.ended = True
        await self.reset()

    def describe(self, python: str, shm_dir: str | None, grace: float) -> DescribeSession:
        """The session as the API shows it (``grace``: how long it outlives its kernel)."""
        detached = None if self.connections else self.detached_at
        return DescribeSession(
            id=self.id,
            notebook=self.notebook,
            created_at=self.created_at,
            python=python,
            workers=[
                worker.describe().model_copy(update={"gpus": self._pool.devices_of(worker)})
                for worker in self.workers
            ],
            host=host_id(),
            shm_dir=shm_dir,
            attached=detached is None,
            detached_at=detached,
            ends_at=None if detached is None else detached + grace,
        )


class SessionRegistry:
    """All sessions; those whose kernel has been gone for ``grace`` seconds are dropped."""

    def __init__(self, pool: GpuBroker, grace: float) -> None:
        self.pool = pool
        self.grace = grace
        self._sessions: dict[str, Session] = {}
        self._ending: set[asyncio.Task[None]] = set()

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str) -> Session | None:
        """The session with this id, if any."""
        return self._sessions.get(session_id)

    def open(
        self,
        session_id: str,
        notebook: str | None,
        client: str | None = None,
        attach: bool = False,
    ) -> tuple[Session, bool]:
        """The session with this id, created if new (for ``client``); and whether it was created.
        ``attach`` makes ``client`` its owner, if its own kernel is gone.

        Raises:
            SessionTaken: it belongs to another kernel, which holds it still (or took it over).
        """
        session = self._sessions.get(session_id)
        if session is None:
            session = Session(session_id, notebook, self.pool, client)
            self._sessions[session_id] = session
            return session, True
        if client is None or session.owner in (None, client):
            if attach:
                session.owner = client
            return session, False
        if not attach:
            raise SessionTaken(
                f"session {session_id} was taken over by another kernel (`%remote attach`); "
                "its remote namespace lives there now. This kernel goes on in a new session"
            )
        if session.connections:
            raise SessionTaken(
                f"session {session_id} is in use by a live kernel"
                + (f" of {session.notebook}" if session.notebook else "")
                + ": only a session whose kernel is gone (detached, in `%remote sessions`) can "
                "be attached; end it with `nbremote sessions rm " + session_id + "` instead"
            )
        session.owner = client
        return session, False

    def renew(self, ended: Session, connection: FrameConnection) -> Session:
        """The session that replaces ``ended`` for its kernel's channel ``connection``: a new one
        of the same id (empty: the old one's workers are gone), unless one was made already."""
        ended.detach(connection)
        session, _ = self.open(ended.id, ended.notebook, ended.owner)
        session.attach(connection)
        return session

    async def drop(self, session_id: str) -> None:
        """End a session now: stop its workers and forget it."""
        session = self._sessions.pop(session_id, None)
        if session is not None:
            await session.end()

    def end(self, session_id: str, client: str) -> Session:
        """A kernel's goodbye: end its session, if it is still that kernel's (its workers stop
        in the background, so that the kernel's exit does not wait for them); the session.

        Raises:
            LookupError: there is no such session.
            SessionTaken: another kernel took it over (``%remote attach``): it goes on.
        """
        session = self._sessions.get(session_id)
        if session is None:
            raise LookupError(f"no session {session_id!r}")
        if session.owner not in (None, client):
            raise SessionTaken(f"session {session_id} was taken over by another kernel")
        del self._sessions[session_id]
        task = asyncio.create_task(session.end())
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)
        return session

    async def reap(self) -> None:
        """Drop sessions whose kernel has been gone ``grace`` seconds; scale idle pools down."""
        now = time.time()
        for session in self:
            if session.channels == 0 and now - session.detached_at > self.grace:
                await self.drop(session.id)
                continue
            await session.pools.scale_down()

    async def close(self) -> None:
        """Stop every worker, the spare included."""
        for session in self:
            await self.drop(session.id)
        if self._ending:
            await asyncio.gather(*self._ending, return_exceptions=True)
        await self.pool.close()
