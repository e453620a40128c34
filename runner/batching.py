"""Dynamic batching (``@nr.batched(max_batch_size=, wait_ms=)``): inputs of many callers, one call.

Callers call a batched function with single inputs (``f.remote(x)``, ``f.map(xs)``); the
function takes lists and returns a list. Batches are made here, in the runner, in front of the
function's pool, because this is the one place where the inputs of every caller meet: a kernel
sees only its own calls, a worker only the request it is handed, while the pool's callers (the
requests of a map, other cells' calls, other kernels' calls of a deployed app) all pass through
`Dispatcher._call`. Grouping before a worker is picked also lets batches run on several workers
at once, each worker serving one batch at a time as it would one input.

A `BatchGate` (one per pool and function version) holds the requests that arrive; it sends
them as one ``call`` when they hold ``max_batch_size`` inputs, or ``wait_ms`` after the first
came, whichever is sooner. The runner never unpickles arguments or results: the batch's
buffers are the callers' argument payloads one after the other, its ``batched`` field says how
many buffers and inputs each brought, and the worker answers with one result payload per
caller (`nbremote_runner.worker_patterns`), which is split here into each caller's own
``done``. An error of the call (a wrong-length list, an exception, a timeout, a dead worker)
reaches every caller of that batch. What the function prints goes to every caller.

The batch goes by the id of its first caller's request: that caller's ``interrupt`` reaches
the batch, as its ``need`` answers do (the worker's ``need`` goes to it alone). A caller that
cancels before its batch leaves leaves it; after, its answer is dropped.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbremote.wire.codec import Buffer, Header
from nbremote.wire.ops import Op

from .errors import error_done
from .frames import Frame
from .workers import INTERRUPT_GRACE, Forward

Run = Callable[[Header, Sequence[Buffer], Forward, float | None], Awaitable[Frame]]


@dataclass
class _Member:
    """One caller's request waiting in (or sent with) a batch."""

    header: Header
    front: list[bytearray]  # the function's and the constructor's buffers
    arguments: list[bytearray]  # its inputs' payload
    forward: Forward
    answer: asyncio.Future[Frame] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def count(self) -> int:
        return int(self.header.get("count", 1))


def _front(header: Header) -> int:
    """How many of a call's buffers come before its arguments."""
    function = header["function"]
    bind = function.get("bind") or {}
    return int(function.get("nbuf", 0)) + int(bind.get("nparams", 0))


class BatchGate:
    """Groups one function's calls into batches (see the module's docstring).

    Args:
        run: sends one call to the function's pool (``FunctionPool.run``).
        max_size: the most inputs in one batch.
        wait: seconds a batch waits for more inputs after its first.
    """

    def __init__(self, run: Run, max_size: int, wait: float) -> None:
        self._run = run
        self.max_size = max_size
        self.wait = wait
        self.pending: list[_Member] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def waiting(self) -> int:
        """Inputs waiting for their batch to leave (`get_current_stats`'s backlog)."""
        return sum(member.count for member in self.pending)

    async def submit(self, header: Header, buffers: list[bytearray], forward: Forward) -> Frame:
        """Add a call to the next batch; its own ``done`` once the batch has run."""
        front = _front(header)
        member = _Member(header, buffers[:front], buffers[front:], forward)
        if self.pending and self.waiting + member.count > self.max_size:
            self._flush()
        self.pending.append(member)
        if self.waiting >= self.max_size:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.wait, self._flush)
        try:
            return await asyncio.shield(member.answer)
        except asyncio.CancelledError:
            if member in self.pending:  # not sent yet: it leaves the batch
                self.pending.remove(member)
                if not self.pending and self._timer is not None:  # the next starts afresh
                    self._timer.cancel()
                    self._timer = None
            raise

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        members, self.pending = self.pending, []
        if members:
            task = asyncio.get_running_loop().create_task(self._send(members))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, members: list[_Member]) -> None:
        header, buffers = _combined(members)
        timeout = header.get("timeout")
        deadline = timeout + INTERRUPT_GRACE if timeout else None
        try:
            done, out = await self._run(header, buffers, _fan_out(members), deadline)
            frames = _split(members, done, out)
        except Exception as exc:  # a worker that did not start: each caller's error
            for member in members:
                if not member.answer.done():
                    member.answer.set_exception(exc)
            return
        for member, frame in zip(members, frames, strict=True):
            if not member.answer.done():
                member.answer.set_result(frame)


