"""What both HTTP fronts of web endpoints share: a request's checks, its trip to a worker, and
the shaping of its answer.

Two fronts serve ``/endpoints/``: `endpoint_http.EndpointProtocol` (plain HTTP, the hot path,
its own parser) and `endpoint_front.TornadoRequest` (a request that arrives on tornado's
connection: over TLS, or after an API request on the same connection). Whatever the front, a
caller sees the same answers: the endpoint's own bearer token (401, before the body is read),
404 for no endpoint, 413 for a body over `BODY_LIMIT` (unread, the connection closed), 405 for a
method no endpoint takes, errors as ``{"error": {"type", "message"}}``, the app's status and
headers (hop-by-hop ones dropped, ``Server`` and ``Date`` added unless the app sent them), a
body as it streams.
"""

from __future__ import annotations

import http
import json
import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from tornado import httputil

from .endpoint_serve import WebCall
from .endpoints import Endpoint
from .errors import ApiError, RunnerError

BODY_LIMIT = 16 << 20  # an endpoint's request body, at most
PREFIX = "/endpoints/"
METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")
# Headers of one hop: each front frames its own response (its length, or chunks).
HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
NO_BODY = (204, 304)
# Headers a body-less answer must not carry (as tornado's `RequestHandler.finish`).
REPRESENTATION = frozenset({"content-encoding", "content-language", "content-type"})
SERVER = "TornadoServer/" + __import__("tornado").version
REASONS = {status.value: status.phrase for status in http.HTTPStatus}
log = logging.getLogger(__name__)
_date: list[Any] = [0, ""]  # the Date header of the current second


def now() -> str:
    """The ``Date`` header's value for this second (made once a second)."""
    second = int(time.time())
    if _date[0] != second:
        _date[:] = [second, httputil.format_timestamp(second)]
    text: str = _date[1]
    return text


