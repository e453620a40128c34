"""Warm workers: the async driver of `PoolState`, and the pools of one holder.

`FunctionPool` does the I/O for one pool's state machine (`nbremote_runner.pool_state`, where
the scaling rules live): it starts workers through the GPU broker, runs requests on them, reads
the clock, and feeds what happened back in. `Pools` is every pool of one holder — a notebook
session's cell workers (one pool per spec, policy `CELL`) and its function pools, a deployed
app's pools, and later a job's or an endpoint's — built in one place. `SparePool` is the
runner's spare: a pool of policy `SPARE` that keeps one booted worker of the default spec for the
GPU broker to take, so that a new notebook's first cell does not wait for Python to start.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence

from nbremote.wire.codec import Buffer, Header
from nbremote.wire.http import FunctionScaling, WorkerSpec

from .backends import WorkerStartError
from .backends.base import POOL_HAS_OTHERS, START_GROUP
from .containers import ContainerStarter
from .frames import Frame
from .gpus import GpuBroker, Holder
from .pool_state import SPARE, Abort, Action, Fail, Hand, PoolState, Start, Stop, max_workers
from .workers import Forward, Serve, Worker

StartWorker = Callable[[WorkerSpec], Awaitable[Worker]]
Status = Callable[[str], Awaitable[None]]
DEFAULT_SPEC = WorkerSpec()
# What a kernel of the embedded runner asks for (it names its interpreter): when that is the
# runner's own, the spare (which runs it) fits too.
OWN_PYTHON_SPEC = WorkerSpec(python=sys.executable)
# Where a start says "starting a worker": set by a cell's session in its request's context
# (which the start inherits); unset for every other start. Said only when the taker waits for a
# worker to boot, not when it gets the booted spare, so a warm first cell shows no status.
STARTING: contextvars.ContextVar[Status | None] = contextvars.ContextVar(
    "nbremote_cell_starting", default=None
)


async def _say_starting() -> None:
    status = STARTING.get()
    if status is not None:
        await status("starting a worker")


class FunctionPool:
    """The warm workers of one function (one spec, one scaling policy).

    Args:
        start: starts a worker for the spec (the GPU broker, for the pool's holder).
        spec: what every worker of the pool runs.
        scaling: the function's policy.
        limit: a bound of the runner's own (how many workers of the spec its GPUs hold).
    """

    def __init__(
        self,
        start: StartWorker,
        spec: WorkerSpec,
        scaling: FunctionScaling,
        limit: int | None = None,
    ) -> None:
        self._start_worker = start
        self.spec = spec
        self.scaling = scaling
        self._state = PoolState(scaling, max_workers(scaling, limit, os.cpu_count()))
        self._workers: dict[str, Worker] = {}
        self._waiters: dict[str, asyncio.Future[Worker]] = {}
        # A start runs in its request's context: GPU queue notices and build logs go to it.
        self._contexts: dict[str, contextvars.Context] = {}
        self._starts: dict[int, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._requests = itertools.count()
        self._act(self._state.open())

    @property
    def max_containers(self) -> int:
        """The bound on workers, live or starting."""
        return self._state.bound

    def stats(self) -> tuple[int, int]:
        """Requests waiting for a worker, and workers live or starting (``get_current_stats``)."""
        return len(self._state.waiting), self._state.size

    @property
    def workers(self) -> list[Worker]:
        """The pool's live workers, least recently used first."""
        return [self._workers[w] for w in self._state.workers if self._workers[w].alive]

    async def run(
        self, header: Header, buffers: Sequence[Buffer], forward: Forward, timeout: float | None
    ) -> Frame:
        """Serve one request on a worker of the pool (waiting for one if the pool is full).

        Raises:
            WorkerStartError: the worker started for this request did not start.
        """
        request, worker = await self._acquire()
        retire = True
        try:
            done, out = await worker.run(header, buffers, forward, timeout)
            retire = bool(done.get("retire")) or not worker.alive
            return done, out
        finally:
            self._act(self._state.release(worker.id, request, retire, time.monotonic()))

    @contextlib.asynccontextmanager
    async def holding(self) -> AsyncIterator[Worker]:
        """A worker of the pool, held while the block runs (a cell runs on it there; the pool
        keeps it unless it died).

        Raises:
            WorkerStartError: the worker started for this request did not start.
        """
        request, worker = await self._acquire()
        try:
            yield worker
        finally:
            self._act(self._state.release(worker.id, request, not worker.alive, time.monotonic()))

    def idle(self, worker: Worker) -> bool:
        """Whether ``worker`` is alive, the pool's, and serving nothing (the GPU broker asks)."""
        return worker.alive and self._state.idle(worker.id)

    def evict(self, worker: Worker) -> bool:
        """Stop ``worker`` if it is idle, to give its GPUs to another holder; whether it went."""
        actions = self._state.evict(worker.id)
        self._act(actions)
        return any(isinstance(action, Stop) for action in actions)

    async def renew(self) -> None:
        """Stop the pool's live workers: the next request gets a new one (``--fresh``). Returns
        once they have stopped, so that their GPUs pass to the new one without a wait."""
        self._sweep()
        actions = self._state.renew()
        self._act([action for action in actions if not isinstance(action, Stop)])
        stops = [self._workers[a.worker].stop() for a in actions if isinstance(a, Stop)]
        await asyncio.gather(*stops)

    async def take(self) -> Worker:
        """The pool's idle worker, or the one it is starting, handed over for good: it is no
        longer the pool's, and the pool starts the next (the runner's spare, policy `SPARE`).

        Raises:
            WorkerStartError: the pool has no worker ready or starting, or its start failed.
        """
        self._sweep()
        _, worker = await self._wait(self._state.take)
        self._workers.pop(worker.id, None)  # its end is its taker's business now
        return worker

    async def _acquire(self) -> tuple[str, Worker]:
        while True:
            self._sweep()
            request, worker = await self._wait(self._state.acquire)
            if worker.alive:
                return request, worker
            # It died as it was handed over (its end not reported yet): ask again.
            self._act(self._state.died(worker.id))

    async def _wait(self, event: Callable[[str], list[Action]]) -> tuple[str, Worker]:
        """Feed ``event`` a new request, and wait for the worker handed to it."""
        request = str(next(self._requests))
        waiter = self._waiters[request] = asyncio.get_running_loop().create_future()
        self._contexts[request] = contextvars.copy_context()
        try:
            self._act(event(request))
            return request, await waiter
        except asyncio.CancelledError:
            self._act(self._state.withdraw(request))
            raise
        finally:
            self._waiters.pop(request, None)
            self._contexts.pop(request, None)

    def _sweep(self) -> None:
        """Forget workers that are no longer alive but whose end has not been reported yet (a
        stop in progress marks its worker at once, before it has gone)."""
        for worker_id, worker in list(self._workers.items()):
            if not worker.alive and worker_id in self._state.workers:
                self._act(self._state.died(worker_id))

    def _act(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Start):
                self._start(action)
            elif isinstance(action, Abort):
                self._starts[action.start].cancel()
            elif isinstance(action, Hand):
                self._waiters[action.request].set_result(self._workers[action.worker])
            elif isinstance(action, Fail):
                error = action.error or WorkerStartError(action.reason)
                self._waiters[action.request].set_exception(error)
            elif isinstance(action, Stop):
                self._soon(self._workers[action.worker].stop())

    def _start(self, action: Start) -> None:
        context = self._contexts.get(action.request or "")
        task = asyncio.get_running_loop().create_task(self._started(action.start), context=context)
        self._starts[action.start] = task
        task.add_done_callback(lambda _: self._starts.pop(action.start, None))

    async def _started(self, start: int) -> None:
        try:
            worker = await self._start_worker(self.spec)
        except Exception as exc:  # the request it was for fails with it
            self._act(self._state.start_failed(start, exc))
            return
        self._workers[worker.id] = worker
        worker.on_gone(lambda: self._gone(worker))
        self._act(self._state.started(start, worker.id, time.monotonic()))

    def _gone(self, worker: Worker) -> None:
        if self._workers.get(worker.id) is worker:
            del self._workers[worker.id]
            self._act(self._state.died(worker.id))

    def _soon(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def interrupt(self, request_id: str) -> bool:
        """Interrupt the request if one of this pool's workers is serving it."""
        for worker in self.workers:
            if worker.serves(request_id):
                worker.interrupt()
                return True
        return False

    async def scale_down(self) -> None:
        """Stop idle workers beyond ``min_containers`` that have idled past the window."""
        self._sweep()
        stops = self._state.tick(time.monotonic())
        await asyncio.gather(*(self._workers[stop.worker].stop() for stop in stops))

    async def close(self) -> None:
        """Stop every worker of the pool; requests still waiting for one fail."""
        actions = self._state.close()
        self._act([action for action in actions if not isinstance(action, Stop)])
        workers = [self._workers[a.worker] for a in actions if isinstance(a, Stop)]
        for task in [*self._starts.values(), *self._tasks]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.gather(*(worker.stop() for worker in workers))


class Pools(Mapping[str, FunctionPool]):
    """The function pools of one holder (a session, a deployed app), by pool key; each built on
    first use, from what the call names.

    Args:
        broker: starts the workers, with their GPUs.
    """

    def __init__(self, broker: GpuBroker) -> None:
        self._broker = broker
        self._pools: dict[str, FunctionPool] = {}

    def __getitem__(self, key: str) -> FunctionPool:
        return self._pools[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pools)

    def __len__(self) -> int:
        return len(self._pools)

    @property
    def workers(self) -> list[Worker]:
        """The live workers of every pool."""
        return [worker for pool in self._pools.values() for worker in pool.workers]

    def get_or_open(self, pool: Header, holder: Holder) -> FunctionPool:
        """The pool a call names (``{key, spec, scaling}``), opened for ``holder`` if new."""
        key = pool["key"]
        if key not in self._pools:
            spec = WorkerSpec.model_validate(pool.get("spec") or {})
            scaling = FunctionScaling.model_validate(pool.get("scaling") or {})
            self.open(key, spec, scaling, holder)
        return self._pools[key]

    def open(
        self,
        key: str,
        spec: WorkerSpec,
        scaling: FunctionScaling,
        holder: Holder,
        starting: Callable[[], Awaitable[None]] | None = None,
    ) -> FunctionPool:
        """The pool ``key``, opened for ``holder`` if new; ``starting`` is awaited before each
        start (a cell says "starting a worker")."""
        if key not in self._pools:

            async def start(spec: WorkerSpec) -> Worker:
                START_GROUP.set(key)  # in this start's own task
                POOL_HAS_OTHERS.set(opened.stats()[1] > 1)
                if starting is not None:
                    await starting()
                return await self._broker.take(spec, holder, owner=opened)

            limit = self._broker.capacity(spec)  # never more workers than GPUs for them
            opened = self._pools[key] = FunctionPool(start, spec, scaling, limit)
        return self._pools[key]

    async def scale_down(self) -> None:
        """Scale every pool down."""
        for pool in list(self._pools.values()):
            await pool.scale_down()

    async def close_app(self, app: str) -> None:
        """Stop the workers of ``app``'s functions and classes, and forget their pools (the end
        of ``with app.run()``: pool keys start with the app's name)."""
        keys = [key for key in self._pools if key.startswith(f"{app}:")]
        pools = [self._pools.pop(key) for key in keys]
        await asyncio.gather(*(pool.close() for pool in pools))

    async def close(self) -> None:
        """Stop every worker of every pool, and forget the pools."""
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(pool.close() for pool in pools))


class SparePool:
    """Every worker of the runner starts here (the GPU broker's `WorkerSource`): the default
    spec's from the spare pool when it has one ready or starting, any other directly.

    Args:
        backend: starts worker processes.
        serve: serves a worker's own requests (its Dict, Queue and volume calls).
        enabled: keep a spare (``RunnerConfig.spare_worker``).
        spreads: the backend spreads a pool's workers over nodes (`Backend.spreads_pools`): a
            pool's second worker is not the spare, placed before any pool wanted it.
    """

    def __init__(
        self, backend: ContainerStarter, serve: Serve, enabled: bool = True, spreads: bool = False
    ) -> None:
        self._backend = backend
        self._serve = serve
        self._spreads = spreads  # the backend spreads a pool's workers (`POOL_HAS_OTHERS`)
        self._spare = FunctionPool(self._start_spare, DEFAULT_SPEC, SPARE) if enabled else None

    async def _start(self, spec: WorkerSpec) -> Worker:
        return Worker(await self._backend.start_worker(spec), self._serve)

    async def _start_spare(self, spec: WorkerSpec) -> Worker:
        # The spare is no pool's until taken (`WorkerHandle.joined`), even when its start
        # follows a take in a pool's task.
        token = START_GROUP.set("")
        try:
            return await self._start(spec)
        finally:
            START_GROUP.reset(token)

    async def take(self, spec: WorkerSpec) -> Worker:
        """A fresh worker for ``spec``: the spare if it fits and is alive, else a new one."""
        spare_fits = spec in (DEFAULT_SPEC, OWN_PYTHON_SPEC)
        if spare_fits and self._spare is not None and not (self._spreads and POOL_HAS_OTHERS.get()):
            if not self._spare.workers:  # none booted yet: the taker waits for one
                await _say_starting()
            try:
                worker: Worker | None = await self._spare.take()
            except Exception:
                worker = None  # none ready, or it failed to boot: one in the caller's sight
            if worker is not None and worker.alive:
                worker.joined(START_GROUP.get())
                return worker
        await _say_starting()
        return await self._start(spec)

    async def close(self) -> None:
        """Stop the spare."""
        spare, self._spare = self._spare, None
        if spare is not None:
            await spare.close()
