"""Spawned calls (``nr.FunctionCall``): collect one with ``.get()``, many with ``gather``.

A call spawned with ``f.spawn()`` belongs to the runner, not to the kernel that spawned it, so
its id is all that is needed to collect it, from any cell or process on the same runner.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import Any, Generic, TypeVar, cast

from . import _session
from ._calls import decode
from ._output import show
from ._session import Frame, Request
from .errors import RemoteError
from .wire.ops import Op

R = TypeVar("R")


def _outcome(frame: Frame) -> Any:
    """A ``get``'s result, or its remote error (raised)."""
    outcome = decode(frame, 0, numbered=False)[0]
    if isinstance(outcome, RemoteError):
        raise outcome
    return outcome


class FunctionCall(Generic[R]):
    """A spawned call: ``.get()`` its result (from any cell or process), or ``.cancel()`` it.

    Example:
        >>> call = square.spawn(4)          # doctest: +SKIP
        >>> nr.FunctionCall.from_id(call.object_id).get(timeout=10)  # doctest: +SKIP
        16
    """

    def __init__(self, object_id: str) -> None:
        self._id = object_id

    @property
    def object_id(self) -> str:
        """The call's id on the runner."""
        return self._id

    @classmethod
    def from_id(cls, object_id: str) -> FunctionCall[Any]:
        """The call with this id (spawned on the runner this kernel uses)."""
        return cls(object_id)

    @staticmethod
    def gather(*calls: FunctionCall[Any]) -> list[Any]:
        """Wait for every call; their results, in the order of ``calls``.

        Every ``get`` is in flight at once: the first call to fail raises, whatever its
        place (the others go on running on the runner; collect them with ``.get()``).

        Raises:
            RemoteError: the first call to fail raised it.

        Example:
            >>> calls = [square.spawn(x) for x in range(3)]  # doctest: +SKIP
            >>> nr.FunctionCall.gather(*calls)  # doctest: +SKIP
            [0, 1, 4]
        """
        results: list[Any] = [None] * len(calls)
        requests = (
            Request({"op": Op.GET, "call_id": call.object_id, "timeout": None}, tag=index)
            for index, call in enumerate(calls)
        )
        stream = _session.current_session().stream(requests, max(1, len(calls)), show)
        with contextlib.closing(
            cast(Generator[tuple[Request, Frame]], stream)
        ):  # a failure cancels the other gets, not their calls
            for request, frame in stream:
                results[request.tag] = _outcome(frame)
        return results

    def get(self, timeout: float | None = None) -> R:
        """Wait for the result (at most ``timeout`` seconds) and return it, or raise its error.

        Raises:
            TimeoutError: the call is still running after ``timeout`` seconds (it goes on).
            RemoteError: the function raised.
        """
        header = {"op": Op.GET, "call_id": self._id, "timeout": timeout}
        frame = _session.current_session().call(Request(header), show)
        if frame[0].get("pending"):
            raise TimeoutError(f"call {self._id} is still running after {timeout:g} s; it goes on")
        outcome: R = _outcome(frame)
        return outcome

    def cancel(self) -> None:
        """Stop the call (interrupting it if it runs); ``get`` then raises CancelledError."""
        _session.current_session().notify({"op": Op.CANCEL, "id": self._id})
