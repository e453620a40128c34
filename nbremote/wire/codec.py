"""Frames: the binary message format of the hot path (client <-> runner <-> worker).

A frame is a small JSON header plus zero or more raw buffers, so that pickled objects and their
out-of-band array buffers travel without being copied into one big message::

    !II   header length, number of buffers
    JSON  header (a dict with at least "op")
    !nQ   one length per buffer
    ...   the buffers, back to back

This module is standard library only: the worker imports it and must start fast. The runner has
an asynchronous reader of the same format (`nbremote_runner.frames`).

The other side may be hostile (a worker runs anyone's code; a runner may be someone else's), so a
reader trusts no length it is told: a frame over `FrameLimits` is refused before anything is
allocated for it, and a big buffer grows as its bytes arrive, never to the size it claims first.
"""

from __future__ import annotations

import json
import json.encoder
import json.scanner
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .held import HeldBuffers
from .shm import ShmRefused, discard, externalize, internalize

PREFIX = struct.Struct("!II")
LENGTH = struct.Struct("!Q")
# Frames whose buffers are all below this size are read through one shared receive buffer;
# bigger buffers are received straight into their own bytearray (no extra copy).
_CHUNK = 1 << 18
_GROW = 1 << 20  # a big buffer starts this big and doubles as its bytes arrive
_MAX_RECV = 1 << 24  # the most one recv asks for (it allocates what it asks)

Header = dict[str, Any]
Buffer = bytes | bytearray | memoryview

GiB = 1 << 30


@dataclass(frozen=True)
class FrameLimits:
    """The biggest frame a reader takes; a bigger one ends the connection.

    Args:
        max_header_bytes: the JSON header.
        max_buffers: how many buffers one frame may have.
        max_buffer_bytes: the size of one buffer.
        max_frame_bytes: all the buffers of one frame together.
    """

    max_header_bytes: int = 64 << 20
    max_buffers: int = 1 << 20
    max_buffer_bytes: int = 16 * GiB
    max_frame_bytes: int = 32 * GiB

    def check_prefix(self, header_len: int, count: int) -> None:
        """Refuse a frame whose header or buffer table is over the limits.

        Raises:
            FrameTooLarge: naming the limit.
        """
        if header_len > self.max_header_bytes:
            raise FrameTooLarge(
                f"a frame header of {header_len} bytes is over the limit of "
                f"{self.max_header_bytes} bytes"
            )
        if count > self.max_buffers:
            raise FrameTooLarge(
                f"a frame of {count} buffers is over the limit of {self.max_buffers} buffers"
            )

    def check_sizes(self, sizes: Sequence[int]) -> None:
        """Refuse a frame whose buffers are over the limits (before any is allocated).

        Raises:
            FrameTooLarge: naming the limit.
        """
        if not sizes or (
            max(sizes) <= self.max_buffer_bytes and sum(sizes) <= self.max_frame_bytes
        ):
            return  # the usual case, in one pass of C each
        for index, size in enumerate(sizes):
            if size > self.max_buffer_bytes:
                raise FrameTooLarge(
                    f"buffer {index} of a frame claims {size} bytes, over the limit of "
                    f"{self.max_buffer_bytes} bytes per buffer"
                )
        if sum(sizes) > self.max_frame_bytes:
            raise FrameTooLarge(
                f"a frame's buffers claim {sum(sizes)} bytes together, over the limit of "
                f"{self.max_frame_bytes} bytes per frame"
            )


class FrameTooLarge(ConnectionError):
    """A frame over the reader's `FrameLimits`: the connection cannot go on."""


class FrameRefused(ConnectionError):
    """A whole frame arrived but cannot be taken (a header that is not a JSON object, a
    shared-memory file where none may be). The stream is still in step: a reader that can
    answer ``header`` with an error may go on reading."""

    def __init__(self, message: str, header: Header) -> None:
        super().__init__(message)
        self.header = header


# JSON's C scanner and encoder, made once: `json.loads` and `json.dumps` rebuild them, and look
# for BOMs and whitespace, on each call (~1 µs of a header's 2-3 µs either way, on each side of
# each frame). What the scanner does not take whole goes through `json.loads`, which says why.
_scan: Any = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _encoder() -> Callable[[Header], str]:
    plain = json.JSONEncoder(separators=(",", ":"))
    make = getattr(json.encoder, "c_make_encoder", None)  # None without the C speedups
    if make is None:
        return plain.encode
    # No circular check (a header is a tree of plain values); sort_keys, skipkeys, allow_nan
    # as json.dumps has them.
    escape = json.encoder.encode_basestring_ascii
    fast = make(None, plain.default, escape, None, ":", ",", False, False, True)
    return lambda header: "".join(fast(header, 0))


_encode = _encoder()


def decode_header(raw: bytes | bytearray) -> Header:
    """A frame's JSON header, which must be an object.

    Raises:
        ValueError: it is not JSON, or not an object.
    """
    try:
        text = raw.decode()
        header, end = _scan(text, 0)
        whole = end == len(text)
    except (StopIteration, UnicodeDecodeError):
        whole = False
    if not whole:
        header = json.loads(raw)
    if not isinstance(header, dict):
        raise ValueError(f"a frame header must be a JSON object, not {type(header).__name__}")
    return header


def encode_prefix(header: Header, buffers: Sequence[Buffer]) -> bytes:
    """The bytes that precede a frame's buffers: lengths, JSON header and buffer lengths."""
    body = _encode(header).encode()
    sizes = b"".join(LENGTH.pack(memoryview(b).nbytes) for b in buffers)
    return PREFIX.pack(len(body), len(buffers)) + body + sizes


