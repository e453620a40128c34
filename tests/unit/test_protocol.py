"""The frame format, over a real socket pair, including a read interrupted half-way."""

from __future__ import annotations

import socket
import threading

import pytest

from nbremote.wire.codec import FrameReader, send_frame


def test_frames_roundtrip_with_buffers() -> None:
    left, right = socket.socketpair()
    with left, right:
        big = bytes(range(256)) * 4096  # 1 MiB, received straight into its own buffer
        sender = threading.Thread(
            target=send_frame, args=(left, {"op": "x", "n": 1}, [b"abc", b"", big])
        )
        sender.start()
        header, buffers = FrameReader(right).read()
        sender.join()
        assert header == {"op": "x", "n": 1}
        assert buffers == [bytearray(b"abc"), bytearray(), bytearray(big)]
        assert all(isinstance(buf, bytearray) for buf in buffers)  # writable, for zero-copy arrays


def test_a_read_interrupted_half_way_resumes() -> None:
    left, right = socket.socketpair()
    with left, right:
        reader = FrameReader(right)
        payload = b"x" * 300_000
        data = bytearray()

        def capture(header: dict[str, object], buffers: list[bytes]) -> None:
            class Collector:
                def sendall(self, chunk: bytes) -> None:
                    data.extend(chunk)

            send_frame(Collector(), header, buffers)  # type: ignore[arg-type]

        capture({"op": "y"}, [payload])
        left.sendall(data[:150_000])
        left.setblocking(False)
        right.settimeout(0.2)
        with pytest.raises(TimeoutError):  # stands in for a Ctrl-C during recv
            reader.read()
        right.settimeout(None)
        left.setblocking(True)
        left.sendall(data[150_000:])
        header, buffers = reader.read()
        assert header == {"op": "y"} and bytes(buffers[0]) == payload


def test_closed_connection_is_reported() -> None:
    left, right = socket.socketpair()
    left.close()
    with right, pytest.raises(ConnectionError):
        FrameReader(right).read()
