"""The runner's frame connection: frames of every shape cross a real socket intact."""

from __future__ import annotations

import asyncio
import os
import socket
import threading

import pytest
from nbremote_runner.frames import ConnectionClosed, connect

from nbremote.wire.codec import FrameReader, encode_prefix

FRAMES = [
    ({"op": "call", "id": "a"}, []),
    ({"op": "call", "id": "b", "text": "é" * 10}, [b"x" * 10, b""]),
    ({"op": "exec", "id": "c"}, [os.urandom(3 << 20), b"small", os.urandom(70_000)]),
    ({"op": "big-header", "id": "d", "pad": "p" * 600_000}, [b"1"]),
]


def _send_dribbled(sock: socket.socket) -> None:
    """Write every frame in odd-sized pieces, so that parts and buffers straddle reads."""
    data = b"".join(encode_prefix(h, bufs) + b"".join(bufs) for h, bufs in FRAMES)
    for start in range(0, len(data), 7919):
        sock.sendall(data[start : start + 7919])
    sock.close()


def test_frames_arrive_whole_in_order_whatever_the_read_sizes() -> None:
    async def main() -> list[tuple[dict[str, object], list[bytearray]]]:
        ours, theirs = socket.socketpair()
        connection = await connect(ours)
        sender = threading.Thread(target=_send_dribbled, args=(theirs,))
        sender.start()
        received = [await connection.receive() for _ in FRAMES]
        with pytest.raises(ConnectionClosed):
            await connection.receive()
        sender.join()
        return received

    received = asyncio.run(main())
    assert [(h, [bytes(b) for b in bufs]) for h, bufs in received] == FRAMES


def test_sent_frames_read_back_by_the_blocking_reader() -> None:
    ours, theirs = socket.socketpair()
    reader = FrameReader(theirs)

    async def main() -> None:
        connection = await connect(ours)
        for header, buffers in FRAMES:
            connection.send(header, buffers)
        connection.close()
        await connection.closed
        with pytest.raises(ConnectionClosed):
            connection.send({"op": "late"})

    thread = threading.Thread(target=asyncio.run, args=(main(),))
    thread.start()
    got = [reader.read() for _ in FRAMES]
    thread.join()
    theirs.close()
    assert [(h, [bytes(b) for b in bufs]) for h, bufs in got] == FRAMES
