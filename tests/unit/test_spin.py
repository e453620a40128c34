"""Polling a socket before blocking on it (`nbremote.wire.spin`): it sees a frame that comes
while it polls, and it stops trying where its spins keep running out (busy cores), so that it
never takes the core the other side needs for long."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from nbremote.wire import spin


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()
    spin._calm_until, spin._misses = 0.0, 0


def test_a_frame_that_comes_while_it_polls_is_seen(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    threading.Timer(0.002, theirs.send, (b"x",)).start()
    assert spin.spin_until_readable([ours], seconds=5.0)


def test_spins_that_keep_running_out_stop_being_tried(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    for _ in range(spin.MISSES):
        assert not spin.spin_until_readable([ours], seconds=0.001)
    theirs.send(b"x")  # ready now, but no spin is tried for a while: the caller blocks instead
    started = time.perf_counter()
    assert not spin.spin_until_readable([ours], seconds=5.0)
    assert time.perf_counter() - started < 0.5
    spin._calm_until = 0.0  # the back-off is over
    assert spin.spin_until_readable([ours])
