"""A kernel's frame channel: requests in, the workers' frames out, on one upgraded connection.

Client -> runner frames:
  exec {id, code, inputs, outputs, deletes, spec, fresh, timeout, execution_count} + buffers
  pull {id, names, spec}
  call {id, pool, function, count, first, timeout, retries} + function and argument buffers
  spawn {id, call_id, ...as call}   get {id, call_id, timeout}
  blobs {id, items} + buffers (answer to ``need``) · input_reply {id, value | error} (answer
    to a cell's ``input``) · interrupt {id} · cancel {id}
  lease {id, pool}: one of the pool's workers serves this (same-host) client directly until it
    lets go; its ``leased {address, token}`` frame says where (see `worker_lease`)
Runner -> client frames: whatever the worker sends for a request (stream, display, result,
need, ...), ``status`` while a worker starts, ``notice`` for the person (GPU queue position, a
GPU cell's summary), and ``done`` last.

The channel is the connection only: every client frame is checked against the wire schema first
(`frame_checks`), and a bad one is answered with an error ``done`` naming its field; requests go
to the runner's `Dispatcher` (which serves them, and would serve them just the same with no
client attached), with this channel's ``send`` for their output; ``blobs``, ``input_reply``,
``interrupt`` and ``cancel`` go to the worker or task of the request they name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from nbremote.wire.codec import Buffer, Header
from nbremote.wire.ops import Op
from nbremote.wire.shm import internalize

from .dispatch import REQUESTS
from .errors import error_done
from .frame_checks import CLIENT_FRAMES, check
from .frames import ConnectionClosed, FrameConnection
from .job_promote import promote

if TYPE_CHECKING:
    from .service import Runner
    from .sessions import Session

log = logging.getLogger(__name__)

# TCP keepalive on every channel: (idle seconds, seconds between probes, probes). A kernel whose
# machine stops answering (asleep, off the network) is noticed after about 5 + 2 * 3 = 11 s of
# silence and its session detached; its OS answers the probes while it is up, so an idle live
# kernel costs no traffic of its own and is never detached.
KEEPALIVE = (5, 2, 3)


def keep_alive(sock: socket.socket) -> None:
    """Turn on `KEEPALIVE` for a channel's socket (where the OS lets its timing be set)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle, interval, count = KEEPALIVE
    timing = {"TCP_KEEPIDLE": idle, "TCP_KEEPINTVL": interval, "TCP_KEEPCNT": count}
    for name, value in timing.items():
        option = getattr(socket, name, None)
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


