"""Buffers a leased worker keeps by digest (`nbremote.wire.held`), against a hostile sender.

A sender names buffers by digest; the receiver must never map what it did not receive and check
itself, never keep more than its bound, and never let one call's writes reach the next.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

from nbremote.wire.codec import send_frame
from nbremote.wire.held import HeldBuffers, digest
from nbremote.wire.shm import THRESHOLD, ShmRefused, externalize, internalize


@pytest.fixture
def shm(tmp_path: Path) -> Path:
    folder = tmp_path / "shm"
    folder.mkdir(mode=0o700)
    return folder


def _received(shm: Path, held: HeldBuffers, data: bytes, claimed: str | None = None) -> list[Any]:
    """``data`` sent into ``shm`` with its digest (or ``claimed``) and received with ``held``."""
    header, buffers = externalize({"op": "call"}, [b"stream", data], str(shm), set())
    if claimed is not None:
        header["shm"][0][2] = claimed
    internalize(header, buffers, str(shm), held)
    return buffers


def _by_digest(shm: Path, held: HeldBuffers | None, claimed: Any) -> list[Any]:
    buffers: list[Any] = [b"stream", b""]
    internalize({"op": "call", "by_digest": [[1, claimed]]}, buffers, str(shm), held)
    return buffers


def test_a_kept_buffer_comes_back_by_digest_and_each_use_is_private(shm: Path) -> None:
    held = HeldBuffers()
    data = os.urandom(THRESHOLD)
    first = _received(shm, held, data)
    assert bytes(first[1]) == data
    assert list(shm.iterdir()) == []  # unlinked at once, kept only by its descriptor
    again = _by_digest(shm, held, digest(data))[1]
    again[:4] = b"\0\0\0\0"  # a function writing into its argument
    assert bytes(_by_digest(shm, held, digest(data))[1]) == data


def test_a_digest_never_received_is_refused(shm: Path) -> None:
    with pytest.raises(ShmRefused, match="keeps no buffer"):
        _by_digest(shm, HeldBuffers(), digest(b"x" * THRESHOLD))


def test_a_receiver_without_a_cache_refuses_any_digest(shm: Path) -> None:
    """Through the runner (a worker's own reader, the kernel's) nothing is kept by digest."""
    held = HeldBuffers()
    data = os.urandom(THRESHOLD)
    _received(shm, held, data)
    with pytest.raises(ShmRefused, match="keeps none"):
        _by_digest(shm, None, digest(data))


def test_a_file_whose_content_is_not_its_digest_is_used_once_but_not_kept(shm: Path) -> None:
    held = HeldBuffers()
    data, other = os.urandom(THRESHOLD), os.urandom(THRESHOLD)
    assert bytes(_received(shm, held, data, claimed=digest(other))[1]) == data
    with pytest.raises(ShmRefused):  # a later call naming ``other`` must not get ``data``
        _by_digest(shm, held, digest(other))


@pytest.mark.parametrize(
    "entries",
    [[[5, "0" * 32]], [[-1, "0" * 32]], [[1, "0" * 32], [1, "0" * 32]], [["1", "0" * 32]], "1"],
)
def test_a_digest_entry_for_no_buffer_of_the_frame_is_refused(shm: Path, entries: Any) -> None:
    with pytest.raises(ShmRefused):
        internalize({"op": "call", "by_digest": entries}, [b"s", b""], str(shm), HeldBuffers())


def test_a_digest_entry_for_a_buffer_that_came_with_bytes_is_refused(shm: Path) -> None:
    held = HeldBuffers()
    data = os.urandom(THRESHOLD)
    _received(shm, held, data)
    buffers: list[Any] = [b"s", b"came with bytes"]
    with pytest.raises(ShmRefused, match="arrived with bytes"):
        internalize({"op": "call", "by_digest": [[1, digest(data)]]}, buffers, str(shm), held)


def test_a_file_outside_the_folder_named_with_a_digest_is_refused(
    shm: Path, tmp_path: Path
) -> None:
    target = tmp_path / ("a" * 32)
    target.write_bytes(b"precious")
    header = {"op": "call", "shm": [[1, str(target), digest(b"precious")]]}
    with pytest.raises(ShmRefused):
        internalize(header, [b"s", b""], str(shm), HeldBuffers())
    assert target.read_bytes() == b"precious"


def test_the_cache_keeps_at_most_its_capacity_the_oldest_going_first(shm: Path) -> None:
    held = HeldBuffers(capacity=2 * THRESHOLD)
    blobs = [os.urandom(THRESHOLD) for _ in range(3)]
    for blob in blobs:
        _received(shm, held, blob)
    with pytest.raises(ShmRefused):
        _by_digest(shm, held, digest(blobs[0]))
    assert [bytes(_by_digest(shm, held, digest(b))[1]) for b in blobs[1:]] == blobs[1:]


def test_a_frame_that_cannot_be_sent_leaves_no_file(shm: Path) -> None:
    """Its files would be memory nobody maps (256 MiB, on a busy machine, each retry)."""
    ours, theirs = socket.socketpair()
    theirs.close()
    with pytest.raises(OSError):
        send_frame(ours, {"op": "call"}, [b"stream", os.urandom(THRESHOLD)], str(shm), set())
    ours.close()
    assert list(shm.iterdir()) == []
