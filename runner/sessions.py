"""Notebook sessions and the warm workers that belong to them.

A session is one notebook kernel. It holds at most one warm worker per `WorkerSpec` (its remote
namespace lives there), created on first use and kept until the session is reset, the worker dies,
or the kernel has been gone for `SessionRegistry.grace` seconds: a pool of its own per spec, with
the policy `CELL` (`nbremote_runner.pool_state`), beside the session's function pools. Its first
cell worker for the default spec is the runner's spare (`nbremote_runner.pools.SparePool`),
already booted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar

from nbremote.wire.codec import Header
from nbremote.wire.http import DescribeSession, WorkerSpec
from nbremote.wire.shm import host_id

from .gpus import GpuBroker, Holder
from .pool_state import CELL
from .pools import FunctionPool, Pools
from .workers import Worker

Status = Callable[[str], Awaitable[None]]
# Where "starting a worker" goes: the cell whose request a start is for (a start runs in the
# context of its request).
_STARTING: ContextVar[Status | None] = ContextVar("nbremote_cell_starting", default=None)


async def _starting() -> None:
    status = _STARTING.get()
    if status is not None:
        await status("starting a worker")


class Session:
    """One notebook kernel's state on the runner: its warm workers, one per spec."""

    def __init__(self, session_id: str, notebook: str | None, pool: GpuBroker) -> None:
        self.id = session_id
        self.notebook = notebook
        self.created_at = time.time()
        self.channels = 0
        self.detached_since = time.monotonic()
        self.cells = Pools(pool)  # the cell workers, one pool of one per spec
        self.pools = Pools(pool)  # the function workers, by function and spec
        self._pool = pool

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
        holder = Holder("cell", self.id, self.notebook, group=f"{self.id}:{key}")
        pool = self.cells.open(key, spec, CELL, holder, _starting)
        if fresh:
            await pool.renew()
        token = _STARTING.set(status)  # read by the start, in this request's context
        try:
            async with pool.holding() as worker:
                yield worker
        finally:
            _STARTING.reset(token)

    async def reset(self) -> None:
        """Stop every worker: the next cell starts with an empty namespace."""
        await asyncio.gather(self.cells.close(), self.pools.close())

    def describe(self, python: str, shm_dir: str | None) -> DescribeSession:
        """The session as the API shows it."""
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
        )


class SessionRegistry:
    """All sessions; those whose kernel has been gone for ``grace`` seconds are dropped."""

    def __init__(self, pool: GpuBroker, grace: float) -> None:
        self.pool = pool
        self.grace = grace
        self._sessions: dict[str, Session] = {}

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str) -> Session | None:
        """The session with this id, if any."""
        return self._sessions.get(session_id)

    def open(self, session_id: str, notebook: str | None) -> tuple[Session, bool]:
        """The session with this id, created if new; and whether it was created."""
        session = self._sessions.get(session_id)
        if session is not None:
            return session, False
        session = self._sessions[session_id] = Session(session_id, notebook, self.pool)
        return session, True

    async def drop(self, session_id: str) -> None:
        """Stop a session's workers and forget it."""
        session = self._sessions.pop(session_id, None)
        if session is not None:
            await session.reset()

    async def reap(self) -> None:
        """Drop sessions whose kernel has been gone ``grace`` seconds; scale idle pools down."""
        now = time.monotonic()
        for session in self:
            if session.channels == 0 and now - session.detached_since > self.grace:
                await self.drop(session.id)
                continue
            await session.pools.scale_down()

    async def close(self) -> None:
        """Stop every worker, the spare included."""
        for session in self:
            await self.drop(session.id)
        await self.pool.close()
