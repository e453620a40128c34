"""Frames: the binary message format of the hot path (client <-> runner <-> worker).

A frame is a small JSON header plus zero or more raw buffers, so that pickled objects and their
out-of-band array buffers travel without being copied into one big message::

    !II   header length, number of buffers
    JSON  header (a dict with at least "op")
    !nQ   one length per buffer
    ...   the buffers, back to back

This module is standard library only: the worker imports it and must start fast. The runner has
an asynchronous reader of the same format (`nbremote_runner.frames`).
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Sequence
from typing import Any

from ._shm import externalize, internalize

PREFIX = struct.Struct("!II")
LENGTH = struct.Struct("!Q")
# Frames whose buffers are all below this size are read through one shared receive buffer;
# bigger buffers are received straight into their own bytearray (no extra copy).
_CHUNK = 1 << 18

Header = dict[str, Any]
Buffer = bytes | bytearray | memoryview


def encode_prefix(header: Header, buffers: Sequence[Buffer]) -> bytes:
    """The bytes that precede a frame's buffers: lengths, JSON header and buffer lengths."""
    body = json.dumps(header, separators=(",", ":")).encode()
    sizes = b"".join(LENGTH.pack(memoryview(b).nbytes) for b in buffers)
    return PREFIX.pack(len(body), len(buffers)) + body + sizes


def send_frame(
    sock: socket.socket, header: Header, buffers: Sequence[Buffer] = (), shm_dir: str | None = None
) -> None:
    """Write one frame on a blocking socket, buffers without copying them.

    With ``shm_dir`` (the receiver shares this machine), big buffers go through shared memory.
    """
    header, buffers = externalize(header, buffers, shm_dir)
    prefix = encode_prefix(header, buffers)
    small = [b for b in buffers if memoryview(b).nbytes < _CHUNK]
    if len(small) == len(buffers):
        sock.sendall(b"".join([prefix, *buffers]))
        return
    sock.sendall(prefix)
    for buf in buffers:
        sock.sendall(buf)


class FrameReader:
    """Reads frames from a blocking socket, with few system calls for small frames.

    Resumable: if a read is interrupted (Ctrl-C raises KeyboardInterrupt inside ``recv``), what
    arrived so far is kept and the next `read` carries on where this one stopped.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()
        self._header: Header | None = None
        self._sizes: list[int] = []
        self._buffers: list[bytearray] = []
        self._filled = 0  # bytes received into the last of self._buffers

    @property
    def buffered(self) -> bool:
        """Whether bytes of a next frame were received already (a poll would not show them)."""
        return bool(self._buf) or self._header is not None

    def feed(self, data: bytes) -> None:
        """Take bytes that were received before the reader existed."""
        self._buf += data

    def _fill(self, n: int) -> None:
        while len(self._buf) < n:
            chunk = self._sock.recv(max(_CHUNK, n - len(self._buf)))
            if not chunk:
                raise ConnectionError("connection closed")
            self._buf += chunk

    def _read_header(self) -> None:
        self._fill(PREFIX.size)
        header_len, count = PREFIX.unpack_from(self._buf)
        end = PREFIX.size + header_len + LENGTH.size * count
        self._fill(end)
        self._header = json.loads(self._buf[PREFIX.size : PREFIX.size + header_len])
        self._sizes = [
            LENGTH.unpack_from(self._buf, PREFIX.size + header_len + LENGTH.size * i)[0]
            for i in range(count)
        ]
        del self._buf[:end]

    def _read_buffer(self) -> None:
        """Receive the next buffer straight into a fresh, writable bytearray."""
        out = self._buffers[-1]
        size = len(out)
        if self._filled == 0 and self._buf:
            have = min(size, len(self._buf))
            out[:have] = self._buf[:have]
            del self._buf[:have]
            self._filled = have
        view = memoryview(out)
        while self._filled < size:
            got = self._sock.recv_into(view[self._filled :], size - self._filled)
            if not got:
                raise ConnectionError("connection closed")
            self._filled += got

    def read(self) -> tuple[Header, list[bytearray]]:
        """Block until one whole frame has arrived; return its header and buffers."""
        if self._header is None:
            self._read_header()
        while True:
            if self._buffers and self._filled < len(self._buffers[-1]):
                self._read_buffer()
            if len(self._buffers) == len(self._sizes):
                break
            self._buffers.append(bytearray(self._sizes[len(self._buffers)]))
            self._filled = 0
        header, buffers = self._header, self._buffers
        assert header is not None
        self._header, self._sizes, self._buffers, self._filled = None, [], [], 0
        internalize(header, buffers)
        return header, buffers
