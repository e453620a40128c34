"""A map's answers from a hostile or mismatched runner (or worker) are refused with an error that
says what is wrong, rather than results shifted onto the wrong inputs; and a worker refuses a
chunk of inputs that is not what its request says (issue 23, W2: a chunk is one pickle)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import nbremote as nr
from nbremote import _session
from nbremote._client import Channel, RunnerClient
from nbremote._session import RemoteSession
from nbremote.errors import NbremoteError, SerializationError
from nbremote.wire.codec import FrameReader, send_frame
from nbremote.wire.serialize import dumps
from tests.security.test_frames import ANSWER_TIMEOUT, _next, bare_worker

app = nr.App("tests-hostile-map")


def same(x: int) -> int:
    return x


Answer = tuple[dict[str, Any], list[Any]]


def _answer_calls(sock: socket.socket, answer: Answer) -> None:
    """A fake runner: answer every call with ``answer`` (its id filled in) until closed."""
    reader = FrameReader(sock)
    try:
        while True:
            header, _ = reader.read()
            if header["op"] == "call":
                send_frame(sock, {**answer[0], "op": "done", "id": header["id"]}, answer[1])
    except OSError:  # the test is over
        return


@pytest.fixture
def answering() -> Iterator[Any]:
    """Point this process's session at a fake runner that gives each call a set answer."""
    pairs: list[tuple[socket.socket, socket.socket]] = []

    def use(answer: Answer) -> nr.Function[int]:
        """A fresh handle on ``same`` (its first map starts at one input a chunk)."""
        ours, theirs = socket.socketpair()
        ours.settimeout(ANSWER_TIMEOUT)
        pairs.append((ours, theirs))
        threading.Thread(target=_answer_calls, args=(theirs, answer), daemon=True).start()
        session = RemoteSession(RunnerClient("http://127.0.0.1:9", None))
        session._channel = Channel(ours)  # as if opened: the answers are what this is about
        function = app.function(same)
        session.sent_functions.add(function._target().payload_hash)
        _session._current = session
        return function

    yield use
    _session._current = None
    for ours, theirs in pairs:
        ours.close()
        theirs.close()


def test_a_result_chunk_with_the_wrong_count_is_refused(answering: Any) -> None:
    mapped = answering(({"ok": True, "errors": {}}, dumps("results", [1, 2]).parts))
    with pytest.raises(NbremoteError, match=r"#0\S* holds 2 results, not a list of \d+ results"):
        list(mapped.map(range(3)))


def test_a_result_chunk_that_is_not_a_list_is_refused(answering: Any) -> None:
    mapped = answering(({"ok": True, "errors": {}}, dumps("results", {"a": 1}).parts))
    with pytest.raises(NbremoteError, match=r"holds dict, not a list of \d+ results"):
        list(mapped.map(range(3)))


def test_garbage_for_results_is_refused(answering: Any) -> None:
    mapped = answering(({"ok": True, "errors": {}}, [b"\x80\x05garbage"]))
    with pytest.raises(SerializationError, match="the results"):
        list(mapped.map(range(3), return_exceptions=True))


def test_errors_of_inputs_the_chunk_does_not_have_are_refused(answering: Any) -> None:
    error = {"ename": "ValueError", "evalue": "x", "traceback": []}
    mapped = answering(({"ok": True, "errors": {"5": error}}, dumps("results", [None]).parts))
    with pytest.raises(NbremoteError, match=r"names errors of inputs it does not have"):
        list(mapped.map(range(3), return_exceptions=True))


def test_a_worker_refuses_a_chunk_that_is_not_what_its_request_says() -> None:
    function = dumps("function", abs)  # by reference: the bare worker has it
    call = {"op": "call", "pool": {"key": "a:f"}, "first": 0, "form": "values"}
    call["function"] = {"name": "abs", "nbuf": len(function.parts), "hash": function.hash}
    with bare_worker() as (ours, reader):
        for request_id, count, chunk in (("c1", 3, [1, 2]), ("c2", 2, "ab"), ("c3", 2, [4, 5])):
            parts = [*function.parts, *dumps("inputs", chunk).parts]
            send_frame(ours, {**call, "id": request_id, "count": count}, parts)
        for request_id, evalue in (("c1", "says 3, not 2 inputs"), ("c2", "says 2, not str")):
            done = _next(reader, "done")
            assert (done["id"], done["ok"]) == (request_id, False)
            assert evalue in done["error"]["evalue"], done["error"]
        done = _next(reader, "done")
        assert (done["id"], done["ok"], done["errors"]) == ("c3", True, {})  # still serving
