"""The HTTP front of web endpoints: ``/endpoints/{name}[/...]`` served without a tornado
`RequestHandler`, the rest of the API routed as before.

An endpoint's request is the hot path of a deployed model: a `RequestHandler` (routing over
every API route, default headers, ``prepare``, the flush and finish machinery) cost more than
the whole hop to the worker and back. `FrontApplication` answers a request whose path starts
with ``/endpoints/`` with an `EndpointRequest` of its own, straight on tornado's HTTP/1
connection; tornado still parses the request, keeps connections alive and chunks a stream.

What a caller sees is what the `RequestHandler` answered: the endpoint's own bearer token
(401, before the body is read), 404 for no endpoint, 413 for a body over `BODY_LIMIT` (unread,
the connection closed), 405 for a method no endpoint takes, errors as
``{"error": {"type", "message"}}``, the app's status and headers (hop-by-hop ones dropped,
``Server`` and ``Date`` added unless the app sent them), a body as it streams.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import time
import urllib.parse
from typing import Any

from tornado import httputil
from tornado.web import Application

from .endpoint_serve import WebCall
from .endpoints import Endpoint
from .errors import ApiError, RunnerError

BODY_LIMIT = 16 << 20  # an endpoint's request body, at most
PREFIX = "/endpoints/"
METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")
# Headers of one hop: the runner frames its own response (its length, or chunks).
HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
NO_BODY = (204, 304)
# Headers a body-less answer must not carry (as tornado's `RequestHandler.finish`).
REPRESENTATION = ("Content-Encoding", "Content-Language", "Content-Type")
SERVER = "TornadoServer/" + __import__("tornado").version
log = logging.getLogger(__name__)
_REASONS = {status.value: status.phrase for status in http.HTTPStatus}
_date: list[Any] = [0, ""]  # the Date header of the current second


def _now() -> str:
    second = int(time.time())
    if _date[0] != second:
        _date[:] = [second, httputil.format_timestamp(second)]
    text: str = _date[1]
    return text


class FrontApplication(Application):
    """The runner's application, with ``/endpoints/`` answered by `EndpointRequest`."""

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        return _Front(self, server_conn, request_conn)


