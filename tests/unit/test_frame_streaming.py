"""The runner streams big buffers (`FrameConnection.send`), and nothing sent is lost or reordered.

Big buffers are queued as views and written a slice at a time while the transport takes more,
instead of handing asyncio the whole buffer (which copies what does not fit at once). Frames sent
after a big one wait behind it; a close writes what was queued first; a reader that goes away
mid-frame ends the connection instead of leaving it waiting. Real sockets, a real event loop, a
blocking reader in a thread (as a worker reads).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest
from nbremote_runner.frames import ConnectionClosed, connect

from nbremote.wire.codec import FrameReader

MiB = 1 << 20


def _pair() -> tuple[socket.socket, socket.socket]:
    """A TCP loopback pair with small buffers: the reader falls behind at once."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        reader = socket.create_connection(server.getsockname())
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        sender, _ = server.accept()
    return reader, sender


def _frames() -> list[tuple[dict[str, Any], list[bytes]]]:
    """Big and small frames interleaved, each buffer its own content."""
    frames: list[tuple[dict[str, Any], list[bytes]]] = []
    for i in range(12):
        if i % 3 == 0:
            buffers = [bytes([i]) * (3 * MiB + i), b"small" * i, bytes([i + 100]) * (MiB + 7)]
        elif i % 3 == 1:
            buffers = [b"x" * i]
        else:
            buffers = []
        frames.append(({"op": "call", "id": f"r{i}"}, buffers))
    return frames


def _read_slowly(sock: socket.socket, count: int, got: list[Any]) -> None:
    reader = FrameReader(sock)
    for _ in range(count):
        time.sleep(0.01)  # behind the sender: its writes pause and resume
        header, buffers = reader.read()
        got.append((header, [bytes(b) for b in buffers]))
    sock.settimeout(10)
    got.append(sock.recv(1))  # b"" once the runner has closed


async def _wait_thread(thread: threading.Thread) -> None:
    while thread.is_alive():
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("close_at_once", [False, True])
def test_interleaved_frames_reach_a_slow_reader_whole_and_in_order(close_at_once: bool) -> None:
    asyncio.run(_interleaved(close_at_once))


async def _interleaved(close_at_once: bool) -> None:
    reader_sock, sender_sock = _pair()
    connection = await connect(sender_sock)
    frames = _frames()
    got: list[Any] = []
    thread = threading.Thread(target=_read_slowly, args=(reader_sock, len(frames), got))
    thread.start()
    for header, buffers in frames:
        connection.send(header, [bytearray(b) for b in buffers])
        if not close_at_once:
            await asyncio.sleep(0)  # later frames come while earlier ones are still queued
    connection.close()  # queued frames still go, then the connection closes
    assert connection.is_closing
    with pytest.raises(ConnectionClosed):
        connection.send({"op": "call", "id": "late"})
    await asyncio.wait_for(_wait_thread(thread), 60)
    reader_sock.close()
    assert got[:-1] == [(dict(header, op="call"), buffers) for header, buffers in frames]
    assert got[-1] == b""
    await asyncio.wait_for(connection.closed, 10)


def test_a_reader_that_leaves_mid_frame_ends_the_connection() -> None:
    asyncio.run(_reader_leaves())


async def _reader_leaves() -> None:
    reader_sock, sender_sock = _pair()
    connection = await connect(sender_sock)
    connection.send({"op": "call", "id": "big"}, [bytearray(64 * MiB)])
    connection.send({"op": "call", "id": "after"}, [b"y"])  # queued behind the big one
    await asyncio.sleep(0.05)
    reader_sock.recv(1000)  # a little of it, then the reader goes
    reader_sock.close()
    await asyncio.wait_for(connection.closed, 10)
    with pytest.raises(ConnectionClosed):
        connection.send({"op": "call", "id": "late"})


def test_a_small_frame_alone_goes_out_at_once() -> None:
    asyncio.run(_small_frame())


async def _small_frame() -> None:
    reader_sock, sender_sock = _pair()
    connection = await connect(sender_sock)
    connection.send({"op": "call", "id": "a"}, [b"z" * 100])
    reader_sock.settimeout(10)
    header, buffers = await asyncio.to_thread(FrameReader(reader_sock).read)
    assert (header, buffers) == ({"op": "call", "id": "a"}, [bytearray(b"z" * 100)])
    connection.close()
    reader_sock.close()


def test_a_buffer_that_cannot_be_sent_leaves_the_stream_in_step() -> None:
    asyncio.run(_unsendable())


async def _unsendable() -> None:
    reader_sock, sender_sock = _pair()
    connection = await connect(sender_sock)
    strided = memoryview(bytearray(4 * MiB))[::2]  # not contiguous: no bytes of it to send
    with pytest.raises(TypeError):
        connection.send({"op": "call", "id": "bad"}, [b"head", strided])
    connection.send({"op": "call", "id": "next"}, [b"n" * MiB])
    reader_sock.settimeout(10)
    header, buffers = await asyncio.to_thread(FrameReader(reader_sock).read)
    assert (header, buffers) == ({"op": "call", "id": "next"}, [bytearray(b"n" * MiB)])
    connection.close()
    reader_sock.close()
