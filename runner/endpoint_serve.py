"""One HTTP request of a web endpoint, from the caller to a warm worker and back.

The request goes to the deployed function's pool in its app (opened like a deployed call's,
from the function's settings: ``min_containers``, ``max_containers``, ``max_inputs``), as a
``web`` frame: the function's payload, the ASGI scope's fields, the body as a buffer. Nothing
of the caller's is unpickled anywhere: the body is bytes the worker's ASGI app reads.

The function's payload goes to a worker with its first request only; later ones name it by hash
(a worker that lost it asks, ``need``, and is answered from the deployed app).

The worker's ``web_start`` and ``web_body`` frames are checked (a worker runs anyone's code: a
bad status or a header with a line break never reaches the caller) and written to the caller as
they come, each chunk flushed while more follow, so streamed responses pass through unbuffered.
A caller that hangs up has its request cancelled in the worker, as has a request that runs past
its function's ``timeout`` (the caller gets 504 at once; the worker goes on serving). Requests
beyond what the pool can ever take plus a bounded queue are answered 503 with Retry-After, at
once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import weakref
from collections.abc import Sequence
from typing import Any, Protocol

from nbremote.wire.codec import Buffer, Header
from nbremote.wire.frames import WebBodyFrame, WebStartFrame
from nbremote.wire.gpu import parse_text
from nbremote.wire.http import FunctionScaling, WorkerSpec
from nbremote.wire.ops import Op

from .apps import DeployedApp
from .endpoints import QUEUE_PER_WORKER, Endpoint
from .gpus import Holder
from .pools import FunctionPool
from .workers import Worker

RETRY_AFTER = "1"  # seconds a refused caller is told to wait
log = logging.getLogger(__name__)
_ids = itertools.count()  # request ids: unique on this runner, which is all a worker needs
# The function hashes each worker was sent (it keeps them): forgotten with the worker.
_sent: weakref.WeakKeyDictionary[Worker, set[str]] = weakref.WeakKeyDictionary()


class Caller(Protocol):
    """What a web request writes its answer to (the tornado handler)."""

    def start(self, status: int, headers: list[tuple[str, str]]) -> None: ...

    def chunk(self, data: bytes, more: bool) -> None: ...

    def error(
        self, status: int, kind: str, message: str, retry_after: str | None = None
    ) -> None: ...


def _spec(settings: dict[str, Any]) -> dict[str, Any]:
    spec = WorkerSpec(
        env=settings.get("env") or {},
        volumes=settings.get("volumes") or {},
        secrets=settings.get("secrets") or [],
        image=settings.get("image"),
        gpu=parse_text(settings["gpu"]) if isinstance(settings.get("gpu"), str) else None,
    )
    return spec.model_dump(exclude_defaults=True)


def endpoint_pool(app: DeployedApp, function: str) -> FunctionPool:
    """The pool that serves a deployed function's web requests (opened on first use)."""
    key = f"{app.name}:{function}:web"
    if key in app.pools:  # opened already: the hot path stops here
        return app.pools[key]
    settings = app.objects[function][0].settings
    scaling = FunctionScaling(
        max_containers=settings.get("max_containers"),
        min_containers=settings.get("min_containers") or 0,
        scaledown_window=settings.get("scaledown_window") or 60.0,
        max_inputs=settings.get("max_inputs") or 1,
    )
    pool = {"key": key, "spec": _spec(settings), "scaling": scaling.model_dump()}
    holder = Holder("app", name=f"{app.name}.{function}", group=key)
    return app.pools.get_or_open(pool, holder)