class _Front(httputil.HTTPMessageDelegate):
    """Picks the delegate of one request from its path: ours, or tornado's routing."""

    def __init__(
        self, app: Application, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> None:
        self._app, self._server_conn, self._conn = app, server_conn, request_conn
        self._inner: httputil.HTTPMessageDelegate | None = None

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Any:
        assert isinstance(start_line, httputil.RequestStartLine)
        if start_line.path.startswith(PREFIX):
            self._inner = EndpointRequest(self._app.settings["runner"], self._conn)
        else:
            self._inner = Application.start_request(self._app, self._server_conn, self._conn)
        return self._inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        assert self._inner is not None
        return self._inner.data_received(chunk)

    def finish(self) -> None:
        assert self._inner is not None
        self._inner.finish()

    def on_connection_close(self) -> None:
        if self._inner is not None:
            self._inner.on_connection_close()


class EndpointRequest(httputil.HTTPMessageDelegate):
    """One request to an endpoint: checked as its headers come, sent to a worker once its body
    is in, answered as the worker answers (the `WebCall`'s caller)."""

    def __init__(self, runner: Any, connection: httputil.HTTPConnection) -> None:
        self.runner = runner
        self._conn = connection
        self._began = time.perf_counter()
        self._method = "GET"
        self._path = self._query = self._sub = ""
        self._headers: httputil.HTTPHeaders | None = None
        self._chunks: list[bytes] = []
        self._endpoint: Endpoint | None = None
        self._call: WebCall | None = None
        self._task: asyncio.Task[None] | None = None
        self._status = 200
        self._out: httputil.HTTPHeaders | None = None  # the answer's headers, until written
        self._written = False  # the headers have gone
        self._pending: list[bytes] = []
        self._finished = False

    # -- tornado's side ------------------------------------------------------------------------

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> None:
        assert isinstance(start_line, httputil.RequestStartLine)
        self._method = start_line.method
        self._path, _, self._query = start_line.path.partition("?")
        self._headers = headers
        try:
            self._accept(headers)
        except ApiError as exc:  # answered now, the body unread (the connection then closes)
            self.error(exc.status, exc.kind, str(exc))

    def _accept(self, headers: httputil.HTTPHeaders) -> None:
        try:
            declared = int(headers.get("Content-Length", "0"))
        except ValueError:
            declared = 0  # tornado answers 400 for it
        # A refused request is answered before its body is read and its connection closed;
        # tornado must not meanwhile refuse the same body again with a bare 400.
        set_max: Any = getattr(self._conn, "set_max_body_size", None)  # HTTP/1 has it
        if set_max is not None:
            set_max(max(BODY_LIMIT, declared))
        if self._method not in METHODS:
            raise ApiError(405, "Method Not Allowed", "Method Not Allowed")
        try:
            path = urllib.parse.unquote_to_bytes(self._path[len(PREFIX) :]).decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "Bad Request", f"Invalid unicode in path: {self._path!r}") from None
        found = self.runner.endpoints.find(path)
        if found is None:
            raise ApiError(404, "NotFound", f"no endpoint at {self._path}")
        self._endpoint, self._sub = found
        if not self._endpoint.authorized(headers.get("Authorization", "")):
            raise ApiError(
                401,
                "Unauthorized",
                f"endpoint {self._endpoint.name!r} needs its bearer token "
                "(Authorization: Bearer T; nbremote endpoints show NAME)",
            )
        if declared > BODY_LIMIT:
            raise ApiError(
                413,
                "PayloadTooLarge",
                f"the request body is {declared} bytes; the runner takes at most "
                f"{BODY_LIMIT >> 20} MiB on {self._path} (RunnerConfig.max_body_bytes): "
                "put big data in a Volume",
            )

    def data_received(self, chunk: bytes) -> None:
        if not self._finished:
            self._chunks.append(chunk)

    def finish(self) -> None:
        """The body is in: serve the request (unless it was answered already)."""
        if not self._finished:
            self._task = asyncio.ensure_future(self._serve())

    def on_connection_close(self) -> None:
        if self._call is not None and not self._finished:
            self._call.hang_up()

    async def _serve(self) -> None:
        endpoint = self._endpoint
        assert endpoint is not None and self._headers is not None
        try:
            app = self.runner.apps.apps.get(endpoint.app)
            if app is None or endpoint.function not in app.objects:
                raise ApiError(
                    404, "NotFound", f"endpoint {endpoint.name!r}: its app is not deployed"
                )
            self._call = WebCall(endpoint, app, self)
            headers = list(self._headers.get_all())
            body = b"".join(self._chunks)
            self._chunks = []
            await self._call.run(self._method, self._sub, self._query, headers, body)
        except RunnerError as exc:
            self.error(exc.status, exc.kind, str(exc))
        except Exception:
            log.exception(
                "endpoint %s: serving %s %s failed", endpoint.name, self._method, self._sub
            )
            self.error(500, "Internal Server Error", "Internal Server Error")
        if not self._finished:
            self._finish()

    # -- the WebCall's caller ------------------------------------------------------------------

    def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self._status = status
        names = {name.lower() for name, _ in headers}
        out = httputil.HTTPHeaders()
        if "server" not in names:
            out["Server"] = SERVER
        if "date" not in names:
            out["Date"] = _now()
        for name, value in headers:
            if name.lower() not in HOP:
                out.add(name, value)
        self._out = out

    def chunk(self, data: bytes, more: bool) -> None:
        if self._finished:
            return
        sent = bool(data) and self._method != "HEAD" and self._status not in NO_BODY
        if sent:
            self._pending.append(data)
        if not more:  # the caller has its answer now, whatever the app does after (tasks)
            self._finish()
        elif sent:  # sent now: a stream's events must not wait for its end
            self._flush()

    def error(self, status: int, kind: str, message: str, retry_after: str | None = None) -> None:
        if self._finished:
            return
        if self._written:  # too late for an error answer: end what was sent
            log.error("endpoint %s: %s after the answer began: %s", self._path, kind, message)
            self._finish()
            return
        self._status, self._pending = status, []
        self.start(status, [("Content-Type", "application/json")])
        if retry_after is not None:
            assert self._out is not None
            self._out["Retry-After"] = retry_after
        self.chunk(json.dumps({"error": {"type": kind, "message": message}}).encode(), False)

    # -- writing -------------------------------------------------------------------------------

    def _start_line(self) -> httputil.ResponseStartLine:
        reason = _REASONS.get(self._status, "Unknown")
        return httputil.ResponseStartLine("HTTP/1.1", self._status, reason)

    def _flush(self) -> None:
        data, self._pending = b"".join(self._pending), []
        if self._written:
            future = self._conn.write(data)
        else:
            self._written = True
            out = self._out if self._out is not None else httputil.HTTPHeaders()
            future = self._conn.write_headers(self._start_line(), out, data)
        future.add_done_callback(lambda done: done.exception())  # a caller gone: closed anyway

    def _finish(self) -> None:
        self._finished = True
        if not self._written:
            if self._out is None:
                self.start(self._status, [])
            assert self._out is not None
            if self._status in NO_BODY or 100 <= self._status < 200:
                for name in REPRESENTATION:
                    self._out.pop(name, None)
            else:
                self._out["Content-Length"] = str(sum(len(part) for part in self._pending))
        if self._pending or not self._written:
            self._flush()
        self._conn.finish()
        if self._endpoint is not None:
            latency = (time.perf_counter() - self._began) * 1000
            self.runner.endpoints.record(
                self._endpoint, self._method, self._sub[:200], self._status, latency
            )
