"""TLS on the runner: its server context, and frame channels over an established TLS session.

A runner reached over a network serves HTTPS (``--certfile``/``--keyfile``), and so its frame
channels run over TLS too. Tornado makes the TLS session (the handshake happens before the
request is parsed) and hands the upgraded connection over as an `SSLIOStream`, whose socket
asyncio cannot adopt: ``connect_accepted_socket`` would start a second handshake. So under TLS a
small pump feeds a `FrameConnection` (a buffered protocol) from the stream: each read lands
straight in the protocol's buffer, and frames go out through the stream. The plain path is not
touched: its socket still goes to asyncio as it is, which is what makes it fast.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

from tornado.iostream import IOStream, StreamClosedError

from nbremote.wire.codec import FrameLimits

from .frames import FrameConnection


def server_context(certfile: Path, keyfile: Path) -> ssl.SSLContext:
    """A server TLS context with the runner's certificate chain and key.

    Raises:
        ValueError: a file cannot be read, or is not a matching PEM certificate and key.
    """
    for option, path in (("--certfile", certfile), ("--keyfile", keyfile)):
        try:
            Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {option} {path}: {exc.strerror or exc}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        raise ValueError(
            f"cannot use --certfile {certfile} with --keyfile {keyfile} ({exc.reason or exc}): "
            "they must be a PEM certificate (chain) and its own private key, unencrypted"
        ) from None
    return context


class _StreamTransport(asyncio.Transport):
    """The little of a transport a `FrameConnection` uses, written to a tornado stream."""

    def __init__(self, stream: IOStream) -> None:
        super().__init__()
        self._stream = stream
        self._last_write: asyncio.Future[None] | None = None
        self.pump: asyncio.Task[None] | None = None  # held here: the loop keeps weak references

    def write(self, data: Any) -> None:
        if not self._stream.closed():
            # Tornado keeps big buffers as views (no copy) until they are written.
            self._last_write = self._stream.write(data)

    def is_closing(self) -> bool:
        return self._stream.closed()

    def close(self) -> None:
        """Close once what was written has gone out (as an asyncio transport does)."""
        last = self._last_write
        if last is None or last.done():
            self._stream.close()
        else:
            last.add_done_callback(lambda _: self._stream.close())

    def abort(self) -> None:
        self._stream.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername" and self._stream.socket is not None:
            return self._stream.socket.getpeername()
        return default


async def _pump(stream: IOStream, protocol: FrameConnection) -> None:
    """Read the stream into the protocol until it closes."""
    error: Exception | None = None
    try:
        while True:
            buffer = protocol.get_buffer(-1)
            received = await stream.read_into(buffer, partial=True)  # type: ignore[arg-type]
            del buffer  # not held while the protocol grows its buffer in the next get_buffer
            protocol.buffer_updated(received)
    except StreamClosedError:
        pass
    except Exception as exc:  # the protocol refused what came: drop the connection, as asyncio
        error = exc
        asyncio.get_running_loop().call_exception_handler(
            {"message": "frame channel over TLS failed", "exception": exc, "protocol": protocol}
        )
    finally:
        stream.close()
        protocol.connection_lost(error)


def connect_stream(stream: IOStream, limits: FrameLimits) -> FrameConnection:
    """A `FrameConnection` over a detached tornado stream (a TLS one), pumped from now on."""
    connection = FrameConnection(limits)
    transport = _StreamTransport(stream)
    connection.connection_made(transport)
    transport.pump = asyncio.get_running_loop().create_task(_pump(stream, connection))
    return connection
