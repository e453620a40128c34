"""The blocking reader's fast paths take what the slow ones took, and refuse what they refused.

A header goes through JSON's C scanner, made once, instead of `json.loads`; a small frame's
buffers are cut from the bytes of one receive. Neither may change what the other side can make
this side accept: the sender may be a worker running anyone's code.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest

from nbremote.wire.codec import FrameReader, decode_header, encode_prefix

HEADERS = [
    b'{"op":"done","id":"a","ok":true,"elapsed":4.9e-05,"errors":{}}',
    b'{"text":"\\u00e9\\u2028 \xc3\xa9","n":[1,2.5,null,false],"nested":{"a":{"b":[]}}}',
    b'  {"op":"call"}  ',  # whitespace around it
    b'\xef\xbb\xbf{"op":"call"}',  # a byte-order mark
    b'{"x":NaN,"y":-Infinity}',
]
REFUSED = [
    b'{"op":"done"}{"op":"call"}',  # a second object after the first
    b'{"op":"done"} x',
    b'{"op":"done"',
    b"[1,2]",
    b'"done"',
    b"\xff\xfe{}",
    b"",
]


def _reference(raw: bytes) -> Any:
    """What json.loads, and so the reader before its fast path, made of ``raw``."""
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


@pytest.mark.parametrize("raw", HEADERS)
def test_a_header_is_read_as_json_reads_it(raw: bytes) -> None:
    assert json.dumps(decode_header(raw)) == json.dumps(_reference(raw))  # NaN != NaN


@pytest.mark.parametrize("raw", REFUSED)
def test_a_header_json_refuses_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        _reference(raw)
    with pytest.raises(ValueError):
        decode_header(raw)


FRAMES: list[tuple[dict[str, Any], list[bytes]]] = [
    ({"op": "done", "id": "a", "ok": True}, [b"\x80\x05result"]),
    ({"op": "call", "id": "b"}, []),
    ({"op": "exec", "id": "c"}, [b"one", b"", b"three" * 1000]),
    ({"op": "big", "id": "d"}, [b"s", bytes(range(256)) * 2000]),  # over one receive
]


@pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 20])
def test_frames_read_back_whole_however_they_arrive(piece: int) -> None:
    data = b"".join(encode_prefix(h, bufs) + b"".join(bufs) for h, bufs in FRAMES)
    ours, theirs = socket.socketpair()

    def dribble() -> None:
        for start in range(0, len(data), piece):
            ours.sendall(data[start : start + piece])
        ours.close()

    sender = threading.Thread(target=dribble)
    sender.start()
    reader = FrameReader(theirs)
    got = [reader.read() for _ in FRAMES]
    sender.join()
    with pytest.raises(ConnectionError):
        reader.read()
    theirs.close()
    assert [(h, [bytes(b) for b in bufs]) for h, bufs in got] == FRAMES
    # Each buffer is a bytearray of its own: an array rebuilt on it is writable.
    assert all(type(b) is bytearray for _, bufs in got for b in bufs)
