"""A ``@nr.web_server(port)`` endpoint inside its worker: an ASGI app in front of the server
the user's function starts.

Built once per deployed function (as the other web kinds): the function is called (it starts
any HTTP server on 127.0.0.1:port, in a thread or a subprocess, and returns), then the port is
waited for up to ``startup_timeout``. Each request is forwarded over HTTP/1.1 with
`http.client` in a thread (method, path and query, headers, body) and the answer streamed back
as it comes (status, headers without the hop-by-hop ones, body chunks). A server that never
listens is said in the app's log, and each request gets a 503 naming the port (it is looked for
again at each request: a slow server starts answering once it listens); one that hangs up gets
a 502.

Standard library only: a web server endpoint needs no web framework in its image.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import sys
import time
from typing import Any

from nbremote.wire.asgi import Receive, Send, read_body

HOST = "127.0.0.1"
CHUNK = 64 * 1024
# RFC 9110 7.6.1: they concern one connection, not the request that crosses two.
HOP_BY_HOP = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
    )
)


def listening(port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def web_server_app(fn: Any, port: int, startup_timeout: float) -> WebServerProxy:
    """Call ``fn`` (it starts the server) and wait for ``port``; the app forwarding to it."""
    fn()
    deadline = time.monotonic() + startup_timeout
    while not listening(port):
        if time.monotonic() > deadline:
            print(
                f"web_server: nothing listens on {HOST}:{port} {startup_timeout:g} s after the "
                f"function returned: start the server on port {port} (in a thread or a "
                "subprocess) before returning, or raise startup_timeout=",
                file=sys.stderr,
                flush=True,
            )
            return WebServerProxy(port, startup_timeout, ready=False)
        time.sleep(0.05)
    return WebServerProxy(port, startup_timeout, ready=True)


def _error(kind: str, message: str) -> bytes:
    return json.dumps({"error": {"type": kind, "message": message}}).encode()


class WebServerProxy:
    """Forwards each request to the server on 127.0.0.1:port."""

    def __init__(self, port: int, startup_timeout: float, *, ready: bool) -> None:
        self.port = port
        self.startup_timeout = startup_timeout
        self.ready = ready

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if not self.ready:
            self.ready = await asyncio.to_thread(listening, self.port)
        if not self.ready:
            message = (
                f"the endpoint's web server did not start listening on port {self.port} "
                f"(waited {self.startup_timeout:g} s; the app's log says more)"
            )
            await _answer(send, 503, _error("ServerNotListening", message))
            return
        body = await read_body(receive)
        try:
            response = await asyncio.to_thread(self._forward, scope, body)
        except OSError as exc:
            message = f"the endpoint's web server on port {self.port} did not answer: {exc}"
            await _answer(send, 502, _error("BadGateway", message))
            return
        try:
            headers = [
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in response.getheaders()
                if k.lower().encode("latin-1") not in HOP_BY_HOP
            ]
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers}
            )
            while True:
                chunk = await asyncio.to_thread(response.read1, CHUNK)
                if not chunk:
                    break
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            response.close()

    def _forward(self, scope: dict[str, Any], body: bytes) -> http.client.HTTPResponse:
        target = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string") or b""
        url = (target + (b"?" + query if query else b"")).decode("latin-1")
        connection = http.client.HTTPConnection(HOST, self.port, timeout=300)
        connection.putrequest(scope["method"], url, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", f"{HOST}:{self.port}")
        sized = False
        for key, value in scope.get("headers", ()):
            name = key.lower()
            if name in HOP_BY_HOP:
                continue
            sized = sized or name == b"content-length"
            connection.putheader(key.decode("latin-1"), value.decode("latin-1"))
        if body and not sized:
            connection.putheader("Content-Length", str(len(body)))
        connection.putheader("Connection", "close")
        connection.endheaders(body or None)
        return connection.getresponse()


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
