"""What Dict and Queue have in common: a name on the runner, and a way to reach it.

In a notebook (or script) requests go over this kernel's channel; inside a worker, over the
worker's own socket to the runner (the worker program registers that transport at start).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from .errors import RunnerError
from .wire.codec import Buffer, Header
from .wire.transport import worker_transport

S = TypeVar("S", bound="RunnerStore")


def _request(header: Header, buffers: Sequence[Buffer]) -> tuple[Header, list[Any]]:
    transport = worker_transport()
    if transport is not None:
        return transport(header, buffers)
    from . import _session
    from ._output import show
    from ._session import Request

    return _session.current_session().call(Request(header, buffers), show)


class RunnerStore:
    """A named object held by the runner."""

    kind = ""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<nbremote.{type(self).__name__} {self.name!r}>"

    def _call(
        self, action: str, buffers: Sequence[Buffer] = (), **fields: Any
    ) -> tuple[Header, list[Any]]:
        header = {"op": self.kind, "name": self.name, "action": action, **fields}
        done, out = _request(header, buffers)
        if not done["ok"]:
            error = done["error"]
            raise RunnerError(error["ename"], error["evalue"])
        return done, out

    @classmethod
    def from_name(cls: type[S], name: str, *, create_if_missing: bool = False) -> S:
        """The one called ``name`` on the runner.

        Raises:
            RunnerError: there is none (and ``create_if_missing`` is false); the message lists
                those there are.
        """
        store = cls(name)
        store._call("lookup", create=create_if_missing)
        return store

    @classmethod
    @contextlib.contextmanager
    def ephemeral(cls: type[S]) -> Iterator[S]:
        """A new one that lives as long as the ``with`` block."""
        store = cls.from_name(f"ephemeral-{uuid.uuid4().hex}", create_if_missing=True)
        try:
            yield store
        finally:
            store._call("delete")

    def delete(self) -> None:
        """Remove it, and everything in it, from the runner."""
        self._call("delete")
