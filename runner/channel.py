"""A kernel's frame channel: requests in, the workers' frames out, on one upgraded connection.

Client -> runner frames:
  exec {id, code, inputs, outputs, deletes, spec, fresh, timeout, execution_count} + buffers
  pull {id, names, spec}
  call {id, pool, function, count, first, timeout, retries} + function and argument buffers
  spawn {id, call_id, ...as call}   get {id, call_id, timeout}
  blobs {id, items} + buffers (answer to ``need``) · interrupt {id} · cancel {id}
  lease {id, pool}: one of the pool's workers serves this (same-host) client directly until it
    lets go; its ``leased {address, token}`` frame says where (see `worker_lease`)
Runner -> client frames: whatever the worker sends for a request (stream, display, result,
need, ...), ``status`` while a worker starts, ``notice`` for the person (GPU queue position, a
GPU cell's summary), and ``done`` last.

Every client frame is checked against the wire schema first (`frame_checks`): a bad one is
answered with an error ``done`` naming its field, and every request is answered, even when
serving it fails in a way nobody foresaw.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from nbremote.wire.codec import Buffer, Header
from nbremote.wire.http import WorkerSpec

from .backends import WorkerStartError
from .errors import WorkerDied, error_done
from .frame_checks import CLIENT_FRAMES, check
from .frames import ConnectionClosed, Frame, FrameConnection
from .gpus import STATUS
from .images import BUILD_LOG
from .workers import INTERRUPT_GRACE, Forward, Worker

if TYPE_CHECKING:
    from .apps import DeployedApp
    from .service import Runner
    from .sessions import Session

REQUESTS = ("exec", "pull", "call", "get", "lease")
log = logging.getLogger(__name__)


async def _build_line(send: Forward, request_id: str, line: str) -> None:
    """An image build's log line, into the output of the request that waits for the build."""
    send({"op": "stream", "id": request_id, "name": "stderr", "text": f"{line}\n"}, ())


def _discard(header: Header, buffers: Sequence[Buffer]) -> None:
    """Where a spawned call's output goes: nobody is waiting for it."""


def _logging(app: DeployedApp, forward: Forward) -> Forward:
    """``forward``, keeping what the app's code prints in the app's log on the way."""

    def logged(header: Header, buffers: Sequence[Buffer]) -> None:
        if header.get("op") == "stream":  # the app's code may send anything: no KeyError here
            app.log(str(header.get("text", "")))
        forward(header, buffers)

    return logged


