"""A kernel's frame channel: requests in, the workers' frames out, on one upgraded connection.

Client -> runner frames:
  exec {id, code, inputs, outputs, deletes, spec, fresh, timeout, execution_count} + input buffers
  pull {id, names, spec} · blobs {id, items} + buffers (answer to ``need``) · interrupt {id}
Runner -> client frames: whatever the worker sends for a request (stream, display, result,
need, ...), ``status`` while a worker starts, and ``done`` last (with the worker's id).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError
from tornado.iostream import IOStream, StreamClosedError

from nbremote._protocol import Buffer, Header
from nbremote.schema import WorkerSpec

from .backends import WorkerStartError
from .frames import read_frame, write_frame
from .workers import Worker

if TYPE_CHECKING:
    from .service import Runner
    from .sessions import Session


def _failed(request_id: str, ename: str, evalue: str) -> Header:
    return {
        "op": "done",
        "id": request_id,
        "ok": False,
        "held": [],
        "error": {"ename": ename, "evalue": evalue, "traceback": []},
    }


class Channel:
    """Serves the frames of one connection of one session."""

    def __init__(self, runner: Runner, session: Session, stream: IOStream) -> None:
        self.runner = runner
        self.session = session
        self.stream = stream
        self.active: dict[str, Worker] = {}  # request id -> the worker serving it
        self.tasks: set[asyncio.Task[None]] = set()

    async def send(self, header: Header, buffers: Sequence[Buffer] = ()) -> None:
        """Send a frame to the client; a client that went away loses it."""
        with contextlib.suppress(StreamClosedError):
            await write_frame(self.stream, header, buffers)

    async def serve(self) -> None:
        """Read the client's frames until it disconnects."""
        while True:
            try:
                header, buffers = await read_frame(self.stream)
            except StreamClosedError:
                return
            op, request_id = header.get("op"), header.get("id", "")
            if op in ("exec", "pull"):
                task = asyncio.create_task(self.run(header, buffers))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            elif op == "blobs" and request_id in self.active:
                await self.active[request_id].send(header, buffers)
            elif op == "interrupt" and request_id in self.active:
                self.active[request_id].interrupt()

    async def _worker(self, header: Header) -> Worker:
        spec = WorkerSpec.model_validate(header.get("spec") or {})
        if header["op"] == "pull":
            worker = self.session.find(spec)
            if worker is None:
                raise LookupError("there is no warm worker yet: run a %%remote cell first")
            return worker

        async def status(text: str) -> None:
            await self.send({"op": "status", "id": header["id"], "text": text})

        return await self.session.worker_for(spec, bool(header.get("fresh")), status)

    async def run(self, header: Header, buffers: list[bytearray]) -> None:
        """Serve one exec/pull request and answer its ``done``."""
        request_id = header["id"]
        started = time.time()
        try:
            worker = await self._worker(header)
        except (ValidationError, WorkerStartError, LookupError) as exc:
            await self.send(_failed(request_id, type(exc).__name__, str(exc)))
            return
        self.active[request_id] = worker
        try:
            done, out = await worker.run(header, buffers, self.send, header.get("timeout"))
        finally:
            del self.active[request_id]
        await self.send(done, out)
        error = done.get("error") or {}
        await self.runner.state.record_run(
            request_id,
            self.session.id,
            self.session.notebook,
            header["op"],
            started,
            time.time(),
            bool(done.get("ok")),
            error.get("ename"),
        )


async def serve_channel(runner: Runner, session: Session, stream: IOStream) -> None:
    """Attach a connection to ``session`` for as long as it stays open."""
    session.channels += 1
    runner.touch()
    try:
        await Channel(runner, session, stream).serve()
    finally:
        session.channels -= 1
        session.detached_since = time.monotonic()
        runner.touch()