class Channel:
    """Serves the frames of one connection of one session."""

    def __init__(self, runner: Runner, session: Session, connection: FrameConnection) -> None:
        self.runner = runner
        self.session = session
        self.connection = connection
        self.tasks: dict[str, asyncio.Task[None]] = {}  # request id -> its task
        self._background: set[asyncio.Task[None]] = set()
        self._asked: dict[str, asyncio.Future[tuple[Header, list[bytearray]]]] = {}  # promotions

    def send(self, header: Header, buffers: Sequence[Buffer] = ()) -> None:
        """Send a frame to the client; a client that went away loses it."""
        with contextlib.suppress(ConnectionClosed):
            self.connection.send(header, buffers)

    async def serve(self) -> None:
        """Serve the client's frames until it disconnects; then cancel what it left running
        (spawned calls excepted: they belong to the runner)."""
        self.connection.listen(self._receive)
        try:
            await self.connection.closed
        finally:
            for task in self.tasks.values():
                task.cancel()

    def _soon(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _receive(self, header: Header, buffers: list[bytearray]) -> None:
        invalid = check(CLIENT_FRAMES, header, buffers)
        if invalid is not None:
            if not self._refuse_input(header, invalid):
                self.send(invalid)
            return
        op, request_id = header["op"], header["id"]
        if self.session.ended and (op in REQUESTS or op == Op.SPAWN):
            self._renew(request_id)
        if op in REQUESTS or op == Op.PROMOTE:
            answer = self._promote(header) if op == Op.PROMOTE else self._answer(header, buffers)
            task = asyncio.create_task(answer)
            self.tasks[request_id] = task
            task.add_done_callback(lambda _: self.tasks.pop(request_id, None))
        elif op == Op.SPAWN:
            self.runner.dispatcher.spawn(header, buffers, self.session)
            self.send({"op": Op.DONE, "id": request_id, "ok": True, "call_id": header["call_id"]})
        elif op in (Op.DICT, Op.QUEUE):  # Dict and Queue requests from the notebook
            self._soon(self._store(header, buffers))
        elif op == Op.BLOBS and request_id in self._asked:  # a promotion's inputs
            waiting = self._asked.pop(request_id)
            if not waiting.done():
                waiting.set_result((header, buffers))
        elif op in (Op.BLOBS, Op.INPUT_REPLY):
            worker = self.session.serving(request_id)
            if worker is not None:
                worker.send(header, buffers)
        elif op == Op.INTERRUPT:
            worker = self.session.serving(request_id)
            if worker is not None:
                worker.interrupt()
            elif request_id in self.tasks:  # not running yet (a GPU queue, an image build): stop
                self.tasks[request_id].cancel()
        elif op == Op.CANCEL and not self.runner.dispatcher.cancel_spawned(request_id):
            running = self.tasks.get(request_id)
            if running is not None:
                running.cancel()

    def _refuse_input(self, header: Header, invalid: Header) -> bool:
        """An ``input_reply`` that cannot be passed on (too long, say) still answers the cell's
        ``input()``, which raises its error: else the cell would wait for an answer forever."""
        request_id = header.get("id")
        worker = self.session.serving(request_id) if isinstance(request_id, str) else None
        if header.get("op") != Op.INPUT_REPLY or worker is None:
            return False
        worker.send({"op": Op.INPUT_REPLY, "id": request_id, "error": invalid["error"]}, [])
        return True

    def _renew(self, request_id: str) -> None:
        """The session was ended under its kernel (``nbremote sessions rm``): go on in a new one
        of the same id, and tell the person that its remote namespace is empty."""
        ended = self.session
        self.session = self.runner.sessions.renew(ended, self.connection)
        text = (
            f"session {ended.id[:8]} was ended on the runner (`nbremote sessions rm`): its "
            "workers are gone, and this request starts a new, empty remote namespace"
        )
        self.send({"op": Op.NOTICE, "id": request_id, "text": text})

    async def _answer(self, header: Header, buffers: list[bytearray]) -> None:
        done, out = await self.runner.dispatcher.serve(header, buffers, self.send, self.session)
        self.send(done, out)

    async def _promote(self, header: Header) -> None:
        """A cell promoted to a job (`job_promote`): its inputs asked for here, on this channel."""

        async def ask(hashes: list[str]) -> tuple[Header, list[bytearray]]:
            waiting: asyncio.Future[tuple[Header, list[bytearray]]]
            waiting = asyncio.get_running_loop().create_future()
            self._asked[header["id"]] = waiting
            self.send({"op": Op.NEED, "id": header["id"], "hashes": hashes})
            try:
                reply, buffers = await waiting
            finally:
                self._asked.pop(header["id"], None)
            # Big values came as shared-memory files (a same-host kernel): read them here, as a
            # worker would (`ShmRefused`, a ValueError, fails the promotion naming why).
            internalize(reply, buffers, self.runner.shm_dir)
            return reply, buffers

        self.send(await promote(self.runner.jobs, header, ask))

    async def _store(self, header: Header, buffers: list[bytearray]) -> None:
        try:
            done, out = await self.runner.serve_worker(header, buffers)
        except Exception as exc:  # the caller waits for an answer, whatever happened
            log.exception("serving a %s request failed", header["op"])
            done, out = error_done(header["id"], exc, held=[]), []
        self.send(done, out)


async def serve_channel(runner: Runner, session: Session, connection: FrameConnection) -> None:
    """Attach a connection to ``session`` for as long as it stays open."""
    session.attach(connection)
    runner.touch()
    channel = Channel(runner, session, connection)
    try:
        await channel.serve()
    finally:
        channel.session.detach(connection)  # the one it serves now, if it was renewed
        runner.touch()