class Channel:
    """Serves the frames of one connection of one session."""

    def __init__(self, runner: Runner, session: Session, connection: FrameConnection) -> None:
        self.runner = runner
        self.session = session
        self.connection = connection
        self.tasks: dict[str, asyncio.Task[None]] = {}  # request id -> its task
        self._background: set[asyncio.Task[None]] = set()

    def send(self, header: Header, buffers: Sequence[Buffer] = ()) -> None:
        """Send a frame to the client; a client that went away loses it."""
        with contextlib.suppress(ConnectionClosed):
            self.connection.send(header, buffers)

    async def serve(self) -> None:
        """Serve the client's frames until it disconnects; then cancel what it left running."""
        self.connection.listen(self._dispatch)
        try:
            await self.connection.closed
        finally:
            for task in self.tasks.values():
                task.cancel()

    def _soon(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _dispatch(self, header: Header, buffers: list[bytearray]) -> None:
        invalid = check(CLIENT_FRAMES, header, buffers)
        if invalid is not None:
            self.send(invalid)
            return
        op, request_id = header["op"], header["id"]
        if op in REQUESTS:
            task = asyncio.create_task(self.answer(header, buffers))
            self.tasks[request_id] = task
            task.add_done_callback(lambda _: self.tasks.pop(request_id, None))
        elif op == "spawn":
            work = self.dispatch({**header, "op": "call"}, buffers, _discard)
            self.runner.calls.start(header["call_id"], work)
            self.send({"op": "done", "id": request_id, "ok": True, "call_id": header["call_id"]})
        elif op in ("dict", "queue"):  # Dict and Queue requests from the notebook
            self._soon(self._store(header, buffers))
        elif op == "blobs":
            worker = self.session.serving(request_id)
            if worker is not None:
                worker.send(header, buffers)
        elif op == "interrupt":
            worker = self.session.serving(request_id)
            if worker is not None:
                worker.interrupt()
            elif request_id in self.tasks:  # not running yet (a GPU queue, an image build): stop
                self.tasks[request_id].cancel()
        elif op == "cancel" and not self.runner.calls.cancel(request_id):
            running = self.tasks.get(request_id)
            if running is not None:
                running.cancel()

    async def _store(self, header: Header, buffers: list[bytearray]) -> None:
        try:
            done, out = await self.runner.serve_worker(header, buffers)
        except Exception as exc:  # the caller waits for an answer, whatever happened
            log.exception("serving a %s request failed", header["op"])
            done, out = error_done(header["id"], exc, held=[]), []
        self.send(done, out)

    async def _cell_worker(self, header: Header) -> Worker:
        spec = WorkerSpec.model_validate(header.get("spec") or {})
        if header["op"] == "pull":
            worker = self.session.find(spec)
            if worker is None:
                raise LookupError("there is no warm worker yet: run a %%remote cell first")
            return worker

        async def status(text: str) -> None:
            self.send({"op": "status", "id": header["id"], "text": text})

        return await self.session.worker_for(spec, bool(header.get("fresh")), status)

    async def dispatch(
        self, header: Header, buffers: list[bytearray], forward: Forward | None = None
    ) -> Frame:
        """Serve one request wherever it goes; its ``done`` frame."""
        send = forward or self.send
        request_id = header["id"]

        # A worker started for this request tells its place in the GPU queue, if it waits there.
        async def notice(text: str) -> None:
            send({"op": "notice", "id": request_id, "text": text}, [])

        STATUS.set(notice)
        BUILD_LOG.set(functools.partial(_build_line, send, request_id))  # if an image is built
        try:
            if header["op"] == "get":
                return await self._get(header)
            if header["op"] in ("call", "spawn", "lease"):  # a lease is a long call, in a pool
                return await self._call(header, buffers, send)
            worker = await self._cell_worker(header)
            async with self.runner.gpus.measured(worker, header, send):
                return await worker.run(header, buffers, send, header.get("timeout"))
        except (ValidationError, WorkerStartError, LookupError) as exc:
            return error_done(request_id, exc, held=[]), []
        except asyncio.CancelledError:
            cancelled = asyncio.CancelledError("the call was cancelled")
            return error_done(request_id, cancelled, held=[]), []

    async def _call(self, header: Header, buffers: list[bytearray], send: Forward) -> Frame:
        if "deployed" in header:
            app, pool, buffers = self.runner.apps.attach(header, buffers)
            send = _logging(app, send)
        else:
            pool = self.session.pool_for(header["pool"])
        timeout = header.get("timeout")
        # A safety net over the worker's own per-input timer.
        deadline = timeout * header.get("count", 1) + INTERRUPT_GRACE if timeout else None
        retries = int((header.get("retries") or {}).get("max_retries", 0))
        for attempt in range(retries + 1):
            done, out = await pool.run(header, buffers, send, deadline)
            died = (done.get("error") or {}).get("ename") == WorkerDied.__name__
            if not died or attempt == retries:
                return done, out
        raise AssertionError("unreachable")

    async def _get(self, header: Header) -> Frame:
        try:
            frame = await self.runner.calls.get(header["call_id"], header.get("timeout"))
        except KeyError:
            raise LookupError(
                f"no call {header['call_id']!r} on this runner (finished calls are kept an hour)"
            ) from None
        if frame is None:
            done = error_done(header["id"], TimeoutError("the call is still running"), held=[])
            return {**done, "pending": True}, []
        done, out = frame
        return {**done, "id": header["id"]}, out

    async def answer(self, header: Header, buffers: list[bytearray]) -> None:
        """Serve a request and send its ``done``; cells and pulls also go into the run history."""
        started = time.time()
        try:
            done, out = await self.dispatch(header, buffers)
        except Exception as exc:  # the caller waits for an answer, whatever happened
            log.exception("serving a %s request failed", header["op"])
            done, out = error_done(header["id"], exc, unforeseen=True, held=[]), []
        if header["op"] in ("exec", "pull"):
            error = done.get("error") or {}
            self.runner.state.record_run(
                header["id"],
                self.session.id,
                self.session.notebook,
                header["op"],
                started,
                time.time(),
                bool(done.get("ok")),
                error.get("ename"),
            )
        self.send(done, out)


async def serve_channel(runner: Runner, session: Session, connection: FrameConnection) -> None:
    """Attach a connection to ``session`` for as long as it stays open."""
    session.channels += 1
    runner.touch()
    try:
        await Channel(runner, session, connection).serve()
    finally:
        session.channels -= 1
        session.detached_since = time.monotonic()
        runner.touch()
