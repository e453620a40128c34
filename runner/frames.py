"""`nbremote.wire.codec` frames over asyncio transports: the runner's side of the hot path.

A `FrameConnection` is a buffered protocol: bytes are received into one reusable buffer and
parsed there, so a small frame costs one ``recv`` and no task switch, and each big buffer is
received straight into its own bytearray. Frames are handed to a callback as soon as they are
complete (or queued for `FrameConnection.receive` until a callback is set). Sending a small frame
is a plain ``transport.write``: relaying it takes no event-loop iteration of its own.

A frame with big buffers is streamed instead: its parts are queued as views and written a slice
at a time while the transport takes more (`pause_writing`/`resume_writing`). Handed a 256 MiB
buffer at once, asyncio's transport sends what fits and copies the rest into its own buffer
(fresh pages, slower than the sending), which made the runner's hop to a worker without its shm
(Ray, docker) ~4x slower than streaming it (0.59 s vs 0.13 s, bench/bench_relay.py). The queued
views are of buffers nobody changes after sending them: received frames' buffers are fresh
bytearrays of their own, and blobs are bytes.

Tornado's IOStream did this job before; its per-read futures and epoll re-registrations cost the
runner ~8 loop iterations and ~200 µs per relayed call (see bench/RESULTS.md).

Nothing the other side claims is allocated before its bytes arrive: a frame over the connection's
`FrameLimits` is answered with an error ``done`` and the connection closed, and a big buffer grows
as its bytes come (a 35-byte header claiming 3 GiB costs nothing). What a connection that closes
mid-frame held is freed with it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
from collections.abc import Callable, Sequence

from nbremote.wire.codec import (
    LENGTH,
    PREFIX,
    Buffer,
    FrameLimits,
    FrameRefused,
    FrameTooLarge,
    Header,
    decode_header,
    encode_prefix,
)
from nbremote.wire.ops import Op

Frame = tuple[Header, list[bytearray]]
OnFrame = Callable[[Header, list[bytearray]], None]

_SCRATCH = 1 << 18  # the receive buffer; a frame's small parts are parsed from here
_DIRECT = 1 << 16  # buffers this big are received straight into their own bytearray
_GROW = 1 << 20  # such a buffer starts this big and doubles as its bytes arrive
_SLICE = 1 << 20  # a big buffer is written this much at a time
_HIGH_WATER = 1 << 20  # asyncio pauses the writing above this much unsent (its copy, per slice)


class ConnectionClosed(ConnectionError):
    """The other side has gone."""


class FrameConnection(asyncio.BufferedProtocol):
    """One frame stream: frames in through a callback, frames out with `send`.

    Args:
        limits: the biggest frame taken; a bigger one closes the connection.
    """

    def __init__(self, limits: FrameLimits | None = None) -> None:
        self.limits = limits or FrameLimits()
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._on_frame: OnFrame | None = None
        self._queued: collections.deque[Frame] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._scratch = bytearray(_SCRATCH)
        self._start = self._end = 0  # unparsed bytes are _scratch[_start:_end]
        self._header: Header | None = None
        self._sizes: list[int] = []
        self._buffers: list[bytearray] = []
        self._filling: bytearray | None = None  # a big buffer being received straight into
        self._filled = 0  # how much of it has arrived
        self._refused = False  # a frame over the limits arrived: the rest is ignored
        self._pending: collections.deque[memoryview] = collections.deque()  # parts to write
        self._paused = False  # the transport holds enough unsent: wait for `resume_writing`
        self._closing = False  # `close` was called: close once `_pending` is written

    # -- asyncio's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        with contextlib.suppress(NotImplementedError):  # the TLS pump's stream has no buffer
            transport.set_write_buffer_limits(high=_HIGH_WATER)

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()  # a frame cut short: its buffers go now, not with this object
        self._pending.clear()  # nobody to write them to
        if not self.closed.done():
            self.closed.set_result(None)
        self._wake()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._filling is not None:
            buf = self._filling
            if self._filled == len(buf):  # full so far: room for more, never the whole claim
                size = self._sizes[len(self._buffers) - 1]
                buf.extend(bytes(min(max(len(buf), _GROW), size - len(buf))))
            return memoryview(buf)[self._filled :]
        if self._end == len(self._scratch):  # full: move what is left to the front
            left = self._end - self._start
            if self._start == 0:  # one frame's header is bigger than the buffer
                self._scratch.extend(bytes(len(self._scratch)))
            else:
                self._scratch[:left] = self._scratch[self._start : self._end]
                self._start, self._end = 0, left
        return memoryview(self._scratch)[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._refused:
            return
        if self._filling is not None:
            self._filled += nbytes
            if self._filled < self._sizes[len(self._buffers) - 1]:
                return
            self._filling = None
        else:
            self._end += nbytes
        self._parse()
        if self._start == self._end:
            self._start = self._end = 0
            if len(self._scratch) > _SCRATCH:  # a big header has gone: so can its room
                self._scratch = bytearray(_SCRATCH)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._flush()

    # -- parsing

    def _available(self) -> int:
        return self._end - self._start

    def _take(self, size: int) -> memoryview:
        view = memoryview(self._scratch)[self._start : self._start + size]
        self._start += size
        return view

    def _parse(self) -> None:
        try:
            while self._filling is None and not self._refused:
                if self._header is None:
                    if not self._parse_meta():
                        return
                elif not self._next_buffer():
                    return
        except (FrameTooLarge, FrameRefused) as exc:
            self._refuse(type(exc).__name__, str(exc))

    def _parse_meta(self) -> bool:
        if self._available() < PREFIX.size:
            return False
        header_len, count = PREFIX.unpack_from(self._scratch, self._start)
        self.limits.check_prefix(header_len, count)  # before waiting for (and storing) it all
        need = PREFIX.size + header_len + LENGTH.size * count
        if self._available() < need:
            return False
        self._start += PREFIX.size
        try:
            self._header = decode_header(bytes(self._take(header_len)))
        except ValueError as exc:
            raise FrameRefused(f"a frame header that cannot be read: {exc}", {}) from None
        sizes = self._take(LENGTH.size * count)
        self._sizes = [LENGTH.unpack_from(sizes, LENGTH.size * i)[0] for i in range(count)]
        self._buffers = []
        self.limits.check_sizes(self._sizes)
        return True

    def _refuse(self, ename: str, reason: str) -> None:
        """Answer a frame that cannot be taken with an error ``done``, and close: the stream
        cannot be trusted to be in step any more."""
        request_id = (self._header or {}).get("id")
        error = {"ename": ename, "evalue": reason, "traceback": []}
        self._refused = True
        self._release()
        with contextlib.suppress(ConnectionClosed):
            self.send(
                {
                    "op": Op.DONE,
                    "id": request_id if isinstance(request_id, str) else None,
                    "ok": False,
                    "held": [],
                    "error": error,
                }
            )
        self.close()

    def _release(self) -> None:
        self._header, self._sizes, self._buffers, self._filling = None, [], [], None
        self._scratch = bytearray()  # the connection is done with: nothing more to parse
        self._start = self._end = 0

    def _next_buffer(self) -> bool:
        """Take the next buffer of the current frame; False when it needs more bytes."""
        while len(self._buffers) < len(self._sizes):
            size = self._sizes[len(self._buffers)]
            have = min(self._available(), size)
            if size >= _DIRECT and have < size:
                # What has arrived: the rest goes straight in as it comes (`get_buffer`).
                self._filling, self._filled = bytearray(self._take(have)), have
                self._buffers.append(self._filling)
                return False
            if have < size:
                return False
            self._buffers.append(bytearray(self._take(size)))
        header, buffers = self._header, self._buffers
        assert header is not None
        self._header, self._sizes, self._buffers = None, [], []
        self._deliver(header, buffers)
        return True

    def _deliver(self, header: Header, buffers: list[bytearray]) -> None:
        if self._on_frame is not None:
            self._on_frame(header, buffers)
        else:
            self._queued.append((header, buffers))
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- the owner's side

    def listen(self, on_frame: OnFrame) -> None:
        """From now on hand each frame to ``on_frame`` (frames queued so far first)."""
        self._on_frame = on_frame
        while self._queued:
            on_frame(*self._queued.popleft())

    async def receive(self) -> Frame:
        """The next frame (before `listen`); raises `ConnectionClosed` when the peer is gone."""
        while not self._queued:
            if self.closed.done():
                raise ConnectionClosed("the connection closed")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._queued.popleft()

    @property
    def is_closing(self) -> bool:
        """Whether the connection is closed or closing."""
        return self._closing or self.transport is None or self.transport.is_closing()

    def send(self, header: Header, buffers: Sequence[Buffer] = ()) -> None:
        """Queue one frame; a small frame goes out in one ``send`` call, at once, and a big one
        is streamed (the buffers must not change until it has gone: nobody here changes them).

        Raises:
            ConnectionClosed: the connection is closed.
        """
        if self.is_closing:
            raise ConnectionClosed("the connection closed")
        assert self.transport is not None
        prefix = encode_prefix(header, buffers)
        if all(memoryview(buf).nbytes < _DIRECT for buf in buffers):
            frame = b"".join([prefix, *buffers])
            if not self._pending:  # nothing ahead of it: the hot path
                self.transport.write(frame)
                return
            self._pending.append(memoryview(frame))
        else:
            views = [memoryview(buf).cast("B") for buf in buffers]  # raises before any queues
            self._pending.append(memoryview(prefix))
            self._pending.extend(view for view in views if view.nbytes)
        self._flush()

    def _flush(self) -> None:
        """Write queued parts a slice at a time until the transport has enough unsent."""
        transport, pending = self.transport, self._pending
        assert transport is not None
        while pending and not self._paused:
            if transport.is_closing():  # aborted under us: `connection_lost` follows
                pending.clear()
                return
            part = pending[0]
            if len(part) <= _SLICE:
                pending.popleft()
                transport.write(part)
            else:
                pending[0] = part[_SLICE:]
                transport.write(part[:_SLICE])
        if self._closing and not pending:
            transport.close()

    def close(self) -> None:
        """Close the connection once the frames sent so far are written (a peer that stops
        reading keeps it open, as an asyncio transport does; `connection_lost` drops them)."""
        if self.transport is None or self._closing:
            return
        self._closing = True
        if not self._pending:
            self.transport.close()


async def connect(sock: socket.socket, limits: FrameLimits | None = None) -> FrameConnection:
    """A `FrameConnection` over a connected socket, owned by the running loop from now on."""
    loop = asyncio.get_running_loop()
    _, connection = await loop.connect_accepted_socket(lambda: FrameConnection(limits), sock=sock)
    return connection
