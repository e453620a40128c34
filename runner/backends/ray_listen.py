"""The runner's frame port for workers on Ray nodes: TCP, each connection proving a one-time token.

Workers on other nodes cannot inherit a socket or reach the runner's Unix sockets, so the runner
listens on one TCP port for all of them. Whoever can reach that port is not trusted: the first
line of a connection must be the token of a worker the runner is starting (32 random hex
digits, made for that worker, never the runner's API token), compared in constant time; the
token is used up by its first connection, and a wrong, slow or second one is closed unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import socket

TOKEN_BYTES = 16  # 32 hex digits
LINE = 2 * TOKEN_BYTES + 1  # the token and a newline
HANDSHAKE_TIMEOUT = 10.0


class FramePort:
    """A listening TCP socket that hands each worker's connection to whoever awaits its token.

    Args:
        host: the address to listen on (one every Ray node can reach).
    """

    def __init__(self, host: str) -> None:
        self._listener = socket.create_server((host, 0))
        self._listener.setblocking(False)
        self.address: tuple[str, int] = (host, self._listener.getsockname()[1])
        self._waiting: dict[str, asyncio.Future[socket.socket]] = {}
        self._task: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()

    def expect(self) -> tuple[str, asyncio.Future[socket.socket]]:
        """A new one-time token, and the future of the connection that will bring it."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._accept())
        token = secrets.token_hex(TOKEN_BYTES)
        future: asyncio.Future[socket.socket] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        future.add_done_callback(lambda _: self._waiting.pop(token, None))
        return token, future

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(self._listener)
            except OSError:  # closed
                return
            task = asyncio.ensure_future(self._handshake(sock))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        sock.setblocking(False)
        line = b""
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                while len(line) < LINE:
                    chunk = await loop.sock_recv(sock, LINE - len(line))
                    if not chunk:
                        break
                    line += chunk
        except (TimeoutError, OSError):
            pass
        future = self._claim(line)
        if future is None:
            sock.close()
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        future.set_result(sock)

    def _claim(self, line: bytes) -> asyncio.Future[socket.socket] | None:
        """The waiting future whose token ``line`` carries (used up), or None."""
        if len(line) != LINE or not line.endswith(b"\n"):
            return None
        for token, future in list(self._waiting.items()):
            if hmac.compare_digest(token.encode(), line[:-1]) and not future.done():
                del self._waiting[token]
                return future
        return None

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        with contextlib.suppress(OSError):
            self._listener.close()
