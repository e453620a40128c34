"""The lean HTTP front of web endpoints: a plain-HTTP connection whose first request is an
endpoint's is served here, off tornado, by an asyncio protocol over httptools (llhttp, the
parser uvicorn uses).

Why: an endpoint's request is the hot path of a deployed model, and tornado's HTTP/1 connection
(a coroutine, futures and header objects per request) cost the runner as much CPU as a whole
uvicorn server spends on the request. The runner still terminates every caller's HTTP itself:
a worker runs anyone's code, so it never sees a caller's connection, only the request that is
its own (a caller may send requests for several endpoints on one connection).

How a connection is chosen: `FrontServer.handle_stream` (tornado's accept) peeks at the first
bytes of a plain connection, without reading them. A request line ``METHOD /endpoints/...``
hands the socket to `EndpointProtocol`; anything else (the API, a kernel's channel, TLS, a
first packet too short to tell) stays with tornado, whose `endpoint_front` serves an endpoint
request that comes later on such a connection. The other way round, a request that is not an
endpoint's on an `EndpointProtocol` connection hands the connection to tornado with the bytes
read so far (after the answers in progress), so one connection can mix both as before.

What a caller sees is what tornado's front answers (`endpoint_answer`), plus: a pipelined
request waits for the one before it; ``Expect: 100-continue`` is answered once the head passed
its checks; an ``Upgrade`` request is answered as a plain one, then the connection closes.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
from typing import Any, cast

import httptools
from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream
from tornado.web import Application

from .endpoint_answer import BODY_LIMIT, METHODS, NO_BODY, PREFIX, REASONS, Answer
from .errors import ApiError

PEEK = 64  # bytes of a new connection looked at to choose its front
QUEUED = 16  # pipelined requests held before the connection stops being read
_STARTS = tuple(f"{method} {PREFIX}".encode() for method in METHODS)
log = logging.getLogger(__name__)


class FrontServer(HTTPServer):
    """tornado's HTTP server, but a plain connection that starts with an endpoint's request is
    served by `EndpointProtocol`."""

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        if self.ssl_options is not None or type(stream) is not IOStream:
            super().handle_stream(stream, address)
            return
        sock = stream.socket
        loop = asyncio.get_running_loop()

        def readable() -> None:
            loop.remove_reader(sock.fileno())
            try:
                head = sock.recv(PEEK, socket.MSG_PEEK)
            except OSError:
                head = b""
            if head.startswith(_STARTS):
                runner = cast(Application, self.request_callback).settings["runner"]
                connect = loop.connect_accepted_socket(
                    lambda: EndpointProtocol(self, runner, address), sock
                )
                _keep(asyncio.ensure_future(connect))
            else:
                self.serve_on_tornado(stream, address)

        loop.add_reader(sock.fileno(), readable)

    def serve_on_tornado(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        """Serve ``stream`` as tornado's HTTP server does."""
        super().handle_stream(stream, address)


_tasks: set[asyncio.Future[Any]] = set()


def _keep(task: asyncio.Future[Any]) -> None:
    """Hold a task until it is done (the loop keeps only weak references)."""
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


class _HandOff(Exception):
    """Raised from the parser's callback: the request is not an endpoint's."""


class RawAnswer(Answer):
    """One request's answer, written on the protocol's transport as HTTP/1.1 bytes."""

    def __init__(self, protocol: EndpointProtocol, method: str, keep_alive: bool) -> None:
        super().__init__(protocol.runner, method)
        self.protocol = protocol
        self.keep_alive = keep_alive
        self.refusal: tuple[int, str, str] | None = None  # refused at its head: its answer
        self._chunked = False

    def _write_head(
        self, status: int, headers: list[tuple[str, str]], data: bytes, length: int | None
    ) -> None:
        reason = REASONS.get(status, "Unknown")
        head = [f"HTTP/1.1 {status} {reason}\r\n"]
        head += [f"{name}: {value}\r\n" for name, value in headers]
        if length is not None:
            head.append(f"Content-Length: {length}\r\n")
        elif status not in NO_BODY and status >= 200:  # its length is not known yet
            if self.protocol.http10:
                self.keep_alive = False  # the body ends when the connection does
            else:
                self._chunked = True
                head.append("Transfer-Encoding: chunked\r\n")
        if not self.keep_alive:
            head.append("Connection: close\r\n")
        elif self.protocol.http10:
            head.append("Connection: keep-alive\r\n")
        head.append("\r\n")
        body = _chunk(data) if self._chunked else data
        self.protocol.write("".join(head).encode("latin-1") + body)

    def _write(self, data: bytes) -> None:
        if data:
            self.protocol.write(_chunk(data) if self._chunked else data)

    def _end(self) -> None:
        if self._chunked:
            self.protocol.write(b"0\r\n\r\n")
        self.protocol.answered(self)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data) if data else b""


