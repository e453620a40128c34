"""Warm workers for one function: up to ``max_containers`` at once, requests queued beyond.

A pool leases each worker to one request at a time, reusing the most recently used idle worker
first (so that the others can go idle and scale down), and starts a new worker only while the
pool is below its bound. Idle workers beyond ``min_containers`` stop after ``scaledown_window``
seconds; a worker whose call timed out is retired at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Sequence

from nbremote.wire.codec import Buffer, Header
from nbremote.wire.http import FunctionScaling, WorkerSpec

from .frames import Frame
from .workers import Forward, Worker

StartWorker = Callable[[WorkerSpec], Awaitable[Worker]]


class FunctionPool:
    """The warm workers of one function (one spec, one scaling policy)."""

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
        self._limit = limit  # a bound of the runner's own (the GPUs there are for this spec)
        self.workers: list[Worker] = []  # most recently released last
        self._leased: dict[Worker, int] = {}  # worker -> requests it serves now
        self._starting = 0
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        for _ in range(scaling.min_containers):
            self._background(self._start_idle(self._start()))

    def _background(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def max_containers(self) -> int:
        """The bound on workers: as asked, else one per core (at least two); never more than
        the runner's own limit (a pool that queued for GPUs held by its own idle workers would
        wait for itself)."""
        asked = self.scaling.max_containers or max(2, os.cpu_count() or 1)
        return min(asked, self._limit) if self._limit is not None else asked

    @property
    def size(self) -> int:
        """Live workers plus those starting."""
        return len(self.workers) + self._starting

    def _start(self) -> Awaitable[Worker]:
        # Counted at once, not when the coroutine first runs: the bound must see it immediately.
        self._starting += 1
        return self._started()

    async def _started(self) -> Worker:
        try:
            return await self._start_worker(self.spec)
        finally:
            self._starting -= 1
            async with self._changed:
                self._changed.notify_all()

    async def _start_idle(self, starting: Awaitable[Worker]) -> None:
        worker = await starting
        async with self._changed:
            self.workers.append(worker)
            self._changed.notify_all()

    async def _acquire(self) -> Worker:
        async with self._changed:
            while True:
                self.workers = [worker for worker in self.workers if worker.alive]
                capacity = self.scaling.max_inputs
                free = [w for w in self.workers if self._leased.get(w, 0) < capacity]
                if free:
                    self._leased[free[-1]] = self._leased.get(free[-1], 0) + 1
                    return free[-1]
                if self.size < self.max_containers:
                    starting = self._start()
                    break
                await self._changed.wait()
        worker = await starting
        async with self._changed:
            self.workers.append(worker)
            self._leased[worker] = 1
        return worker

    async def _release(self, worker: Worker, retire: bool) -> None:
        async with self._changed:
            self._leased[worker] -= 1
            if not self._leased[worker]:
                del self._leased[worker]
            if worker in self.workers:
                self.workers.remove(worker)
                if worker.alive and not retire:
                    self.workers.append(worker)
            self._changed.notify_all()
        if retire:
            self._background(worker.stop())

    async def run(
        self, header: Header, buffers: Sequence[Buffer], forward: Forward, timeout: float | None
    ) -> Frame:
        """Serve one request on a leased worker (waiting for one if the pool is at its bound)."""
        worker = await self._acquire()
        retire = True
        try:
            done, out = await worker.run(header, buffers, forward, timeout)
            retire = bool(done.get("retire")) or not worker.alive
            return done, out
        finally:
            await self._release(worker, retire)

    def interrupt(self, request_id: str) -> bool:
        """Interrupt the request if one of this pool's workers is serving it."""
        for worker in self.workers:
            if worker.serves(request_id):
                worker.interrupt()
                return True
        return False

    async def scale_down(self) -> None:
        """Stop idle workers beyond ``min_containers`` that have idled past the window."""
        now = time.monotonic()
        async with self._changed:
            idle = [w for w in self.workers if not self._leased.get(w)]
            keep = max(0, self.scaling.min_containers - len(self._leased))
            expired = [
                w
                for w in idle[: max(0, len(idle) - keep)]
                if now - w.last_used > self.scaling.scaledown_window
            ]
            for worker in expired:
                self.workers.remove(worker)
        for worker in expired:
            await worker.stop()

    async def close(self) -> None:
        """Stop every worker of the pool."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        workers, self.workers = self.workers, []
        await asyncio.gather(*(worker.stop() for worker in workers))