class WebCall:
    """One request: sent to a worker, its answer relayed to ``caller`` as it comes.

    Args:
        endpoint: the endpoint called.
        app: its deployed app.
        caller: where the answer goes.
    """

    def __init__(self, endpoint: Endpoint, app: DeployedApp, caller: Caller) -> None:
        self.endpoint = endpoint
        self.app = app
        self.caller = caller
        self.id = f"web-{next(_ids)}"
        self.status = 0  # as answered (0: nothing yet)
        self.broken = ""  # why the worker's answer was refused
        self.gone = False  # the caller hung up
        self.worker: Worker | None = None
        self._payload: list[bytes] = []  # the function's, sent if its worker asks

    async def run(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        """Serve the request; every outcome is answered to the caller."""
        pool = endpoint_pool(self.app, self.endpoint.function)
        bound = pool.max_containers * (QUEUE_PER_WORKER + pool.scaling.max_inputs)
        if self.endpoint.in_flight >= bound:
            self._error(503, "Busy", f"more than {bound} requests wait: try again", RETRY_AFTER)
            return
        described, parts = self.app.objects[self.endpoint.function]
        self._payload = parts
        function = {"name": described.name, "nbuf": 0, "hash": described.hash}
        header: Header = {
            "op": Op.WEB,
            "id": self.id,
            "function": function,
            "web": self.endpoint.web_frame(),
            "concurrency": pool.scaling.max_inputs,
            "scope": {
                "method": method,
                "path": path,
                "root_path": f"/endpoints/{self.endpoint.name}",
                "query_string": query,
                "headers": self._headers(headers),
            },
        }
        self.endpoint.in_flight += 1
        timer: asyncio.TimerHandle | None = None
        try:
            async with pool.holding() as worker:
                self.worker = worker
                sent = _sent.setdefault(worker, set())
                payload = [] if described.hash in sent else list(parts)
                function["nbuf"] = len(payload)
                sent.add(described.hash)
                sending = [*payload, body]
                timeout = described.settings.get("timeout")
                if timeout:  # none: nothing more on the hot path
                    timer = self._bound(timeout, bool(payload))
                done, _ = await worker.run(header, sending, self._forward, None, forward_done=True)
        finally:
            self.endpoint.in_flight -= 1
            self.worker = None
            if timer is not None:
                timer.cancel()
        self._end(done)

    def _headers(self, headers: list[tuple[str, str]]) -> list[list[str]]:
        """The caller's headers for the app: our token never reaches it (a public endpoint's
        ``Authorization`` is the app's own business, and passes)."""
        ours = self.endpoint.settings.requires_auth
        return [[k, v] for k, v in headers if not (ours and k.lower() == "authorization")]

    def hang_up(self) -> None:
        """The caller has gone: stop the request in the worker."""
        self.gone = True
        if self.worker is not None:
            self.worker.send({"op": Op.CANCEL, "id": self.id}, [])

    def _bound(self, timeout: object, builds: bool) -> asyncio.TimerHandle | None:
        """A timer that ends the request after the function's ``timeout`` seconds (a setting
        that is not a positive number of seconds is no bound). A worker's first request
        (``builds``: its app is built, its lifespan started) has twice that: as in Modal, where
        a container's startup has the function's timeout of its own, before the request's."""
        if not isinstance(timeout, int | float) or not 0 < timeout < math.inf:
            return None
        after = 2 * timeout if builds else timeout
        return asyncio.get_running_loop().call_later(after, self._timed_out, timeout)

    def _timed_out(self, timeout: float) -> None:
        """The request ran past its function's ``timeout``: the caller gets 504 now, and the
        request is cancelled in its worker, which goes on serving the next."""
        self._error(
            504,
            "Timeout",
            f"the request ran past its function's timeout={timeout:g} s and was cancelled: "
            "give the function a longer timeout= if it needs more",
        )
        self.hang_up()

    def _end(self, done: Header) -> None:
        if self.status:
            return
        if self.broken:
            self._error(502, "BadGateway", f"the worker's answer was refused: {self.broken}")
            return
        error = done.get("error") or {}
        kind, message = error.get("ename", "Error"), error.get("evalue", "no answer")
        self._error(500, str(kind), str(message))

    def _error(self, status: int, kind: str, message: str, retry: str | None = None) -> None:
        self.status = status
        if not self.gone:
            self.caller.error(status, kind, message, retry)

    def _forward(self, header: Header, buffers: Sequence[Buffer]) -> None:
        op = header.get("op")
        if op == Op.STREAM:  # what the app printed: its log
            self.app.log(str(header.get("text", "")))
            return
        if op == Op.NEED:  # a worker without the function's payload (it failed to load, say)
            self._send_payload(header)
            return
        if op == Op.DONE:  # its answer, if it carries it (a one-chunk answer: one frame)
            answer = header.get("answer")
            if not isinstance(answer, dict):
                return
            op, header = Op.WEB_START, {"op": Op.WEB_START, "id": self.id, "more": False}
            header |= {"status": answer.get("status"), "headers": answer.get("headers")}
        if op not in (Op.WEB_START, Op.WEB_BODY) or self.broken or self.gone:
            return
        try:
            if op == Op.WEB_START:
                if self.status:
                    raise ValueError("a second web_start")
                status, pairs, more = WebStartFrame.read(header, len(buffers))
                self.status = status
                self.caller.start(status, pairs)
                if more is not None:
                    self.caller.chunk(bytes(buffers[0]), more)
            else:
                body = WebBodyFrame.model_validate(header)
                wrong = body.buffers_error(len(buffers))
                if wrong is not None:
                    raise ValueError(wrong)
                if self.status:
                    self.caller.chunk(bytes(buffers[0]), body.more)
        except ValueError as exc:  # a ValidationError too
            self.broken = str(exc).splitlines()[0]
            log.warning("endpoint %s: a worker's answer refused: %s", self.endpoint.name, exc)

    def _send_payload(self, need: Header) -> None:
        """Answer a worker's ``need``: the function's payload, and nothing else it may ask."""
        described, _ = self.app.objects[self.endpoint.function]
        hashes = need.get("hashes")
        ours = isinstance(hashes, list) and described.hash in hashes
        item = {"name": described.name, "hash": described.hash, "nbuf": len(self._payload)}
        blobs = {"op": Op.BLOBS, "id": self.id, "items": [item] if ours else []}
        if self.worker is not None:
            self.worker.send(blobs, self._payload if ours else [])