def send_frame(
    sock: socket.socket,
    header: Header,
    buffers: Sequence[Buffer] = (),
    shm_dir: str | None = None,
    held: set[str] | None = None,
    ahead: dict[int, str] | None = None,
) -> None:
    """Write one frame on a blocking socket, buffers without copying them.

    With ``shm_dir`` (the receiver shares this machine), big buffers go through shared memory;
    with ``held`` too (the digests a leased worker keeps), those it keeps go by digest
    (``ahead``: the digests of the big buffers, if computed already).
    """
    header, buffers = externalize(header, buffers, shm_dir, held, ahead)
    prefix = encode_prefix(header, buffers)
    small = [b for b in buffers if memoryview(b).nbytes < _CHUNK]
    try:
        if len(small) == len(buffers):
            sock.sendall(b"".join([prefix, *buffers]))
            return
        sock.sendall(prefix)
        for buf in buffers:
            sock.sendall(buf)
    except BaseException:
        discard(header)  # a frame not sent: nobody will map its files
        raise


class FrameReader:
    """Reads frames from a blocking socket, with few system calls for small frames.

    Resumable: if a read is interrupted (Ctrl-C raises KeyboardInterrupt inside ``recv``), what
    arrived so far is kept and the next `read` carries on where this one stopped.

    Args:
        sock: the connected socket.
        limits: the biggest frame taken (`FrameTooLarge` beyond).
        shm_dir: the one folder whose shared-memory files frames may name (see
            `nbremote.wire.shm.internalize`); None: the other side is not on this machine, and a
            frame naming one is refused.
    """

    def __init__(
        self, sock: socket.socket, limits: FrameLimits | None = None, shm_dir: str | None = None
    ) -> None:
        self._sock = sock
        self.limits = limits or FrameLimits()
        self.shm_dir = shm_dir
        self.held: HeldBuffers | None = None  # a leased worker's kept buffers (`wire.held`)
        self._buf = bytearray()
        self._header: Header | None = None
        self._sizes: list[int] = []
        self._buffers: list[bytearray] = []
        self._filled = 0  # bytes received into the last of self._buffers
        self._invalid: str | None = None  # why the current frame's header cannot be taken

    @property
    def buffered(self) -> bool:
        """Whether bytes of a next frame were received already (a poll would not show them)."""
        return bool(self._buf) or self._header is not None

    def feed(self, data: bytes) -> None:
        """Take bytes that were received before the reader existed."""
        self._buf += data

    def _fill(self, n: int) -> None:
        while len(self._buf) < n:
            chunk = self._sock.recv(min(max(_CHUNK, n - len(self._buf)), _MAX_RECV))
            if not chunk:
                raise ConnectionError("connection closed")
            self._buf += chunk

    def _read_header(self) -> None:
        self._fill(PREFIX.size)
        header_len, count = PREFIX.unpack_from(self._buf)
        self.limits.check_prefix(header_len, count)
        end = PREFIX.size + header_len + LENGTH.size * count
        self._fill(end)
        raw = self._buf[PREFIX.size : PREFIX.size + header_len]
        sizes = list(struct.unpack_from(f"!{count}Q", self._buf, PREFIX.size + header_len))
        self.limits.check_sizes(sizes)
        try:
            self._header = decode_header(raw)
        except ValueError as exc:  # the lengths are sound: the next frame can still be read
            self._header, self._invalid = {}, str(exc)
        self._sizes = sizes
        del self._buf[:end]

    def _read_buffer(self) -> None:
        """Receive the next buffer into a fresh, writable bytearray that grows as bytes come."""
        out = self._buffers[-1]
        size = self._sizes[len(self._buffers) - 1]
        if self._filled == 0 and self._buf:
            have = min(size, len(self._buf))
            out[:have] = self._buf[:have]
            del self._buf[:have]
            self._filled = have
        while self._filled < size:
            if self._filled == len(out):  # full so far: room for more, never the whole claim
                out.extend(bytes(min(max(len(out), _GROW), size - len(out))))
            got = self._sock.recv_into(memoryview(out)[self._filled :])
            if not got:
                raise ConnectionError("connection closed")
            self._filled += got

    def _take_buffers(self) -> None:
        """Take the frame's buffers, all received already, from the bytes received."""
        buf, position = self._buf, 0
        for size in self._sizes:
            self._buffers.append(buf[position : position + size])
            position += size
        self._filled = self._sizes[-1] if self._sizes else 0
        del buf[:position]

    def read(self) -> tuple[Header, list[bytearray]]:
        """Block until one whole frame has arrived; return its header and buffers.

        Raises:
            ConnectionError: the connection closed.
            FrameTooLarge: the frame is over the limits (the connection cannot go on).
            FrameRefused: the frame cannot be taken (the next one can still be read).
        """
        if self._header is None:
            self._read_header()
        if not self._buffers and sum(self._sizes) <= len(self._buf):
            self._take_buffers()  # the usual small frame: it arrived whole
        while True:
            if self._buffers and self._filled < self._sizes[len(self._buffers) - 1]:
                self._read_buffer()
            if len(self._buffers) == len(self._sizes):
                break
            size = self._sizes[len(self._buffers)]
            self._buffers.append(bytearray(min(size, _GROW)))
            self._filled = 0
        header, buffers, invalid = self._header, self._buffers, self._invalid
        assert header is not None
        self._header, self._sizes, self._buffers, self._filled = None, [], [], 0
        self._invalid = None
        if invalid is not None:
            raise FrameRefused(f"a frame header that cannot be read: {invalid}", header)
        try:
            internalize(header, buffers, self.shm_dir, self.held)
        except ShmRefused as exc:
            raise FrameRefused(str(exc), header) from None
        return header, buffers
