"""The runner's side of a warm worker: one request at a time, its frames routed to the caller.

A `Worker` wraps a backend's `WorkerHandle`. Each frame the worker sends is handed, as it
arrives, to the caller of its request (no task in between: relaying is on the hot path); ``done``
ends the request. If the worker's connection closes mid-request, the caller gets a ``done`` that
says the worker died and how.

The worker runs anyone's code, so what it sends is not trusted: its requests to the runner are
checked against the wire schema (`frame_checks`) and a bad one is answered with an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import ValidationError

from nbremote.wire.codec import Buffer, Header
from nbremote.wire.http import DescribeObject, DescribeWorker
from nbremote.wire.ops import Op

from .backends import WorkerHandle
from .errors import RunnerError, WorkerDied, error_done
from .frame_checks import WORKER_FRAMES, check
from .frames import ConnectionClosed, Frame

Forward = Callable[[Header, Sequence[Buffer]], None]  # never raises: a caller gone loses it


class _InFlight:
    """A request in progress: where its frames go, and its ``done`` twice: ``done``, kept for
    `Worker._abandon` whatever happens to the caller, and ``seen``, which the caller awaits and
    a cancel may cancel. Two futures set at once, rather than a shield over one: a shield adds a
    turn of the loop between the frame and the caller, on every request."""

    __slots__ = ("done", "forward", "forward_done", "seen")

    def __init__(self, forward: Forward, forward_done: bool) -> None:
        loop = asyncio.get_running_loop()
        self.forward = forward
        self.forward_done = forward_done  # the ``done`` goes to ``forward`` too (a web answer)
        self.done: asyncio.Future[Frame] = loop.create_future()
        self.seen: asyncio.Future[Frame] = loop.create_future()

    def settle(self, frame: Frame) -> None:
        for future in (self.done, self.seen):
            if not future.done():
                future.set_result(frame)


Serve = Callable[[Header, list[Any]], Awaitable[Frame]]
WORKER_REQUESTS = (Op.DICT, Op.QUEUE, Op.VOLUME)  # frames a worker sends for the runner to answer

STOP_GRACE = 5.0  # how long a worker told to stop has to run its @nr.exit() methods and leave
INTERRUPT_GRACE = 5.0  # after a timeout's interrupt, how long before the worker is killed
KILL_GRACE = 1.0  # after a second interrupt (a cancel of an interrupted request): the same
KILLED = (
    "nbremote: the worker did not stop on interrupt; it was killed; "
    "the next cell starts a new worker with an empty namespace"
)
log = logging.getLogger(__name__)


class WorkerKilled(RunnerError):
    """The request's code ignored an interrupt, and its worker was killed when it was cancelled
    (a second Ctrl-C): shown to the user like the interrupt it answers."""

    def __init__(self) -> None:
        super().__init__(KILLED, kind="KeyboardInterrupt")


def _restricted(header: Header) -> Header:
    """The answer to a Dict, Queue or volume request of a worker started with
    ``restrict_modal_access=True``: its code may not reach the runner."""
    refusal = RunnerError(
        f"this function runs with restrict_modal_access=True: its code cannot use the runner's "
        f"{header['op']}s (nr.Dict, nr.Queue, volume commits); remove restrict_modal_access to "
        "allow it",
        kind="PermissionDenied",
    )
    return error_done(header["id"], refusal)


def timed_out(request: Header) -> Header | None:
    """A function call's timeout error (Modal's `FunctionTimeoutError`, naming the function and
    its limit: not the runner's deadline, which adds a grace and counts a batch's inputs);
    None for a cell, whose timeout stays a plain ``TimeoutError``."""
    function, limit = request.get("function"), request.get("timeout")
    if not isinstance(function, dict) or not isinstance(limit, int | float):
        return None
    return {
        "ename": "FunctionTimeoutError",
        "evalue": f"function {function.get('name')} ran longer than its timeout of {limit:g} s "
        "and was stopped (it did not stop on its own when interrupted)",
        "builtin": "TimeoutError",
    }


class Worker:
    """A warm worker and the requests it is serving (one at a time, or several for concurrent
    inputs: the worker's frames carry their request's id)."""

    def __init__(self, process: WorkerHandle, serve: Serve) -> None:
        self.process = process
        self._serve = serve  # answers what the worker itself asks for (Dict and Queue requests)
        self.started_at = time.time()
        self.last_used = time.monotonic()
        self.cells_run = 0
        self.namespace: list[DescribeObject] = []
        self.alive = True
        self._death = ""  # how the worker ended, once it has
        self._requests: dict[str, _InFlight] = {}
        self._interrupted: set[str] = set()  # requests in progress that were interrupted
        self._answering: set[asyncio.Task[None]] = set()
        process.connection.listen(self._on_frame)
        self._watch_task = asyncio.create_task(self._watch())

    @property
    def id(self) -> str:
        """The worker's id, unique on this runner."""
        return self.process.id

    @property
    def busy(self) -> bool:
        """Whether a request is being served."""
        return bool(self._requests)

    def serves(self, request_id: str) -> bool:
        """Whether ``request_id`` is in progress here."""
        return request_id in self._requests

    def _on_frame(self, header: Header, buffers: list[bytearray]) -> None:
        op = header.get("op")
        if op in WORKER_REQUESTS:  # the worker waits for this answer
            invalid = check(WORKER_FRAMES, header, buffers)
            if invalid is not None:
                self.send(invalid, [])
                return
            if self.process.spec.restrict_modal_access:
                self.send(_restricted(header), [])
                return
            if op == Op.VOLUME:  # a worker commits or reloads its own working copies only
                owned = self.process.checkouts
                header["checkouts"] = [c for c in header.get("checkouts", ()) if c in owned]
            task = asyncio.create_task(self._answer(header, buffers))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)
            return
        request_id = header.get("id")
        request = self._requests.get(request_id) if isinstance(request_id, str) else None
        if request is None:
            return  # output of a request whose caller has gone
        if op != Op.DONE:
            request.forward(header, buffers)
        elif not request.done.done():
            header["worker"] = self.id
            if self.process.spec.single_use:  # one input per container: the next gets a new one
                header["retire"] = True
            self._record(header)
            if request.forward_done:
                request.forward(header, buffers)
            request.settle((header, buffers))

    async def _watch(self) -> None:
        """When the connection closes: fail the requests in progress, saying how it ended."""
        await self.process.connection.closed
        self.alive = False
        status = await self.process.exit_status()
        pid = self.process.stats().pid
        self._death = f"the worker (pid {pid}) died while running this: {status}"
        for request_id, request in list(self._requests.items()):
            request.settle(self._died(request_id))

    def _died(self, request_id: str) -> Frame:
        return error_done(request_id, WorkerDied(self._death), worker=self.id, held=[]), []

    def _not_leasable(self, request_id: str) -> Frame:
        """A lease its backend cannot offer (a client cannot reach the worker's own socket):
        the client then sends its calls through the runner."""
        refusal = RunnerError(
            f"worker {self.id} cannot be reached directly on this runner's backend; "
            "calls go through the runner",
            kind="NotLeasable",
        )
        return error_done(request_id, refusal, worker=self.id, held=[]), []

    async def _answer(self, header: Header, buffers: list[bytearray]) -> None:
        try:
            reply, out = await self._serve(header, buffers)
        except Exception as exc:  # the worker waits for an answer, whatever happened
            log.exception("serving a worker's %s request failed", header["op"])
            reply, out = error_done(header["id"], exc), []
        with contextlib.suppress(ConnectionClosed):
            self.process.connection.send(reply, out)

    def _record(self, done: Header) -> None:
        cells_run, namespace = done.get("cells_run"), done.get("namespace")
        if isinstance(cells_run, int):
            self.cells_run = cells_run
        if not namespace:  # a call's done: no namespace (and no time to spend on the hot path)
            self.namespace = []
            return
        with contextlib.suppress(ValidationError, TypeError):  # mangled: the last good one stays
            self.namespace = [DescribeObject.model_validate(item) for item in namespace]

    def send(self, header: Header, buffers: Sequence[Buffer]) -> None:
        """Send a frame that belongs to the request in progress (``blobs``)."""
        with contextlib.suppress(ConnectionClosed):  # the request's done says how it ended
            self.process.connection.send(header, buffers)

    def interrupt(self) -> None:
        """Interrupt the request in progress."""
        self._interrupted.update(self._requests)
        self.process.interrupt()

    async def run(
        self,
        header: Header,
        buffers: Sequence[Buffer],
        forward: Forward,
        timeout: float | None,
        forward_done: bool = False,
    ) -> Frame:
        """Serve one request, forwarding the frames it produces (``forward_done``: its ``done``
        too, before it is returned); return its ``done`` frame."""
        if self._death:
            return self._died(header["id"])
        if header.get("op") == Op.LEASE and not self.process.direct:
            return self._not_leasable(header["id"])
        request = self._requests[header["id"]] = _InFlight(forward, forward_done)
        try:
            self.send(header, buffers)
            if timeout is None:
                return await request.seen
            return await self._wait(request.done, timeout, header)
        except asyncio.CancelledError:
            if await self._abandon(header["id"], request.done):
                raise WorkerKilled() from None
            raise
        finally:
            del self._requests[header["id"]]
            self._interrupted.discard(header["id"])
            self.last_used = time.monotonic()

    async def _abandon(self, request_id: str, done: asyncio.Future[Frame]) -> bool:
        """The caller gave up (a cancel): interrupt the code, and stop a worker that ignores it.
        A request interrupted already (the cancel is a second Ctrl-C) gets a short grace, then
        its worker is killed, like Jupyter's restart; whether it was."""
        again = request_id in self._interrupted
        if not again:
            self.interrupt()
        try:
            await asyncio.wait_for(asyncio.shield(done), KILL_GRACE if again else INTERRUPT_GRACE)
        except TimeoutError:
            await (self.kill() if again else self.stop())
            return again
        return False

    async def _wait(self, done: asyncio.Future[Frame], timeout: float, request: Header) -> Frame:
        """``done`` within ``timeout``, else the request interrupted, then its worker stopped.
        Shielded: a cancel must leave ``done`` for `_abandon` to await."""
        try:
            return await asyncio.wait_for(asyncio.shield(done), timeout)
        except TimeoutError:
            pass
        self.interrupt()
        try:
            result = await asyncio.wait_for(asyncio.shield(done), INTERRUPT_GRACE)
        except TimeoutError:
            await self.stop()
            result = await done
        header, _ = result
        header["error"] = {
            "ename": "TimeoutError",
            "evalue": f"stopped after its timeout of {timeout:g} s",
            "traceback": (header.get("error") or {}).get("traceback", []),
            **(timed_out(request) or {}),
        }
        header["ok"] = False
        return header, []

    def joined(self, group: str) -> None:
        """The runner's spare was taken by the pool ``group`` (`WorkerHandle.joined`)."""
        self.process.joined(group)

    def on_gone(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the worker has gone (stopped, or died), before anyone awaiting
        its `stop` resumes."""
        self._watch_task.add_done_callback(lambda _: callback())

    async def kill(self) -> None:
        """Kill the worker process now, whatever it is running."""
        self.alive = False
        await self.process.kill()
        await self._watch_task

    async def stop(self) -> None:
        """Stop the worker: told to, it leaves after what it runs and its ``@nr.exit()``
        methods, which may still use Dicts, Queues and volumes through the runner; one that has
        not left within `STOP_GRACE` is killed."""
        self.alive = False
        # Said before the stop frame: the worker may leave, and `_watch` see it, before `stop`
        # below runs; the exit must then count as the clean stop it is (volumes commit).
        self.process.leaving()
        self.send({"op": Op.STOP, "id": "stop"}, [])
        try:
            await asyncio.wait_for(asyncio.shield(self.process.connection.closed), STOP_GRACE)
        except TimeoutError:
            await self.process.kill()
        else:
            await self.process.stop()
        await self._watch_task

    def describe(self) -> DescribeWorker:
        """The worker as the API shows it."""
        stats = self.process.stats()
        return DescribeWorker(
            id=self.id,
            pid=stats.pid,
            spec=self.process.spec,
            started_at=self.started_at,
            uptime_s=time.time() - self.started_at,
            rss_bytes=stats.rss_bytes,
            busy=self.busy,
            cells_run=self.cells_run,
            objects=self.namespace,
        )
