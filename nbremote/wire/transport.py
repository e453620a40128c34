"""Where requests from inside a worker go: the worker program plugs its socket in here.

User code in a worker uses `nr.Dict`, `nr.Queue` and mounted `nr.Volume` objects as a notebook
does, but their requests must go over the worker's own socket to the runner. The worker
registers that transport here and the client's stores look it up, so neither imports the other
(the worker imports no client API module). Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .codec import Buffer, Header

Transport = Callable[[Header, Sequence[Buffer]], tuple[Header, list[Any]]]

_worker_transport: Transport | None = None


def use_worker_transport(transport: Transport) -> None:
    """Route Dict, Queue and Volume requests through the worker's socket (called by the worker)."""
    global _worker_transport
    _worker_transport = transport


def worker_transport() -> Transport | None:
    """The worker's transport; None outside a worker (in a notebook or a script)."""
    return _worker_transport
