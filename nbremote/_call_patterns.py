"""The call patterns beyond one call and a map: a generator's values streamed as they are
yielded (``remote_gen``), a map that returns at once (``spawn_map``), a function's load now
(``get_current_stats``), and what a function's own decorators say about how it is called.

A generator's values come as ``item`` frames of its one request, each handed to the caller as
it arrives (the request holds the session's channel until its ``done``, as a map's requests
do); closing the iterator early cancels the request, which interrupts the generator remotely.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote

from ._calls import Bind, CallTarget, Input, decode, raise_first
from ._output import show
from ._reconnect import connection_errors
from ._session import Frame, RemoteSession, Request
from .errors import InvalidError, remote_error
from .wire.codec import Header
from .wire.http import FunctionStats
from .wire.ops import Op
from .wire.serialize import loads

SPAWN_WINDOW = 64  # spawns a spawn_map keeps unanswered (each is answered at once)


def _callee(fn: Callable[..., Any] | None, bind: Bind | None) -> Any:
    """The function itself, or the method a class handle binds."""
    return getattr(fn, bind.method, None) if bind is not None else fn


def is_generator(fn: Callable[..., Any] | None, bind: Bind | None) -> bool | None:
    """Whether the function (or method) is a generator function; None: not known here (a
    deployed one: the worker says so if it is called the wrong way)."""
    callee = _callee(fn, bind)
    if callee is None:
        return None
    return inspect.isgeneratorfunction(callee) or inspect.isasyncgenfunction(callee)


def batch_settings(fn: Callable[..., Any] | None, bind: Bind | None) -> dict[str, int] | None:
    """``@nr.batched``'s settings of the function (or method), if it is batched."""
    settings = getattr(_callee(fn, bind), "__nbremote_batched__", None)
    return settings if isinstance(settings, dict) else None


def refuse(name: str, generator: bool | None, how: str) -> None:
    """Refuse a call of a generator function other than ``remote_gen``, or the reverse.

    Raises:
        InvalidError: naming the function and the call to make instead (Modal's refusal).
    """
    if generator and how != ".remote_gen()":
        raise InvalidError(
            "InvalidCall",
            f"{name} is a generator function: it cannot be called with {how}; "
            "use .remote_gen(...), which yields its values as they come",
        )
    if generator is False and how == ".remote_gen()":
        raise InvalidError(
            "InvalidCall",
            f"{name} is not a generator function: call it with .remote(...), not .remote_gen()",
        )


def values(session: RemoteSession, target: CallTarget, call: Input) -> Iterator[Any]:
    """Run a generator function remotely; yield each value as the worker yields it.

    Raises:
        RemoteError: the generator raised (after the values it yielded before).
    """
    sent = session.sent_functions
    request = target.request([call], 0, target.payload_hash not in sent)
    request.header.update(gen=True, retries=None)  # a retry would yield the values again
    for frame, buffers in _frames(session, request):
        sent.add(target.payload_hash)
        if frame["op"] == Op.ITEM:
            yield loads(f"value #{frame['index']} of {target.name}", buffers)
        else:
            next(raise_first(decode((frame, buffers), 0, numbered=False)))


def _frames(session: RemoteSession, request: Request) -> Iterator[Frame]:
    """The ``item`` frames of a generator's request, then its ``done``; a consumer that stops
    early (``close()``, an error, Ctrl-C) cancels the request."""
    with session._lock, connection_errors(session):
        channel = session._open()
        session.leases.end_all()  # the generator may need the pool's one worker
        request_id = session._send(channel, request)
        ended = False
        try:
            while not ended:
                frame = session._next_done(channel, {request_id}, show, (Op.ITEM, Op.DONE))
                ended = frame[0]["op"] == Op.DONE
                yield frame
        finally:
            if not ended:
                session._abandon(channel, [request_id])


def spawn_each(session: RemoteSession, target: CallTarget, inputs: Iterable[Input]) -> None:
    """Spawn a call per input, returning once the runner has every one (not their results)."""

    def requests() -> Iterator[Request]:
        for index, call in enumerate(inputs):
            # The function goes with each: a spawned call's `need` would have nobody to answer.
            request = target.request([call], index, True, op=Op.SPAWN)
            request.header["call_id"] = uuid.uuid4().hex
            yield request

    for _, (done, _) in session.stream(requests(), SPAWN_WINDOW, show):
        if not done["ok"]:
            error = done["error"]
            raise remote_error(error["ename"], error["evalue"], [error["evalue"]])


def stats(session: RemoteSession, pool_key: str, deployed: Header | None) -> FunctionStats:
    """The load of the function's pool on the runner, from the pool's state."""
    pool = quote(pool_key, safe="")
    if deployed is not None:
        path = f"/api/v1/apps/{quote(deployed['app'], safe='')}/stats?pool={pool}"
    else:
        session._open()  # the session must be on the runner to be asked
        path = f"/api/v1/sessions/{session.id}/stats?pool={pool}"
    return session.client.call("GET", path, response=FunctionStats)
