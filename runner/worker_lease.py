"""A leased worker: it serves one same-host client's calls straight from that client's socket.

The runner leases a warm function worker to a kernel with a ``lease`` request. The worker opens
an abstract Unix socket (no file to clean up; a one-time token guards it), says where in a
``leased`` frame that the runner relays to the kernel, and serves the calls that arrive on that
socket — with no runner hop, so each ``.remote()`` costs two socket hops instead of four. The
lease ends, and its ``done`` goes to the runner, when the client closes the socket, when no call
came for `LEASE_IDLE` seconds, or as soon as the runner has something to say (a reply to a
background thread's Dict request, or its leaving): a call waiting on the socket then is left
unread, so the client knows it never ran and sends it through the runner instead.

Standard library only: this runs inside every container.
"""

from __future__ import annotations

import hmac
import os
import secrets
import select
import socket
from typing import Protocol

from nbremote.wire.codec import FrameReader, Header
from nbremote.wire.held import HeldBuffers
from nbremote.wire.op_checks import check
from nbremote.wire.ops import Op
from nbremote.wire.spin import spin_until_readable

from .worker_io import Outbox

LEASE_IDLE = 1.0  # seconds without a call before the worker lets go (the client: after half)
# Big arguments this worker received from leasing kernels, by digest, so that the same array is
# not shipped again (`nbremote.wire.held`); one cache per worker process, bounded.
HELD = HeldBuffers()


class Worker(Protocol):
    """What a lease needs of the worker that serves it (`nbremote_runner.worker.Worker`, which
    imports this module: the lease names the worker's shape, not the worker)."""

    sock: socket.socket  # to the runner
    outbox: Outbox
    reader: FrameReader  # where the request being served comes from
    runner_reader: FrameReader

    def call(self, header: Header, buffers: list[bytearray]) -> None: ...

    def fail(self, header: Header, exc: Exception) -> None: ...


def serve_lease(worker: Worker, header: Header) -> None:
    """Serve one lease, from the ``leased`` frame to the ``done``."""
    token = secrets.token_hex(16)
    address = f"nbremote-{os.getpid()}-{token[:12]}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(f"\0{address}")  # abstract: nothing on disk
        listener.listen(1)
        listener.settimeout(LEASE_IDLE)
        worker.outbox.send(Op.LEASED, address=address, token=token)
        client = _accept(listener, token, worker.outbox.shm_dir)
    if client is not None:
        with client[0]:
            _serve_client(worker, header, *client)
    worker.outbox.send(Op.DONE, ok=True)


def _accept(
    listener: socket.socket, token: str, shm_dir: str | None
) -> tuple[socket.socket, FrameReader] | None:
    """The client's connection, once it has shown the token; None if it does not come."""
    try:
        conn, _ = listener.accept()
    except TimeoutError:
        return None
    conn.settimeout(LEASE_IDLE)
    reader = FrameReader(conn, shm_dir=shm_dir)  # the kernel shares the runner's folder
    reader.held = HELD
    try:
        hello, _ = reader.read()
    except OSError:
        conn.close()
        return None
    if not hmac.compare_digest(str(hello.get("token", "")), token):
        conn.close()
        return None
    conn.settimeout(None)
    return conn, reader


def _serve_client(worker: Worker, lease: Header, conn: socket.socket, reader: FrameReader) -> None:
    """Answer the client's calls; the worker's frames go to it meanwhile."""
    lease_id = lease["id"]
    worker.reader = reader
    worker.outbox.use(conn)
    try:
        while True:
            if not reader.buffered:
                spin_until_readable([conn, worker.sock])  # a loop's next call comes within µs
                ready, _, _ = select.select([conn, worker.sock], [], [], LEASE_IDLE)
                if worker.sock in ready or conn not in ready:
                    return
            try:
                call, buffers = reader.read()
            except OSError:
                return  # the client let go
            call_id = call.get("id")
            call_id = call_id if isinstance(call_id, str) else None
            worker.outbox.serve(call_id, bool(call.get("shm_ok")))
            try:
                if call.get("op") == Op.CALL:
                    call.setdefault("pool", lease["pool"])  # a leased call does not repeat it
                    check(call)  # refused naming the field, answered, and the lease goes on
                    worker.call(call, buffers)
            except OSError:
                return  # the client went away mid-call (a second Ctrl-C)
            except Exception as exc:  # a call it cannot serve (FrameInvalid too): its error
                worker.fail(call, exc)
            finally:
                worker.outbox.serve(lease_id)
                del call, buffers
    finally:
        worker.reader = worker.runner_reader
        worker.outbox.use(worker.sock)
