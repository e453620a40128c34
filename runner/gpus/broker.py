"""The thin async driver of the GPU `Allocator`: every worker of the runner starts here.

`GpuBroker.take` starts a worker for a spec. Without a GPU request it goes straight to the spare
pool. With one, it asks the allocator, waits in its queue (telling the caller its position),
stops the idle workers the allocator names, then starts the worker pinned to its devices through
``CUDA_VISIBLE_DEVICES``/``NVIDIA_VISIBLE_DEVICES`` (UUIDs where NVML gave them, with
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so that indices mean NVML's). The devices are released when the
worker is gone, however it went.

Which workers may be stopped to make room: function and deployed-app workers not serving a
request (they come back on the next call, like a scale-down). Their pool (the lease's `Owner`)
says which are idle and stops one when asked: it is the pool's state that decides, so a worker
being handed to a request is never stopped under it. A cell worker is never stopped for another
notebook's request: its namespace is that notebook's state, and losing it silently is worse
than waiting; ``%remote reset`` (or the kernel going away) frees it, and the waiting cell says
who holds its GPUs. For a request of its own notebook an idle cell worker does give way (after
the idle function workers that would do): otherwise ``%%remote --gpu A100`` then ``%%remote
--gpu A100:2`` on two A100s waits on itself forever. The waiting cell is told, in one line,
which of its workers was stopped and that its namespace is gone; while the notebook's own busy
workers hold what it needs, the waiting line names them and what each is doing.

While a GPU cell runs, NVML is read every 100 ms in a thread of its own; the cell ends with a
one-line summary of its devices, peak memory, mean utilization and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from nbremote.wire.codec import Header
from nbremote.wire.http import (
    DescribeGpu,
    DescribeGpuHolder,
    DescribeGpuWait,
    GpuRequest,
    ListGpusResponse,
    WorkerSpec,
)
from nbremote.wire.ops import Op

from ..backends import WorkerStartError
from .alloc import Action, Allocator, Evict, Grant, Queued, Reject, wanted
from .discovery import Device, Discovery, Reading
from .usage import SAMPLE_PERIOD, Usage

if TYPE_CHECKING:
    from ..workers import Worker

Status = Callable[[str], Awaitable[None]]
Send = Callable[[Header, list[Any]], None]  # a request's frames to its caller (never raises)
# Where a function call's queue position goes: set by the channel for the request it serves.
STATUS: ContextVar[Status | None] = ContextVar("nbremote_gpu_status", default=None)
POLL_PERIOD = 0.1  # how often holders' idleness is checked while requests wait


class WorkerSource(Protocol):
    """Where the broker gets its workers (the runner's `SparePool`; pools import the broker,
    so the broker names only what it calls)."""

    async def take(self, spec: WorkerSpec) -> Worker: ...

    async def close(self) -> None: ...


class Owner(Protocol):
    """Who holds a worker the broker started (its pool): the one to ask whether the worker is
    idle, and to stop it to make room (the pool decides; the broker never reads a worker's
    requests itself)."""

    def idle(self, worker: Worker) -> bool: ...

    def evict(self, worker: Worker) -> bool: ...


class GpuUnavailable(WorkerStartError):
    """The GPUs asked for can never be had on this runner (the message says what it has)."""


@dataclass(frozen=True)
class Holder:
    """Who a worker is for: a notebook's cells, a function's pool, or a deployed app's pool.

    Args:
        kind: ``cell``, ``function`` or ``app``.
        session: the notebook session (cells and notebook functions).
        notebook: the notebook's path, if known.
        name: the function, class or ``app.object``.
        group: workers of one group are interchangeable; one never makes room for another.
    """

    kind: str
    session: str | None = None
    notebook: str | None = None
    name: str | None = None
    group: str = ""
    flags: str = ""  # a cell worker's: the flags that chose its spec (``--gpu A100``)

    @property
    def evictable(self) -> bool:
        """Whether its idle workers may be stopped for any request (all but cell workers,
        which give way only to their own notebook's)."""
        return self.kind != "cell"

    def own(self, waiter: Holder, state: str = "") -> str | None:
        """This holder named for ``waiter`` if both are of one notebook session (else None),
        ``state`` (``idle``) before what it is."""
        if self.session is None or self.session != waiter.session:
            return None
        what = f"{self.flags} worker" if self.kind == "cell" else f"function {self.name}"
        return " ".join(word for word in ("this notebook's", state, what) if word)

    def __str__(self) -> str:
        if self.kind == "cell":
            where = self.notebook or f"session {(self.session or '?')[:8]}"
            return f"the cell worker of {where} (`%remote reset` there frees it)"
        return f"{'function' if self.kind == 'function' else 'deployed'} {self.name}"

    def told_to(self, waiter: Holder) -> str:
        """Who holds a GPU, as told to ``waiter``: a restarted kernel of the same notebook hears
        how to take its previous session's worker over or free it."""
        previous = self.kind == "cell" and self.session not in (None, waiter.session)
        if previous and self.notebook is not None and self.notebook == waiter.notebook:
            session = (self.session or "")[:8]
            return (
                f"this notebook's previous session {session} (`%remote attach {session}` to "
                f"use its workers, or `nbremote sessions rm {session}` to free them)"
            )
        return str(self)


@dataclass
class _Lease:
    id: str
    holder: Holder
    request: GpuRequest
    status: Status | None
    granted: asyncio.Future[tuple[int, ...]]
    owner: Owner | None = None
    worker: Worker | None = None
    told_idle: bool = False


def _gpus(indices: tuple[int, ...] | list[int]) -> str:
    """``GPU 0`` or ``GPUs 0, 1``."""
    return ("GPU " if len(indices) == 1 else "GPUs ") + ", ".join(str(i) for i in sorted(indices))


def pinning(devices: list[Device]) -> dict[str, str]:
    """The environment that confines a worker to ``devices``."""
    ids = ",".join(device.uuid or str(device.index) for device in devices)
    return {
        "CUDA_VISIBLE_DEVICES": ids,
        "NVIDIA_VISIBLE_DEVICES": ids,
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }


class GpuBroker:
    """Starts workers, with the GPUs their spec asks for.

    Args:
        discovery: the runner's GPUs.
        spare: starts the workers themselves.
    """

    def __init__(self, discovery: Discovery, spare: WorkerSource) -> None:
        self.discovery = discovery
        self._spare = spare
        self._alloc = Allocator(discovery.devices, discovery.unavailable)
        # Every device ever listed, by index: a worker keeps its device's description (for its
        # usage summary) after the device left the inventory, until the worker ends.
        self._devices = {device.index: device for device in discovery.devices}
        self._leases: dict[str, _Lease] = {}
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="nbremote-nvml")
        self._usages: set[Usage] = set()  # the GPU cells running now
        self._tasks: set[asyncio.Task[None]] = set()
        self._polling: asyncio.Task[None] | None = None
        self._sampling: asyncio.Task[None] | None = None

    # -- starting workers ----------------------------------------------------------------------

    def capacity(self, spec: WorkerSpec) -> int | None:
        """How many workers of ``spec`` fit on the runner's GPUs at once (None: no GPU asked)."""
        return None if spec.gpu is None else max(1, self._alloc.capacity(spec.gpu))

    async def take(
        self,
        spec: WorkerSpec,
        holder: Holder | None = None,
        status: Status | None = None,
        owner: Owner | None = None,
    ) -> Worker:
        """A new worker for ``spec``; with a GPU request, once its GPUs are free. ``owner`` (its
        pool) says when the worker is idle and stops it to make room; without one it never goes.

        Raises:
            GpuUnavailable: this runner can never give the GPUs asked for.
            WorkerStartError: the worker did not start.
        """
        if spec.gpu is None:
            return await self._spare.take(spec)
        request, holder = spec.gpu, holder or Holder("function")
        await self._refresh()  # a cluster's node may have left or joined since
        granted = asyncio.get_running_loop().create_future()
        lease = _Lease(uuid.uuid4().hex, holder, request, status or STATUS.get(), granted, owner)
        self._leases[lease.id] = lease
        try:
            private = not holder.evictable
            self._event(
                lambda: self._alloc.request(
                    lease.id, request, holder.group, holder.session, private
                )
            )
            devices = [self._devices[index] for index in await lease.granted]
            pinned = spec.model_copy(update={"env": {**spec.env, **pinning(devices)}})
            worker = await self._spare.take(pinned)
        except BaseException:
            self._release(lease.id)
            raise
        lease.worker = worker
        worker.on_gone(lambda: self._release(lease.id))
        return worker

    def _release(self, lease_id: str) -> None:
        if self._leases.pop(lease_id, None) is not None:
            self._event(lambda: self._alloc.release(lease_id))

    async def _refresh(self) -> None:
        """Follow a cluster's inventory (at most as often as its `Discovery` looks again): a
        device that left is no longer granted nor listed; one that joined is both."""
        if not self.discovery.due():
            return
        loop = asyncio.get_running_loop()
        if await loop.run_in_executor(self._reader, self.discovery.refresh):
            devices, unavailable = list(self.discovery.devices), self.discovery.unavailable
            self._devices |= {device.index: device for device in devices}
            self._event(lambda: self._alloc.update(devices, unavailable))

    def _event(self, event: Callable[[], list[Action]]) -> None:
        """Feed the allocator an event (after what changed in holders' idleness), and act."""
        actions = self._sync_idle()
        actions += event()
        while actions:
            action = actions.pop(0)
            lease = self._leases.get(action.lease)
            if lease is None:
                continue
            if isinstance(action, Grant) and not lease.granted.done():
                lease.granted.set_result(action.devices)
            elif isinstance(action, Reject) and not lease.granted.done():
                lease.granted.set_exception(GpuUnavailable(action.reason))
            elif isinstance(action, Queued):
                self._tell(lease, action.position)
            elif isinstance(action, Evict):
                actions += self._evict(lease, self._leases.get(action.waiter))
        if self._alloc.queue and self._polling is None:
            self._polling = self._soon(self._poll())

    def _sync_idle(self) -> list[Action]:
        actions: list[Action] = []
        for lease in list(self._leases.values()):
            worker, owner = lease.worker, lease.owner
            if worker is None or owner is None:
                continue
            idle = owner.idle(worker)
            if idle != lease.told_idle:
                lease.told_idle = idle
                actions += self._alloc.idle(lease.id, idle)
        return actions

    async def _poll(self) -> None:
        """While requests wait, notice holders going idle (function workers finishing a call)."""
        try:
            while self._alloc.queue:
                await asyncio.sleep(POLL_PERIOD)
                await self._refresh()  # a node that joins may serve them; one that left not
                self._event(lambda: [])
        finally:
            self._polling = None

    def _evict(self, lease: _Lease, waiter: _Lease | None) -> list[Action]:
        """Ask the lease's owner to stop its idle worker; its devices come back when it is gone.
        If it has turned busy since it was reported idle, the allocator hears so. A ``waiter``
        of the same notebook is told which of its workers gave way."""
        worker, owner = lease.worker, lease.owner
        devices = self._alloc.devices_of(lease.id)
        if worker is not None and owner is not None and owner.evict(worker):
            if waiter is not None:
                self._gave_way(lease, waiter, devices)
            return []
        lease.told_idle = False
        return self._alloc.idle(lease.id, False)

    def _gave_way(self, lease: _Lease, waiter: _Lease, devices: tuple[int, ...]) -> None:
        """Tell ``waiter`` which of its own notebook's workers was stopped for it, and what
        went with it (a cell worker's namespace; a function's container comes back)."""
        own = lease.holder.own(waiter.holder, "idle")
        if own is None or waiter.status is None:
            return
        if lease.holder.kind == "cell":
            gone = "its remote namespace is gone"
        else:
            gone = "it starts again on its next call"
        self._soon(waiter.status(f"stopped {own} to free {_gpus(devices)}; {gone}"))

    def _tell(self, lease: _Lease, position: int) -> None:
        if lease.status is None:
            return
        holding: dict[str, list[int]] = {}
        for choice in lease.request.choices:
            for index in self._alloc.matching(choice):
                holder = self._alloc.held.get(index)
                if holder in self._leases and index not in holding.get(holder, []):
                    holding.setdefault(holder, []).append(index)
        stopping = [holder for holder in holding if self._alloc.evicting(holder)]
        holders = {
            self._told(self._leases[holder], lease, indices)
            for holder, indices in holding.items()
            if holder not in stopping
        }
        if stopping and not holders:
            return  # what it needs is being freed for it (it was told which worker gave way)
        text = f"waiting for {wanted(lease.request)}, position {position} in the GPU queue"
        if holders:
            text += f"; held by {', '.join(sorted(holders))}"
        self._soon(lease.status(text))

    def _told(self, holding: _Lease, waiter: _Lease, indices: list[int]) -> str:
        """Who holds ``indices``, as told to ``waiter``: its own notebook's workers by the
        flags or function that made them, with their GPUs and what they are doing."""
        own = holding.holder.own(waiter.holder)
        if own is None:
            return holding.holder.told_to(waiter.holder)
        worker, owner = holding.worker, holding.owner
        if worker is None:
            doing = "starting"
        elif owner is not None and owner.idle(worker):
            doing = "idle; it gives way once the other GPUs needed are free"
        elif holding.holder.kind == "cell":
            doing = "running a cell now; it gives way when the cell ends"
        else:
            doing = "serving a call now; it gives way when the call ends"
        return f"{own} on {_gpus(indices)} ({doing})"

    def _soon(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- what workers hold, and what they do with it --------------------------------------------

    def _lease_of(self, worker: Worker) -> _Lease | None:
        return next((lease for lease in self._leases.values() if lease.worker is worker), None)

    def devices_of(self, worker: Worker) -> list[int]:
        """The indices of the GPUs a worker holds."""
        lease = self._lease_of(worker)
        return list(self._alloc.devices_of(lease.id)) if lease is not None else []

    @contextlib.asynccontextmanager
    async def measured(self, worker: Worker, header: Header, send: Send) -> AsyncIterator[None]:
        """Around a cell run: sample its worker's GPUs, and end with a summary line (a
        ``notice`` frame the client prints) if it finished."""
        lease = self._lease_of(worker)
        if lease is None or header["op"] != Op.EXEC:
            yield
            return
        devices = [self._devices[index] for index in self._alloc.devices_of(lease.id)]
        usage = Usage(devices, worker.process.stats().gpu_pids)
        self._usages.add(usage)
        if self._sampling is None:
            self._sampling = self._soon(self._sample())
        try:
            yield
        finally:
            self._usages.discard(usage)
        usage.add(await self._read([device.index for device in devices]))
        text = usage.summary()
        send({"op": Op.NOTICE, "id": header["id"], "text": text}, [])

    async def _read(self, indices: list[int]) -> dict[int, Reading]:
        loop = asyncio.get_running_loop()
        read = self.discovery.read
        return await loop.run_in_executor(
            self._reader, lambda: {index: read(index) for index in indices}
        )

    async def _sample(self) -> None:
        try:
            while self._usages:
                indices = sorted({d.index for usage in self._usages for d in usage.devices})
                readings = await self._read(indices)
                for usage in list(self._usages):
                    usage.add(readings)
                await asyncio.sleep(SAMPLE_PERIOD)
        finally:
            self._sampling = None

    def _holder(self, lease: _Lease) -> DescribeGpuHolder:
        worker = lease.worker
        return DescribeGpuHolder(
            worker=worker.id if worker is not None else None,
            kind=lease.holder.kind,
            session=lease.holder.session,
            notebook=lease.holder.notebook,
            name=lease.holder.name,
            idle=worker is not None and lease.owner is not None and lease.owner.idle(worker),
        )

    async def describe(self) -> ListGpusResponse:
        """The runner's GPUs as ``GET /api/v1/gpus`` shows them."""
        await self._refresh()
        listed = dict(self._alloc.devices)
        readings = await self._read(list(listed))
        gpus = []
        for index, device in listed.items():
            reading = readings[index]
            lease = self._leases.get(self._alloc.held.get(index, ""))
            gpus.append(
                DescribeGpu(
                    index=index,
                    name=device.name,
                    uuid=device.uuid,
                    memory_total_bytes=device.memory_bytes,
                    memory_used_bytes=reading.memory_used_bytes,
                    utilization_percent=reading.utilization_percent,
                    holder=self._holder(lease) if lease is not None else None,
                )
            )
        waiting = [
            DescribeGpuWait(
                position=position,
                request=str(waiting.request),
                holder=self._holder(self._leases[waiting.lease]),
            )
            for position, waiting in enumerate(self._alloc.queue, 1)
            if waiting.lease in self._leases
        ]
        return ListGpusResponse(
            source=self.discovery.source,
            gpus=gpus,
            waiting=waiting,
            unavailable=self.discovery.unavailable,
        )

    async def close(self) -> None:
        """Stop the spare, the background tasks and the NVML thread."""
        await self._spare.close()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._reader.shutdown()
        self.discovery.close()
