"""How a worker's output leaves it: ``stream`` frames for print and stderr, in order with the
rich output that the shell sends (`nbremote_runner.worker_shell`).

Everything the running cell produces goes through one `Outbox` on the worker's socket, in the
order it was produced: Python-level writes to ``sys.stdout``/``sys.stderr`` are buffered and sent
at least every `FLUSH_INTERVAL` seconds (so progress bars move while the cell runs), rich output
flushes the text before it, and writes to the file descriptors 1 and 2 (C extensions,
subprocesses, ``!cmd``) are read from pipes and sent as the same streams.

Standard library and IPython only: this runs inside every container.
"""

from __future__ import annotations

import base64
import codecs
import io
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from nbremote.wire.codec import Buffer, Header, encode_prefix, send_frame
from nbremote.wire.ops import Op

FLUSH_INTERVAL = 0.05
_FLUSH_SIZE = 1 << 16


class Outbox:
    """Sends frames on the worker's socket from any thread, tagged with the request being served.

    Each thread serving a request (the main thread, or a pool thread for concurrent inputs)
    declares it with `serve`; threads the user's code starts write on behalf of the request the
    main thread serves.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._local = threading.local()
        self._main: tuple[str | None, bool] = (None, False)
        self._main_thread = threading.main_thread().ident
        self._default: str | None = None  # see `by_default`
        # Big answers go through shared memory when the request says its client can map them.
        self.shm_dir = os.environ.get("NBREMOTE_SHM_DIR")

    def serve(self, request_id: str | None, shm_ok: bool = False) -> None:
        """Declare the request this thread serves (None: done)."""
        self._local.request = (request_id, shm_ok)
        if threading.get_ident() == self._main_thread:
            self._main = (request_id, shm_ok)

    def by_default(self, request_id: str | None) -> None:
        """The request that output goes to from a thread that serves none while the main thread
        serves none either: a web request in progress (its app's own threads print too, a
        framework's thread pool or a cell endpoint's thread; the runner logs it for the app)."""
        self._default = request_id

    def _current(self) -> tuple[str | None, bool]:
        current: tuple[str | None, bool] | None = getattr(self._local, "request", None)
        if current is not None and current[0] is not None:
            return current
        return self._main if self._main[0] is not None else (self._default, False)

    @property
    def request_id(self) -> str | None:
        """The request this thread writes for."""
        return self._current()[0]

    def use(self, sock: socket.socket) -> None:
        """Send frames on ``sock`` from now on (a leased client's, or the runner's again)."""
        with self._lock:
            self._sock = sock

    def send(
        self,
        op: str,
        buffers: Sequence[Buffer] = (),
        *,
        to: str | None = None,
        via: socket.socket | None = None,
        **fields: Any,
    ) -> None:
        """Send one frame for request ``to`` (default: this thread's request), on ``via``
        (default: the socket in use)."""
        request_id, shm_ok = self._current()
        header: Header = {"op": op, "id": to or request_id, **fields}
        with self._lock:
            send_frame(via or self._sock, header, buffers, self.shm_dir if shm_ok else None)

    def send_joined(self, frames: Sequence[tuple[Header, Sequence[Buffer]]]) -> None:
        """Send whole frames (``id`` and all) in one write: a web answer and its ``done`` wake
        the runner once."""
        data = b"".join(b"".join([encode_prefix(h, bufs), *bufs]) for h, bufs in frames)
        with self._lock:
            self._sock.sendall(data)


class FrameStream(io.TextIOBase):
    """A text stream (``sys.stdout`` or ``sys.stderr``) whose writes become ``stream`` frames,
    each request's text apart from the others'."""

    def __init__(self, outbox: Outbox, name: str) -> None:
        super().__init__()
        self._outbox = outbox
        self.name = name
        self._pending: dict[str, list[str]] = {}
        self._size = 0
        self._lock = threading.Lock()
        # One flush at a time: a flush that returns has sent what it took and what any flush
        # before it took (the request's `done`, sent next, never overtakes its last output).
        self._flushing = threading.Lock()

    # As ipykernel's streams: libraries pick their characters by it (%timeit's "±" and "µs",
    # tqdm's block bars); every text frame is UTF-8 JSON anyway.
    encoding = "utf-8"
    errors = "strict"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        request_id = self._outbox.request_id
        if request_id is None:
            return len(text)  # between requests: nobody to show it to
        with self._lock:
            self._pending.setdefault(request_id, []).append(text)
            self._size += len(text)
            full = self._size >= _FLUSH_SIZE
        if full:
            self.flush()
        return len(text)

    def flush(self) -> None:
        with self._flushing:
            if not self._pending:  # read without the lock: a write racing this flush is the next's
                return
            with self._lock:
                pending, self._pending, self._size = self._pending, {}, 0
            for request_id, pieces in pending.items():
                self._outbox.send(Op.STREAM, to=request_id, name=self.name, text="".join(pieces))


def start_flusher(streams: list[FrameStream]) -> None:
    """Flush the streams every `FLUSH_INTERVAL` seconds, so output shows while a cell runs."""

    def loop() -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            for stream in streams:
                stream.flush()

    threading.Thread(target=loop, name="nbremote-flush", daemon=True).start()


class _FdCapture:
    """What is written to a file descriptor (by C code or subprocesses), sent to a stream.

    The pipe is read only under a lock, by a thread as data comes and by `flush_streams` at the
    end of a cell: so what a finished subprocess wrote is in the cell's output, never late.
    """

    def __init__(self, fd: int, stream: FrameStream) -> None:
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        os.set_blocking(read_end, False)
        self.read_end = read_end
        self._stream = stream
        self._lock = threading.Lock()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        threading.Thread(target=self._pump, name=f"nbremote-fd{fd}", daemon=True).start()

    def drain(self, ready: bool = True) -> bool:
        """Send what the pipe holds now; False once every writer has closed it. Not ``ready``
        (a poll found it empty): only wait for a drain under way on its thread to end."""
        with self._lock:
            while ready:
                try:
                    chunk = os.read(self.read_end, 1 << 16)
                except BlockingIOError:
                    return True
                if not chunk:
                    return False
                self._stream.write(self._decoder.decode(chunk))
            return True

    def _pump(self) -> None:
        while True:
            select.select([self.read_end], [], [])
            if not self.drain():
                return


_captures: list[_FdCapture] = []
_read_ends: list[int] = []


def capture_fd(fd: int, stream: FrameStream) -> None:
    """Send what is written to file descriptor ``fd`` (by C code or subprocesses) to ``stream``."""
    _captures.append(_FdCapture(fd, stream))
    _read_ends.append(_captures[-1].read_end)


def json_mime(data: dict[str, Any]) -> dict[str, Any]:
    """Rich output with its binary data (a ``_repr_png_``'s bytes, SymPy's images) base64-encoded,
    as ipykernel sends it to the notebook."""
    return {
        mime: base64.b64encode(value).decode("ascii")
        if isinstance(value, bytes | bytearray | memoryview)
        else value
        for mime, value in data.items()
    }


def flush_streams() -> None:
    """Send buffered stdout/stderr text before rich output, to keep them in order."""
    # One poll for every pipe, rather than a read of each that fails (each call ends here).
    ready = select.select(_read_ends, [], [], 0)[0] if _read_ends else []
    for capture in _captures:
        capture.drain(capture.read_end in ready)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
