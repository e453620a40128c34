"""Serving one request, whoever asked: a kernel's channel, a spawned call, and later a schedule
firing or an HTTP endpoint call, none of which has a connection of its own.

`Dispatcher.serve` is given the session the request runs in (None for a request with no kernel:
a deployed object's call, a spawned call's result), the request frame and its buffers, and
``forward``, where the request's output frames go (a channel's send, a log collector, a
discard). Everything serving takes happens here, not in the channel: finding or starting the
worker (a session's cell worker, a function's pool, a deployed app's pool), the deadline over
the worker's own timer, retries after a worker died, GPU queue notices and usage summaries,
image build log lines, cancellation, and the run history. It always answers with a ``done``
frame, even when serving fails in a way nobody foresaw.

Spawned calls (`Dispatcher.spawn`) belong to the runner, not to the channel that spawned them:
they run on after that kernel disconnects, and any kernel may collect them with a ``get``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from pydantic import ValidationError

from nbremote.wire.codec import Buffer, Header
from nbremote.wire.http import WorkerSpec
from nbremote.wire.ops import Op

from .apps import DeployedApp, DeployedApps
from .backends import WorkerStartError
from .batching import gate
from .calls import CallRegistry
from .errors import WorkerDied, error_done
from .frames import Frame
from .gpus import STATUS, GpuBroker
from .images import BUILD_LOG
from .sessions import Session
from .state import State
from .workers import INTERRUPT_GRACE, Forward, Worker, WorkerKilled

REQUESTS = (Op.EXEC, Op.PULL, Op.CALL, Op.GET, Op.LEASE)  # what `Dispatcher.serve` answers
HISTORY = (Op.EXEC, Op.PULL)  # what goes into the run history
log = logging.getLogger(__name__)


def discard(header: Header, buffers: Sequence[Buffer]) -> None:
    """Where a spawned call's output goes: nobody is waiting for it."""


def _logging(app: DeployedApp, forward: Forward) -> Forward:
    """``forward``, keeping what the app's code prints in the app's log on the way."""

    def logged(header: Header, buffers: Sequence[Buffer]) -> None:
        if header.get("op") == Op.STREAM:  # the app's code may send anything: no KeyError here
            app.log(str(header.get("text", "")))
        forward(header, buffers)

    return logged


@asynccontextmanager
async def _reporting_to(forward: Forward, request_id: str) -> AsyncIterator[None]:
    """While serving a request: its GPU queue notices and image build log lines go to
    ``forward`` (set for the caller's context only until the request is answered, so that a
    caller serving several requests in a row, a scheduler say, does not mix them up)."""

    async def notice(text: str) -> None:
        forward({"op": Op.NOTICE, "id": request_id, "text": text}, [])

    async def build_line(line: str) -> None:
        forward({"op": Op.STREAM, "id": request_id, "name": "stderr", "text": f"{line}\n"}, [])

    status, build = STATUS.set(notice), BUILD_LOG.set(build_line)
    try:
        yield
    finally:
        BUILD_LOG.reset(build)
        STATUS.reset(status)


def _needs(session: Session | None, header: Header) -> Session:
    if session is None:
        raise LookupError(
            f"a {header['op']!r} request runs in a notebook session, and this one has none: "
            "send it on a session's channel (or call a deployed function)"
        )
    return session