class Answer:
    """One request's answer, shaped as the worker gives it (the `WebCall`'s caller): its status
    and headers held until the body's first chunk, so that a one-chunk answer is written once
    with its length; a chunk with more to come written at once. A front says how bytes go out
    (`_write_head`, `_write`, `_end`)."""

    def __init__(self, runner: Any, method: str) -> None:
        self.runner = runner
        self.method = method
        self.status = 200
        self.endpoint: Endpoint | None = None
        self.sub = ""
        self.call: WebCall | None = None
        self.finished = False
        self._began = time.perf_counter()
        self._out: list[tuple[str, str]] | None = None  # the answer's headers, until written
        self._written = False  # the head has gone
        self._pending: list[bytes] = []

    def admit(self, path: str, header: Callable[[str], str]) -> None:
        """Find the endpoint the request's head names (and its sub-path) and pass the head
        through every check that comes before the body is read; ``header`` gives a request
        header's value ("" if none). A refused request is still its endpoint's (its log).

        Raises:
            ApiError: 405, 400, 404, 401 or 413, answered at once (the body unread).
        """
        if self.method not in METHODS:
            raise ApiError(405, "Method Not Allowed", "Method Not Allowed")
        try:
            name = urllib.parse.unquote_to_bytes(path[len(PREFIX) :]).decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "Bad Request", f"Invalid unicode in path: {path!r}") from None
        found = self.runner.endpoints.find(name)
        if found is None:
            raise ApiError(404, "NotFound", f"no endpoint at {path}")
        endpoint, self.sub = found
        self.endpoint = endpoint
        if not endpoint.authorized(header("Authorization")):
            raise ApiError(
                401,
                "Unauthorized",
                f"endpoint {endpoint.name!r} needs its bearer token "
                "(Authorization: Bearer T; nbremote endpoints show NAME)",
            )
        try:
            declared = int(header("Content-Length") or "0")
        except ValueError:
            raise ApiError(400, "Bad Request", "Content-Length is not a number") from None
        if declared > BODY_LIMIT:
            raise ApiError(
                413,
                "PayloadTooLarge",
                f"the request body is {declared} bytes; the runner takes at most "
                f"{BODY_LIMIT >> 20} MiB on {path} (RunnerConfig.max_body_bytes): "
                "put big data in a Volume",
            )

    async def serve(self, query: str, headers: list[tuple[str, str]], body: bytes) -> None:
        """Send the admitted request to a worker of its endpoint; every outcome is answered."""
        endpoint = self.endpoint
        assert endpoint is not None
        try:
            app = self.runner.apps.apps.get(endpoint.app)
            if app is None or endpoint.function not in app.objects:
                raise ApiError(
                    404, "NotFound", f"endpoint {endpoint.name!r}: its app is not deployed"
                )
            self.call = WebCall(endpoint, app, self)
            await self.call.run(self.method, self.sub, query, headers, body)
        except RunnerError as exc:
            self.error(exc.status, exc.kind, str(exc))
        except Exception:
            log.exception("endpoint %s: serving %s %s failed", endpoint.name, self.method, self.sub)
            self.error(500, "Internal Server Error", "Internal Server Error")
        if not self.finished:
            self._finish()

    def hang_up(self) -> None:
        """The caller has gone: stop the request in its worker."""
        if self.call is not None and not self.finished:
            self.call.hang_up()

    # -- the WebCall's caller ------------------------------------------------------------------

    def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.status = status
        names = {name.lower() for name, _ in headers}
        out = [(name, value) for name, value in headers if name.lower() not in HOP]
        if "date" not in names:
            out.insert(0, ("Date", now()))
        if "server" not in names:
            out.insert(0, ("Server", SERVER))
        self._out = out

    def chunk(self, data: bytes, more: bool) -> None:
        if self.finished:
            return
        sent = bool(data) and self.method != "HEAD" and self.status not in NO_BODY
        if sent:
            self._pending.append(data)
        if not more:  # the caller has its answer now, whatever the app does after (tasks)
            self._finish()
        elif sent:  # sent now: a stream's events must not wait for its end
            self._flush(None)

    def error(self, status: int, kind: str, message: str, retry_after: str | None = None) -> None:
        if self.finished:
            return
        if self._written:  # too late for an error answer: end what was sent
            log.error("endpoint %s: %s after the answer began: %s", self.sub, kind, message)
            self._finish()
            return
        self.status, self._pending = status, []
        headers = [("Content-Type", "application/json")]
        self.start(status, headers + ([("Retry-After", retry_after)] if retry_after else []))
        self.chunk(json.dumps({"error": {"type": kind, "message": message}}).encode(), False)

    # -- writing -------------------------------------------------------------------------------

    def _flush(self, length: int | None) -> None:
        data, self._pending = b"".join(self._pending), []
        if self._written:
            self._write(data)
            return
        self._written = True
        self._write_head(self.status, self._out or [], data, length)

    def _finish(self) -> None:
        self.finished = True
        length = None
        if not self._written:
            if self._out is None:
                self.start(self.status, [])
            assert self._out is not None
            if self.status in NO_BODY or 100 <= self.status < 200:
                self._out = [(k, v) for k, v in self._out if k.lower() not in REPRESENTATION]
            else:
                length = sum(len(part) for part in self._pending)
        if self._pending or not self._written:
            self._flush(length)
        self._end()
        if self.endpoint is not None:
            latency = (time.perf_counter() - self._began) * 1000
            self.runner.endpoints.record(
                self.endpoint, self.method, self.sub[:200], self.status, latency
            )

    def _write_head(
        self, status: int, headers: list[tuple[str, str]], data: bytes, length: int | None
    ) -> None:
        """Write the status line, ``headers`` and the body's first ``data``; ``length``: the
        whole body's (None: more may follow, or none may, as for a 204)."""
        raise NotImplementedError

    def _write(self, data: bytes) -> None:
        """Write more of the body."""
        raise NotImplementedError

    def _end(self) -> None:
        """The answer is complete."""
        raise NotImplementedError
