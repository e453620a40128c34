"""Web endpoints on tornado's connections: ``/endpoints/{name}[/...]`` served without a
tornado `RequestHandler`, the rest of the API routed as before.

Most endpoint requests never get here: `endpoint_http` takes a plain-HTTP connection whose first
request is an endpoint's. This front serves those that come on tornado's connections (over TLS,
or after an API request on the same connection): `FrontApplication` answers a request whose path
starts with ``/endpoints/`` with a `TornadoRequest`, straight on tornado's HTTP/1 connection (no
routing over every API route, no ``prepare``, no flush and finish machinery); tornado parses
the request, keeps the connection alive and chunks a stream. What a caller sees is the same on
either front (`endpoint_answer`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tornado import httputil
from tornado.web import Application

from .endpoint_answer import BODY_LIMIT, PREFIX, REASONS, Answer
from .errors import ApiError


class FrontApplication(Application):
    """The runner's application, with ``/endpoints/`` answered by `TornadoRequest`."""

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
            self._inner = TornadoRequest(self._app.settings["runner"], self._conn)
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


class TornadoRequest(httputil.HTTPMessageDelegate, Answer):
    """One request to an endpoint on tornado's connection: checked as its headers come, sent to
    a worker once its body is in, answered as the worker answers."""

    def __init__(self, runner: Any, connection: httputil.HTTPConnection) -> None:
        Answer.__init__(self, runner, "GET")
        self._conn = connection
        self._query = ""
        self._headers: httputil.HTTPHeaders | None = None
        self._chunks: list[bytes] = []
        self._task: asyncio.Future[None] | None = None

    # -- tornado's side ------------------------------------------------------------------------

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> None:
        assert isinstance(start_line, httputil.RequestStartLine)
        self.method = start_line.method
        path, _, self._query = start_line.path.partition("?")
        self._headers = headers
        # A refused request is answered before its body is read and its connection closed;
        # tornado must not meanwhile refuse the same body again with a bare 400.
        set_max: Any = getattr(self._conn, "set_max_body_size", None)  # HTTP/1 has it
        if set_max is not None:
            with contextlib.suppress(ValueError):  # tornado answers 400 for it
                set_max(max(BODY_LIMIT, int(headers.get("Content-Length", "0"))))
        try:
            self.admit(path, lambda name: headers.get(name, ""))
        except ApiError as exc:  # answered now, the body unread (the connection then closes)
            self.error(exc.status, exc.kind, str(exc))

    def data_received(self, chunk: bytes) -> None:
        if not self.finished:
            self._chunks.append(chunk)

    def finish(self) -> None:
        """The body is in: serve the request (unless it was answered already)."""
        if not self.finished:
            assert self._headers is not None
            body, self._chunks = b"".join(self._chunks), []
            headers = list(self._headers.get_all())
            self._task = asyncio.ensure_future(self.serve(self._query, headers, body))

    def on_connection_close(self) -> None:
        self.hang_up()

    # -- writing -------------------------------------------------------------------------------

    def _write_head(
        self, status: int, headers: list[tuple[str, str]], data: bytes, length: int | None
    ) -> None:
        out = httputil.HTTPHeaders()
        for name, value in headers:
            out.add(name, value)
        if length is not None:
            out["Content-Length"] = str(length)
        line = httputil.ResponseStartLine("HTTP/1.1", status, REASONS.get(status, "Unknown"))
        _ignore_errors(self._conn.write_headers(line, out, data))

    def _write(self, data: bytes) -> None:
        _ignore_errors(self._conn.write(data))

    def _end(self) -> None:
        self._conn.finish()


def _ignore_errors(future: Any) -> None:
    future.add_done_callback(lambda done: done.exception())  # a caller gone: closed anyway
