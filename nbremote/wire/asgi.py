"""What the worker's web apps share of ASGI: the callables' types and reading a request's body.

A cell endpoint's app (`nbremote._cell_app`) and a ``web_server``'s forwarding app
(`nbremote_runner.worker_web_server`) are plain ASGI apps, without a web framework. Standard
library only: the worker imports this.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def read_body(receive: Receive) -> bytes:
    """The request's whole body, from its ``http.request`` messages."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            return b"".join(chunks)
