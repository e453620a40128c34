"""A worker's answer to a web request, under attack: a worker runs anyone's code, and what it
sends as a response's start must never smuggle a header line into the HTTP caller's response,
nor pass with buffers that do not match what it says. Each case is fed to the runner's relay
(`WebCall`), and the caller must get a 502 and nothing of the worker's answer."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from nbremote_runner.endpoint_serve import WebCall


class Caller:
    """What the HTTP caller gets."""

    def __init__(self) -> None:
        self.started: list[tuple[int, list[tuple[str, str]]]] = []
        self.chunks: list[bytes] = []
        self.errors: list[int] = []

    def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.started.append((status, headers))

    def chunk(self, data: bytes, more: bool) -> None:
        self.chunks.append(data)

    def error(self, status: int, kind: str, message: str, retry_after: str | None = None) -> None:
        self.errors.append(status)


def relay(header: dict[str, Any], buffers: list[bytes]) -> Caller:
    caller = Caller()
    endpoint = SimpleNamespace(name="a/b")
    call = WebCall(endpoint, SimpleNamespace(), caller)  # type: ignore[arg-type]
    call._forward({"op": "web_start", "id": call.id, **header}, buffers)
    call._end({"op": "done", "id": call.id, "ok": True})
    return caller


def test_a_well_formed_one_frame_answer_reaches_the_caller() -> None:
    caller = relay({"status": 200, "headers": [["x-ok", "yes"]], "more": False}, [b"hi"])
    assert caller.started == [(200, [("x-ok", "yes")])] and caller.chunks == [b"hi"]


@pytest.mark.parametrize(
    ("header", "buffers"),
    [
        ({"status": 200, "headers": [["x-ok", "a\n"]], "more": False}, [b"hi"]),  # a final LF
        ({"status": 200, "headers": [["x-ok", "a\r\nSet-Cookie: s=1"]]}, []),
        ({"status": 200, "headers": [["x ok", "a"]]}, []),
        ({"status": 200, "headers": [["x-ok"]]}, []),
        ({"status": 200, "headers": [], "more": False}, []),  # says a chunk, has none
        ({"status": 200, "headers": []}, [b"hi"]),  # a buffer it does not say
        ({"status": 200, "headers": [], "more": True}, [b"a", b"b"]),
        ({"status": 99, "headers": []}, []),
        ({"status": "200", "headers": []}, []),
    ],
)
def test_a_malformed_start_is_a_502_with_nothing_of_it(
    header: dict[str, Any], buffers: list[bytes]
) -> None:
    caller = relay(header, buffers)
    assert caller.started == [] and caller.chunks == [] and caller.errors == [502]


def relay_done(answer: Any, buffers: list[bytes]) -> Caller:
    """The one-frame form: the ``done`` carries the start as its ``answer``, the body as its
    buffer."""
    caller = Caller()
    call = WebCall(SimpleNamespace(name="a/b"), SimpleNamespace(), caller)  # type: ignore[arg-type]
    done = {"op": "done", "id": call.id, "ok": True, "answer": answer}
    call._forward(done, buffers)
    call._end(done)
    return caller


def test_a_one_frame_answer_in_the_done_reaches_the_caller() -> None:
    caller = relay_done({"status": 201, "headers": [["x-ok", "yes"]]}, [b"hi"])
    assert caller.started == [(201, [("x-ok", "yes")])] and caller.chunks == [b"hi"]


@pytest.mark.parametrize(
    ("answer", "buffers"),
    [
        ({"status": 200, "headers": [["x-ok", "a\r\nSet-Cookie: s=1"]]}, [b"hi"]),
        ({"status": 200, "headers": []}, []),  # no body buffer
        ({"status": 200, "headers": []}, [b"a", b"b"]),
        ({"status": 99, "headers": []}, [b"hi"]),
        ({"status": 200, "headers": "x-ok: yes"}, [b"hi"]),
    ],
)
def test_a_malformed_answer_in_the_done_is_a_502_with_nothing_of_it(
    answer: dict[str, Any], buffers: list[bytes]
) -> None:
    caller = relay_done(answer, buffers)
    assert caller.started == [] and caller.chunks == [] and caller.errors == [502]


def test_a_done_whose_answer_is_not_a_mapping_is_no_answer() -> None:
    caller = relay_done(["status", 200], [b"hi"])
    assert caller.started == [] and caller.errors == [500]
