"""Big function arguments where no shared memory links kernel and worker (a kernel on another
machine; the ray and docker backends): the worker pulls them by digest and keeps them.

What a user would notice: the same 8 MiB sent again on every call (counted here by `sent`, the
bytes of big buffers this kernel writes on its channels), or a function that gets stale or wrong
content (after the array changed in place, after an earlier call wrote into its own copy).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import nbremote as nr
from nbremote import _session
from nbremote.wire import shm
from tests.conftest import RunningRunner

app = nr.App("pulled-arguments")
SIZE = 8 << 20


@app.function
def checksum(x: np.ndarray) -> float:
    return float(x.sum())


@app.function
def zero_then_sum(x: np.ndarray) -> float:
    total = float(x.sum())
    x[:] = 0  # in its own copy: the kernel's array, and the next call's, keep their content
    return total


@app.function
def both(x: np.ndarray, y: np.ndarray) -> float:
    return float(x.sum() - y.sum())


@pytest.fixture
def far_session(
    runner: RunningRunner, monkeypatch: pytest.MonkeyPatch
) -> Iterator[_session.RemoteSession]:
    """A session of this process as if from another machine: no shared memory with the runner."""
    monkeypatch.setattr(shm, "host_id", lambda: "another-machine-boot-id")
    session = _session.connect(runner.url, runner.token)
    yield session
    session.reset()
    session.close()
    _session._current = None


def test_the_same_array_twice_is_sent_once_and_a_change_is_seen(
    far_session: _session.RemoteSession, sent: list[int]
) -> None:
    a = np.random.default_rng(1).random(SIZE // 8)
    assert far_session._channel is None or far_session._channel.shm_dir is None
    assert checksum.remote(a) == float(a.sum())
    assert sent == [SIZE]
    assert checksum.remote(a) == float(a.sum())
    assert sent == [SIZE]  # the worker kept it: only its digest went
    a[12345] += 1000.0  # in place: the same object, new content
    assert checksum.remote(a) == float(a.sum())
    assert sent == [SIZE, SIZE]


def test_a_function_writing_into_its_argument_leaves_the_kept_copy_alone(
    far_session: _session.RemoteSession, sent: list[int]
) -> None:
    a = np.ones(SIZE // 8)
    assert [zero_then_sum.remote(a) for _ in range(3)] == [SIZE / 8] * 3
    assert (a == 1).all()
    assert len(sent) in (1, 2)  # the second call may come before the first copy was kept
    assert zero_then_sum.remote(a) == SIZE / 8


def test_only_the_argument_the_worker_lacks_is_sent(
    far_session: _session.RemoteSession, sent: list[int]
) -> None:
    a = np.full(SIZE // 8, 2.0)
    b, c = np.ones(SIZE // 8 // 2), np.zeros(SIZE // 8 // 4)
    assert both.remote(a, b) == float(a.sum() - b.sum())
    assert both.remote(a, c) == float(a.sum())  # the same worker: it keeps a
    assert sent == [SIZE, SIZE // 2, SIZE // 4]