class Dispatcher:
    """Serves requests for one runner.

    Args:
        state: where the run history is written.
        gpus: the GPU broker (a cell's GPU usage is measured around its run).
        apps: the deployed apps, whose pools serve calls naming a deployed object.
        calls: where spawned calls are kept until collected.
    """

    def __init__(
        self, state: State, gpus: GpuBroker, apps: DeployedApps, calls: CallRegistry
    ) -> None:
        self.state = state
        self.gpus = gpus
        self.apps = apps
        self.calls = calls

    async def serve(
        self,
        header: Header,
        buffers: list[bytearray],
        forward: Forward,
        session: Session | None = None,
    ) -> Frame:
        """Serve one request (``op`` in `REQUESTS`); its ``done`` frame, never an exception.

        Args:
            header: the request frame, already checked against the wire schema.
            buffers: its buffers.
            forward: where its output frames go, as they come; never raises.
            session: the notebook session it runs in; None for a request with no kernel.

        Example:
            >>> done, out = await dispatcher.serve(header, buffers, frames.append)  # doctest: +SKIP
        """
        started = time.time()
        try:
            done, out = await self._serve(header, buffers, forward, session)
        except Exception as exc:  # the caller waits for an answer, whatever happened
            log.exception("serving a %s request failed", header["op"])
            done, out = error_done(header["id"], exc, unforeseen=True, held=[]), []
        if header["op"] in HISTORY and session is not None:
            error = done.get("error") or {}
            self.state.record_run(
                header["id"],
                session.id,
                session.notebook,
                header["op"],
                started,
                time.time(),
                bool(done.get("ok")),
                error.get("ename"),
            )
        return done, out

    def spawn(self, header: Header, buffers: list[bytearray], session: Session | None) -> None:
        """Start a ``spawn`` request as the call ``header["call_id"]``: it runs apart from
        whoever spawned it (its output is discarded), and `get` requests collect its result."""
        work = self.serve({**header, "op": Op.CALL}, buffers, discard, session)
        self.calls.start(header["call_id"], work)

    def cancel_spawned(self, call_id: str) -> bool:
        """Cancel a spawned call; False if there is none by that id."""
        return self.calls.cancel(call_id)

    async def _serve(
        self, header: Header, buffers: list[bytearray], forward: Forward, session: Session | None
    ) -> Frame:
        request_id = header["id"]
        try:
            async with _reporting_to(forward, request_id):
                if header["op"] == Op.GET:
                    return await self._get(header)
                if header["op"] in (Op.CALL, Op.LEASE):  # a lease is a long call, in a pool
                    return await self._call(header, buffers, forward, session)
                cell = self._cell_worker(header, forward, _needs(session, header))
                async with cell as worker, self.gpus.measured(worker, header, forward):
                    return await worker.run(header, buffers, forward, header.get("timeout"))
        except (ValidationError, WorkerStartError, LookupError, WorkerKilled) as exc:
            return error_done(request_id, exc, held=[]), []
        except asyncio.CancelledError:
            cancelled = asyncio.CancelledError("the call was cancelled")
            return error_done(request_id, cancelled, held=[]), []

    @asynccontextmanager
    async def _cell_worker(
        self, header: Header, forward: Forward, session: Session
    ) -> AsyncIterator[Worker]:
        spec = WorkerSpec.model_validate(header.get("spec") or {})
        if header["op"] == Op.PULL:  # reads the warm worker's namespace: starts none
            worker = session.find(spec)
            if worker is None:
                raise LookupError("there is no warm worker yet: run a %%remote cell first")
            yield worker
            return

        async def status(text: str) -> None:
            forward({"op": Op.STATUS, "id": header["id"], "text": text}, [])

        async with session.cell_worker(spec, bool(header.get("fresh")), status) as worker:
            yield worker

    async def _call(
        self,
        header: Header,
        buffers: list[bytearray],
        forward: Forward,
        session: Session | None,
    ) -> Frame:
        if "deployed" in header:
            app, pool, buffers = self.apps.attach(header, buffers)
            forward = _logging(app, forward)
        else:
            pool = _needs(session, header).pool_for(header["pool"])
        header.pop("batched", None)  # the runner's own field, to a worker: never a kernel's
        if header.get("batch"):  # @nr.batched: grouped with other callers' inputs
            return await gate(pool, pool.run, header).submit(header, buffers, forward)
        timeout = header.get("timeout")
        # A safety net over the worker's own per-input timer.
        deadline = timeout * header.get("count", 1) + INTERRUPT_GRACE if timeout else None
        retries = int((header.get("retries") or {}).get("max_retries", 0))
        for attempt in range(retries + 1):
            done, out = await pool.run(header, buffers, forward, deadline)
            died = (done.get("error") or {}).get("ename") == WorkerDied.__name__
            if not died or attempt == retries:
                return done, out
        raise AssertionError("unreachable")

    async def _get(self, header: Header) -> Frame:
        try:
            frame = await self.calls.get(header["call_id"], header.get("timeout"))
        except KeyError:
            raise LookupError(
                f"no call {header['call_id']!r} on this runner (finished calls are kept an hour)"
            ) from None
        if frame is None:
            done = error_done(header["id"], TimeoutError("the call is still running"), held=[])
            return {**done, "pending": True}, []
        done, out = frame
        return {**done, "id": header["id"]}, out
