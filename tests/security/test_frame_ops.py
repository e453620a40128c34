"""A malformed frame from a peer (a hostile or mismatched runner, or kernel) is refused on
receipt naming the op and the field: never a KeyError deep inside the receiver."""

from __future__ import annotations

import re
import socket
import threading
from typing import Any

import pytest

from nbremote._client import Channel, RunnerClient
from nbremote._session import RemoteSession, Request
from nbremote.errors import RunnerError
from nbremote.wire.codec import FrameReader, encode_prefix, send_frame
from tests.security.test_frames import ANSWER_TIMEOUT, _next, bare_worker


def _fake_runner(sock: socket.socket, answers: list[list[dict[str, Any]]]) -> None:
    """Answer each request (not cancels) with the next list of frames, its id filled in."""
    reader = FrameReader(sock)
    for frames in answers:
        while True:
            header, _ = reader.read()
            if header["op"] != "cancel":
                break
        for frame in frames:
            send_frame(sock, {**frame, "id": header["id"]})


def test_the_client_refuses_a_runner_frame_missing_a_field_and_goes_on() -> None:
    ours, theirs = socket.socketpair()
    ours.settimeout(ANSWER_TIMEOUT)
    answers = [
        [{"op": "stream", "name": "stdout"}],  # no text
        [{"op": "stream", "name": "stdout", "text": "hi\n"}, {"op": "done", "ok": True}],
    ]
    runner = threading.Thread(target=_fake_runner, args=(theirs, answers), daemon=True)
    runner.start()
    session = RemoteSession(RunnerClient("http://127.0.0.1:9", None))
    session._channel = Channel(ours)  # as if opened: the frames are what this test is about
    seen: list[dict[str, Any]] = []
    cell = {"op": "pull", "names": []}
    with pytest.raises(RunnerError, match=r"'stream' frame .*text: missing"):
        session.call(Request(dict(cell)), lambda frame, buffers: seen.append(frame))
    done, _ = session.call(Request(dict(cell)), lambda frame, buffers: seen.append(frame))
    assert done["ok"] is True and [f["text"] for f in seen] == ["hi\n"]
    runner.join(ANSWER_TIMEOUT)
    ours.close()
    theirs.close()


def test_a_worker_names_the_field_of_a_request_it_cannot_read() -> None:
    with bare_worker() as (ours, reader):
        call = {"op": "call", "id": "c1", "pool": {"key": "a:f"}}
        for header in (
            {"op": "exec", "id": "e1", "code": 3, "inputs": [], "outputs": []},
            {**call, "function": {"name": "f", "nbuf": "1"}},
            {"op": "exec", "id": "e2", "code": "", "inputs": [{"nbuf": 0}], "outputs": []},
        ):
            ours.sendall(encode_prefix(header, []))
        expected = {
            "e1": "'exec' frame .*: code: expected str, got int",
            "c1": "'call' frame .*: function.nbuf: expected int, got str",
            "e2": r"'exec' frame .*: inputs\[0\].name: missing",
        }
        for request_id, evalue in expected.items():
            done = _next(reader, "done")
            assert (done["id"], done["ok"], done["error"]["ename"]) == (
                request_id,
                False,
                "ValidationError",
            )
            assert re.search(evalue, done["error"]["evalue"]), done["error"]
        ours.sendall(encode_prefix({"op": "pull", "id": "p", "names": []}, []))
        assert _next(reader, "done")["ok"] is True  # still serving
