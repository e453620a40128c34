"""The ray backend's frame port: only a worker's one-time token opens it, and only once."""

from __future__ import annotations

import asyncio
import socket

from nbremote_runner.backends.ray_listen import FramePort


async def _send(address: tuple[str, int], line: bytes) -> bytes:
    """Connect, send ``line``, and read what comes back (b"" once the port closes us)."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(line)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(1), 5)
    except ConnectionResetError:  # closed with bytes of ours unread
        return b""
    finally:
        writer.close()


def test_the_right_token_hands_over_the_connection_once() -> None:
    async def scenario() -> None:
        port = FramePort("127.0.0.1")
        token, arrived = port.expect()
        reader, writer = await asyncio.open_connection(*port.address)
        writer.write(token.encode() + b"\n")
        sock = await asyncio.wait_for(arrived, 5)
        sock.sendall(b"x")  # the runner's end of the worker's connection
        assert await reader.read(1) == b"x"
        # The same token again: closed unread, nobody gets it.
        assert await _send(port.address, token.encode() + b"\n") == b""
        writer.close()
        sock.close()
        port.close()

    asyncio.run(scenario())


def test_a_wrong_or_malformed_token_is_closed_and_the_worker_still_waits() -> None:
    async def scenario() -> None:
        port = FramePort("127.0.0.1")
        token, arrived = port.expect()
        wrong = ("0" * 32 if token != "0" * 32 else "1" * 32).encode()
        assert await _send(port.address, wrong + b"\n") == b""
        assert await _send(port.address, token.encode()[:-1] + b"\xff\n") == b""
        assert await _send(port.address, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n") == b""
        assert not arrived.done()
        with socket.create_connection(port.address) as good:
            good.sendall(token.encode() + b"\n")
            handed = await asyncio.wait_for(arrived, 5)
            handed.sendall(b"x")
            assert good.recv(1) == b"x"
            handed.close()
        port.close()

    asyncio.run(scenario())
