"""A worker waiting for the blobs of its ``need`` does not take another request for them."""

from __future__ import annotations

import queue
import socket

from nbremote_runner.worker_inbox import Inbox

from nbremote.wire.codec import FrameReader, send_frame


def test_a_request_arriving_before_the_blobs_waits_its_turn() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        inbox = Inbox()
        reply: queue.Queue[object] = queue.Queue()
        inbox.replies["dict-1"] = reply  # type: ignore[assignment]
        call = {"pool": {"key": "a:f"}, "function": {"name": "f", "nbuf": 0}}
        send_frame(theirs, {"op": "call", "id": "second", **call}, [b"args"])
        send_frame(theirs, {"op": "done", "id": "dict-1", "ok": True})
        send_frame(theirs, {"op": "blobs", "id": "first", "items": []}, [b"function"])
        reader = FrameReader(ours)

        header, buffers = inbox.blobs(reader)
        assert header["op"] == "blobs" and bytes(buffers[0]) == b"function"
        assert reply.get_nowait()[0]["id"] == "dict-1"  # type: ignore[index]

        waiting, args, refused = inbox.next_request(reader)
        assert waiting["id"] == "second" and bytes(args[0]) == b"args" and refused == ""