def _combined(members: list[_Member]) -> tuple[Header, list[bytearray]]:
    """One call of every member's inputs, by the first member's id; the function's buffers
    from a member that sent them (the others name it by hash)."""
    first = members[0]
    carrier = next((m for m in members if m.header["function"].get("nbuf")), first)
    header = {
        # A member's big buffers sent by digest would be asked of the first member: a batched
        # call takes none (its kernel sends them whole; another's break only its own inputs).
        **{k: v for k, v in first.header.items() if k != "pulled"},
        "function": carrier.header["function"],
        "count": sum(member.count for member in members),
        "first": 0,
        "retries": None,
        # Shared memory only if every caller may take it (a spawned call's result may be
        # collected elsewhere, so never by a mapped file); `_split` gives each its own files.
        "shm_ok": all(m.header.get("shm_ok") for m in members),
        "batched": [{"nbuf": len(m.arguments), "count": m.count} for m in members],
    }
    buffers = [*carrier.front]
    for member in members:
        buffers += member.arguments
    return header, buffers


def _fan_out(members: list[_Member]) -> Forward:
    """Where the batch's frames go: what it prints to every caller; a ``need`` to the first
    (whose id the batch goes by, so its answer finds the worker)."""

    def forward(header: Header, buffers: Sequence[Buffer]) -> None:
        if header.get("op") == Op.NEED:
            members[0].forward(header, buffers)
            return
        for member in members:
            member.forward({**header, "id": member.header["id"]}, buffers)

    return forward


def _split(members: list[_Member], done: Header, out: list[bytearray]) -> list[Frame]:
    """Each member's own ``done`` from the batch's: its results and errors, or the batch's
    failure."""
    answers: list[Header] = done.get("batched") or []
    if done.get("ok") and not _readable(done, members, len(out)):
        error = ValueError("the worker's answer to a batch cannot be read")
        done, out = error_done(done.get("id", ""), error, held=[]), []
    if not done.get("ok"):
        return [({**done, "id": m.header["id"]}, []) for m in members]
    frames: list[Frame] = []
    position = 0
    shared = done.get("shm") or []
    for member, answer in zip(members, answers, strict=True):
        end = position + answer["nbuf"]
        own = {k: v for k, v in done.items() if k not in ("batched", "errors", "id", "shm")}
        files = [[index - position, name] for index, name in shared if position <= index < end]
        if files:  # its buffers that came as shared-memory files, numbered as its own
            own["shm"] = files
        own.update(id=member.header["id"], errors=answer["errors"])
        frames.append((own, out[position:end]))
        position = end
    return frames


def _readable(done: Header, members: list[_Member], nbuf: int) -> bool:
    """Whether a worker's ``batched`` answer has one well-formed entry per member, and its
    shared-memory files are well-formed pairs (the worker runs anyone's code: nothing it says
    is trusted; each client still checks its files' names itself)."""
    answers = done.get("batched")
    if not isinstance(answers, list) or len(answers) != len(members):
        return False
    for answer in answers:
        if not isinstance(answer, dict) or not isinstance(answer.get("errors"), dict):
            return False
        if type(answer.get("nbuf")) is not int or answer["nbuf"] < 0:
            return False
    files = done.get("shm", [])
    if not isinstance(files, list) or not all(
        isinstance(f, list) and len(f) == 2 and type(f[0]) is int for f in files
    ):
        return False
    return bool(sum(answer["nbuf"] for answer in answers) <= nbuf)


_GATES: weakref.WeakKeyDictionary[Any, dict[str, BatchGate]] = weakref.WeakKeyDictionary()


def gate(pool: Any, run: Run, header: Header) -> BatchGate:
    """The gate of ``pool`` for this call's function version and batch settings."""
    settings = header["batch"]
    key = f"{header['function'].get('hash')}:{settings['max_batch_size']}:{settings['wait_ms']}"
    gates = _GATES.setdefault(pool, {})
    if key not in gates:
        gates[key] = BatchGate(run, settings["max_batch_size"], settings["wait_ms"] / 1000)
    return gates[key]


def waiting(pool: Any) -> int:
    """Inputs of ``pool`` waiting in a gate for their batch to leave."""
    return sum(g.waiting for g in _GATES.get(pool, {}).values())
