"""Function calls on the wire: requests for batches of inputs, and their results decoded.

A request carries the function (by content hash; its bytes only when the runner may lack them)
and a batch of ``(args, kwargs)`` inputs pickled together. The answer holds a result per input,
or an error per failed input. `Batcher` sizes batches so that each takes ~20 ms on a worker:
one input at a time for slow functions (spread over every worker), up to 1024 for trivial ones
(so the per-request cost disappears).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from ._namespace import Packed
from ._session import Frame, Request
from .errors import NbremoteError, RemoteError, SerializationError, WorkerDied, remote_error
from .wire.codec import Header
from .wire.ops import Op
from .wire.serialize import Payload, dumps, loads

Input = tuple[tuple[Any, ...], dict[str, Any]]
TARGET_BATCH_SECONDS = 0.02
MAX_BATCH = 1024


def _argument_names(fn: Callable[..., Any] | None, args: tuple[Any, ...]) -> list[str]:
    try:
        params = list(inspect.signature(fn).parameters) if fn is not None else []
    except (TypeError, ValueError):
        params = []
    return [
        f"argument {i} ({params[i]})" if i < len(params) else f"argument {i}"
        for i in range(len(args))
    ]


def find_unpicklable(
    fn: Callable[..., Any] | None, inputs: list[Input], first: int
) -> SerializationError:
    """The error that names the argument which cannot be pickled, after the batch failed."""
    for offset, (args, kwargs) in enumerate(inputs):
        where = f" of input #{first + offset}" if len(inputs) > 1 or first else ""
        named = [*zip(_argument_names(fn, args), args, strict=True)]
        named += [(f"argument {key!r}", value) for key, value in kwargs.items()]
        for name, value in named:
            try:
                dumps(name, value)
            except SerializationError as exc:
                return SerializationError(f"{name}{where}", exc.reason)
    return SerializationError("the arguments", "they cannot be pickled together")


@dataclass(frozen=True)
class Bind:
    """A method to call on a class instance; the worker keeps one instance per ``key``."""

    key: str
    method: str
    params: Payload  # the constructor's (args, kwargs)


@dataclass(frozen=True)
class CallTarget:
    """Everything a call request needs besides its inputs.

    The callee is a function (``payload``), a method of a class (``payload`` is the class,
    ``bind`` says which method of which instance), or a deployed object (``deployed`` names it;
    the runner attaches its payload).
    """

    concurrency: int
    name: str
    fn: Callable[..., Any] | None
    payload: Payload | None
    pool: Header
    timeout: float | None
    retries: Header | None
    bind: Bind | None = None
    deployed: Header | None = None
    image: Any = None  # the nbremote.Image the runner must know before the call
    batch: Header | None = None  # @nr.batched's settings: the runner groups the inputs

    @property
    def payload_hash(self) -> str:
        """The content hash of what is pickled ("" for a deployed object)."""
        return self.payload.hash if self.payload is not None else ""

    def request(
        self, inputs: list[Input], first: int, send_function: bool, op: str = Op.CALL
    ) -> Request:
        """A request for ``inputs`` (numbered from ``first``).

        Raises:
            SerializationError: naming the argument that cannot be pickled.
        """
        try:
            batch = dumps("the arguments", inputs, hashed=False)  # big buffers: wire.held
        except SerializationError:
            raise find_unpicklable(self.fn, inputs, first) from None
        function: Header = {"name": self.name, "nbuf": 0}
        buffers: list[Any] = []
        packed = Packed()
        if self.payload is not None:
            if send_function:
                function["nbuf"] = len(self.payload.parts)
                buffers.extend(self.payload.parts)
            function["hash"] = self.payload.hash
            packed.payloads[self.payload.hash] = self.payload
        if self.bind is not None:
            function["bind"] = {
                "key": self.bind.key,
                "method": self.bind.method,
                "nparams": len(self.bind.params.parts),
            }
            buffers.extend(self.bind.params.parts)
        header = {
            "op": op,
            "pool": self.pool,
            "function": function,
            "count": len(inputs),
            "first": first,
            "timeout": self.timeout,
            "retries": self.retries,
            "concurrency": self.concurrency,
        }
        if self.deployed is not None:
            header["deployed"] = self.deployed
        if self.batch is not None:
            header["batch"] = self.batch
        parts = [*buffers, *batch.parts]
        return Request(header, parts, packed, tag=(first, len(inputs)), image=self.image)


def decode(frame: Frame, first: int, numbered: bool = True) -> list[Any]:
    """The outcome of each input of a batch: its result, or a `RemoteError` it raised (noted
    with the input's number, if ``numbered``, and how many attempts it had, if more than one).

    Raises:
        WorkerDied: the worker died while running the batch.
        RemoteError: the whole request failed otherwise (the call was cancelled, say).
    """
    done, buffers = frame
    if not done["ok"]:
        raise request_error(done["error"])
    outcomes: list[Any] = loads("the results", buffers)
    for offset, error in done.get("errors", {}).items():
        lines = error["traceback"] or [f"{error['ename']}: {error['evalue']}"]
        exc = remote_error(error["ename"], error["evalue"], lines, error.get("builtin"))
        attempts = error.get("attempts", 1)
        if numbered:
            exc.add_note(f"(input #{first + int(offset)}, after {attempts} attempt(s))")
        elif attempts > 1:
            exc.add_note(f"(after {attempts} attempts)")
        outcomes[int(offset)] = exc.attach_frames()
    return outcomes


def request_error(error: Header) -> NbremoteError:
    """The error of a request that failed as a whole (its worker died, it was cancelled)."""
    if error["ename"] == "WorkerDied":
        return WorkerDied(
            f"{error['evalue']}. The next call starts a new worker; if the function ran out of "
            "memory, give it more (memory=MB), or send it less at a time"
        )
    return remote_error(
        error["ename"],
        error["evalue"],
        error["traceback"] or [error["evalue"]],
        error.get("builtin"),
    ).attach_frames()


class Batcher:
    """Cuts an input iterator into batches sized from how long inputs took so far."""

    def __init__(self, inputs: Iterable[Input], max_size: int | None = None) -> None:
        self._inputs = iter(inputs)
        self.max_size = max_size or MAX_BATCH
        self.size = 1
        self.next_index = 0

    def observe(self, count: int, elapsed: float) -> None:
        """Learn from a finished batch of ``count`` inputs that took ``elapsed`` seconds."""
        per_input = max(elapsed / max(count, 1), 1e-7)
        self.size = max(1, min(self.max_size, int(TARGET_BATCH_SECONDS / per_input)))

    def batches(self) -> Iterator[tuple[int, list[Input]]]:
        """``(first index, inputs)`` until the iterator is exhausted; it is read lazily."""
        while True:
            batch = list(islice(self._inputs, self.size))
            if not batch:
                return
            first, self.next_index = self.next_index, self.next_index + len(batch)
            yield first, batch


def raise_first(outcomes: Iterable[Any]) -> Iterator[Any]:
    """Pass outcomes through, raising the first that is a remote error."""
    for outcome in outcomes:
        if isinstance(outcome, RemoteError):
            raise outcome
        yield outcome
