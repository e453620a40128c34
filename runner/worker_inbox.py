"""What arrives on a worker's socket, sorted for the thread that serves requests.

The serving thread is the only reader. It takes requests in order; while a request waits for the
blobs answering its ``need`` (or the reply to a cell's ``input``), requests that arrive first
(concurrent inputs) wait their turn; and the runner's answers to other threads' Dict or Queue
requests are handed to those threads.

Standard library only: this runs inside every container.
"""

from __future__ import annotations

import collections
import queue
from typing import Any

from nbremote.wire.codec import FrameReader, FrameRefused, Header
from nbremote.wire.op_checks import FrameInvalid, problem
from nbremote.wire.ops import Op

Frame = tuple[Header, list[Any]]
Request = tuple[Header, list[Any], str]  # the frame, and why it is refused ("" if it is not)


class Inbox:
    """Requests in order, blobs for a ``need``, and replies for the threads that wait on them."""

    def __init__(self) -> None:
        self.replies: dict[str, queue.Queue[Frame]] = {}  # request id -> the thread's mailbox
        self._deferred: collections.deque[Request] = collections.deque()

    def next_request(self, reader: FrameReader, once: bool = False) -> Request | None:
        """The next request to serve: one that had to wait first, else the next on ``reader``
        (``once``: None if the frame read was another thread's answer, so that an event loop
        reading the socket never waits here for a request that may not come)."""
        return self._deferred.popleft() if self._deferred else self._read(reader, once)

    def blobs(self, reader: FrameReader, op: str = Op.BLOBS) -> Frame:
        """The ``blobs`` frame answering the ``need`` just sent (or the ``op`` frame answering
        another question: ``input_reply``); requests before it wait."""
        while True:
            header, buffers, refused = self._read(reader)
            if header.get("op") == op and not refused:
                return header, buffers
            self._deferred.append((header, buffers, refused))

    def ready(self, reader: FrameReader) -> bool:
        """Whether a request was read already (no readiness of the socket will say so)."""
        return reader.buffered or bool(self._deferred)

    def reply(self, reader: FrameReader, reply_id: str) -> Frame:
        """The runner's answer ``reply_id`` to this thread, read here; requests before it wait
        (and other threads' answers go to them)."""
        box: queue.Queue[Frame] = queue.Queue(maxsize=1)
        self.replies[reply_id] = box
        try:
            while box.empty():
                request = self._read(reader, once=True)
                if request is not None:
                    self._deferred.append(request)
            return box.get()
        finally:
            del self.replies[reply_id]

    def _read(self, reader: FrameReader, once: bool = False) -> Any:
        """The next request (``once``: None after a thread's answer)."""
        while True:
            try:
                header, buffers = reader.read()
            except FrameRefused as exc:  # read whole, so the next frame can be: say why
                return exc.header, [], str(exc)
            if header.get("op") != Op.DONE:
                wrong = problem(header)  # a frame missing a field is refused, naming it
                refused = "" if wrong is None else str(FrameInvalid(header.get("op"), wrong))
                return header, buffers, refused
            request_id = header.get("id")
            box = self.replies.get(request_id) if isinstance(request_id, str) else None
            if box is not None:  # the runner's answer to a thread's Dict request
                box.put(checked_reply(header, buffers))
            if once:
                return None


def checked_reply(header: Header, buffers: list[Any]) -> Frame:
    """The runner's answer to a Dict, Queue or Volume request, or an error ``done`` saying why
    it cannot be read (the asker raises it, rather than a KeyError)."""
    wrong = problem(header)
    if wrong is None:
        return header, buffers
    evalue = str(FrameInvalid(header.get("op"), wrong))
    error = {"ename": "ValidationError", "evalue": evalue, "traceback": []}
    return {"op": Op.DONE, "id": header.get("id"), "ok": False, "error": error}, []