class EndpointProtocol(asyncio.Protocol):
    """One plain-HTTP connection of endpoint callers: requests parsed by httptools, answered one
    at a time in their order, each by a `RawAnswer`."""

    def __init__(self, server: FrontServer, runner: Any, address: tuple[Any, ...]) -> None:
        self.server = server
        self.runner = runner
        self.address = address
        self.http10 = False
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._queue: collections.deque[tuple[RawAnswer, str, list[tuple[str, str]], bytes]] = (
            collections.deque()
        )
        self._serving: RawAnswer | None = None
        self._closing = False  # no more requests are read: answer what is queued, then close
        self._handing: bytes | None = None  # tornado's from here on: the bytes read so far
        self._handed = False
        # The request being parsed.
        self._answer: RawAnswer | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        # The bytes since the request being parsed began (None: not known, for a request
        # pipelined behind another in one read), to hand the connection to tornado with.
        self._data = b""
        self._in_message = False
        self._at_boundary = True
        self._since: list[bytes] | None = None
        self._request: tuple[str, list[tuple[str, str]]] = ("", [])  # its query and headers

    # -- asyncio's side ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._closing or self._handing is not None:
            return
        self._data, self._at_boundary = data, not self._in_message
        if self._in_message and self._since is not None:
            self._since.append(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _HandOff):
                raise
            self._hand_off_when_idle()
        except httptools.HttpParserUpgrade:
            self._stop_reading()  # what follows is not HTTP/1.1: answer, then close
        except httptools.HttpParserError as exc:
            self._stop_reading()
            if self._serving is None and not self._queue:
                self._refuse(400, "Bad Request", f"the request cannot be parsed: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if not self._handed and self._serving is not None:
            self._serving.hang_up()
        self._queue.clear()

    # -- httptools' callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._since = [self._data] if self._at_boundary else None
        self._url, self._headers, self._body, self._size = b"", [], [], 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        path, _, query = self._url.decode("latin-1").partition("?")
        if not path.startswith(PREFIX):
            self._handing = b"".join(self._since) if self._since is not None else b""
            raise _HandOff(path)
        parser = self._parser
        self.http10 = parser.get_http_version() == "1.0"
        method = parser.get_method().decode("latin-1")
        answer = self._answer = RawAnswer(self, method, parser.should_keep_alive())
        headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self._headers]
        named = {name.lower(): value for name, value in reversed(headers)}  # the first wins
        try:
            answer.admit(path, lambda name: named.get(name.lower(), ""))
        except ApiError as exc:  # answered now, the body unread, then the connection closes
            self._answer = None
            self._stop_reading()
            self._later(answer, exc)
            return
        self._request = (query, headers)
        if named.get("expect", "").lower() == "100-continue" and self._serving is None:
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._answer is None:
            return
        self._size += len(body)
        if self._size > BODY_LIMIT:  # a chunked body that had no length to refuse it by
            answer, self._answer = self._answer, None
            self._stop_reading()
            refusal = ApiError(413, "PayloadTooLarge", f"the body is over {BODY_LIMIT >> 20} MiB")
            self._later(answer, refusal)
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message, self._at_boundary = False, False
        answer, self._answer = self._answer, None
        if answer is None:
            return
        query, headers = self._request
        self._queue.append((answer, query, headers, b"".join(self._body)))
        self._body = []
        if len(self._queue) > QUEUED and self.transport is not None:
            self.transport.pause_reading()
        self._next()

    # -- serving -------------------------------------------------------------------------------

    def _next(self) -> None:
        if self._serving is not None:
            return
        if self._queue:
            answer, query, headers, body = self._queue.popleft()
            self._serving = answer
            if answer.refusal is not None:
                answer.error(*answer.refusal)
            else:
                _keep(asyncio.ensure_future(answer.serve(query, headers, body)))
            if len(self._queue) <= QUEUED // 2 and self.transport is not None:
                self.transport.resume_reading()
        elif self._handing is not None:
            self._hand_off()
        elif self._closing and self.transport is not None:
            self.transport.close()

    def answered(self, answer: RawAnswer) -> None:
        """``answer`` is complete: the next request's turn (or the connection's end)."""
        self._serving = None
        if not answer.keep_alive:
            self._closing = True
            self._queue.clear()
        self._next()

    def write(self, data: bytes) -> None:
        """Write to the caller (nothing once it has gone)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _later(self, answer: RawAnswer, refusal: ApiError) -> None:
        """Answer a refused request in its turn: at once if nothing is in progress."""
        answer.keep_alive = False
        answer.refusal = (refusal.status, refusal.kind, str(refusal))
        self._queue.append((answer, "", [], b""))
        self._next()

    def _refuse(self, status: int, kind: str, message: str) -> None:
        answer = RawAnswer(self, "GET", keep_alive=False)
        self._serving = answer
        answer.error(status, kind, message)

    def _stop_reading(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.pause_reading()

    # -- handing the connection to tornado -----------------------------------------------------

    def _hand_off_when_idle(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()
        self._next()

    def _hand_off(self) -> None:
        """Give the connection to tornado, with the bytes of the request it is to serve."""
        transport, data = self.transport, self._handing or b""
        if transport is None or transport.is_closing():
            return
        if not data:  # a request pipelined behind an answered one: its bytes are not known
            self._handing = None
            self._refuse(
                421,
                "Misdirected Request",
                "a runner API request pipelined behind an endpoint's on one connection: "
                "send it on a connection of its own",
            )
            return
        self._handed = True
        fd = os.dup(transport.get_extra_info("socket").fileno())
        transport.abort()  # closes its own descriptor: the connection lives on in ``fd``
        stream = IOStream(socket.socket(fileno=fd))
        stream._read_buffer += data  # what tornado's HTTP/1 connection reads first
        stream._read_buffer_size += len(data)
        self.server.serve_on_tornado(stream, self.address)
