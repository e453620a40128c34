"""A worker's ``web_start`` is read by hand on the hot path: it must refuse what the model
refuses (a worker runs anyone's code, and its answer goes to an HTTP caller)."""

from __future__ import annotations

from typing import Any

import pytest

from nbremote.wire.frames import WebStartFrame

GOOD: dict[str, Any] = {
    "op": "web_start",
    "id": "web-1",
    "status": 200,
    "headers": [["content-type", "application/json"]],
    "more": False,
}


def test_a_good_start_is_read() -> None:
    assert WebStartFrame.read(GOOD, 1) == (200, [("content-type", "application/json")], False)
    assert WebStartFrame.read({**GOOD, "more": None}, 0)[2] is None


@pytest.mark.parametrize(
    ("change", "count"),
    [
        ({"status": 99}, 1),
        ({"status": 600}, 1),
        ({"status": "200"}, 1),
        ({"status": True}, 1),
        ({"more": "yes"}, 1),
        ({"id": 7}, 1),
        ({"headers": "content-type: x"}, 1),
        ({"headers": [["a", "b", "c"]]}, 1),
        ({"headers": [["a", 1]]}, 1),
        ({"headers": [("a", "b")]}, 1),
        ({"headers": [["x-a", "b\r\nset-cookie: c"]]}, 1),
        ({"headers": [["bad name", "b"]]}, 1),
        ({"headers": [["a", "b"]] * 257}, 1),
        ({}, 0),
        ({"more": None}, 1),
    ],
)
def test_a_bad_start_is_refused(change: dict[str, Any], count: int) -> None:
    with pytest.raises(ValueError):
        WebStartFrame.read({**GOOD, **change}, count)
