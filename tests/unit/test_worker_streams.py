"""A worker's ``sys.stdout``/``sys.stderr`` (`FrameStream`): a flush that returns has sent what
was written before it, even when the background flusher took that text a moment earlier (else
the request's ``done``, sent next, overtook its last output: a traceback missing from a log)."""

from __future__ import annotations

import threading
from typing import Any

from nbremote_runner.worker_io import FrameStream


class SlowOutbox:
    """An outbox whose first send waits until the test lets it go."""

    request_id = "r1"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.first_send_began = threading.Event()
        self.release = threading.Event()

    def send(self, op: str, **fields: Any) -> None:
        if not self.first_send_began.is_set():
            self.first_send_began.set()
            self.release.wait(10)
        self.sent.append(fields["text"])


def test_a_flush_waits_for_the_flush_that_took_the_text_before_it() -> None:
    outbox = SlowOutbox()
    stream = FrameStream(outbox, "stderr")  # type: ignore[arg-type]
    stream.write("Traceback ...\n")
    flusher = threading.Thread(target=stream.flush)  # the background flusher's turn
    flusher.start()
    assert outbox.first_send_began.wait(10)
    done_may_go = threading.Event()

    def request_ends() -> None:
        stream.flush()  # what a request does before its done
        done_may_go.set()

    ender = threading.Thread(target=request_ends)
    ender.start()
    assert not done_may_go.wait(0.3)  # the traceback is still on its way: no done yet
    outbox.release.set()
    flusher.join(10)
    ender.join(10)
    assert done_may_go.is_set() and outbox.sent == ["Traceback ...\n"]
