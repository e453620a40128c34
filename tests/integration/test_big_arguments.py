"""Big function arguments (W3): a worker keeps what it received, by digest.

On the runner's machine a leased worker gets them through shared memory; from another machine
(and on the ray and docker backends) the worker pulls them by digest (`nbremote.wire.pulled`).

What a user would notice: a function that gets stale or wrong content (after the array changed
in place, after an earlier call wrote into its own copy, when the worker no longer has it), or
the same 8 MiB shipped again on every call (bytes written into shared memory, counted by
`shipped`; bytes of big buffers written on a channel, counted by `sent`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

import nbremote as nr
from nbremote import _direct, _session
from nbremote._session import RemoteSession
from nbremote.wire import shm
from nbremote.wire.held import digest
from tests.conftest import RunningRunner, session_on

app = nr.App("big-arguments")
SIZE = 8 << 20  # bytes: above shm.THRESHOLD, so through shared memory


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
def shipped(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Bytes this kernel writes into shared memory, one entry per file."""
    sizes: list[int] = []
    write = shm._write

    def counted(directory: str, buffer: object) -> str:
        sizes.append(memoryview(buffer).nbytes)  # type: ignore[arg-type]
        return write(directory, buffer)

    monkeypatch.setattr(shm, "_write", counted)
    yield sizes


def test_the_same_array_twice_is_shipped_once_and_a_change_is_seen(
    remote_session: RemoteSession, shipped: list[int]
) -> None:
    a = np.random.default_rng(1).random(SIZE // 8)
    assert checksum.remote(a) == float(a.sum())
    assert shipped == [SIZE]
    assert checksum.remote(a) == float(a.sum())
    assert shipped == [SIZE]  # the worker had it: nothing written the second time
    a[12345] += 1000.0  # in place: the same object, new content
    assert checksum.remote(a) == float(a.sum())
    assert shipped == [SIZE, SIZE]


def test_the_same_worker_leased_again_still_has_it(
    remote_session: RemoteSession, shipped: list[int]
) -> None:
    a = np.random.default_rng(3).random(SIZE // 8)
    assert checksum.remote(a) == float(a.sum())
    time.sleep(1.2)  # past the lease's idle time: the next call leases the worker anew
    assert checksum.remote(a) == float(a.sum())
    assert shipped == [SIZE]


def test_a_function_writing_into_its_argument_leaves_the_kept_copy_alone(
    remote_session: RemoteSession, shipped: list[int]
) -> None:
    a = np.ones(SIZE // 8)
    assert [zero_then_sum.remote(a) for _ in range(3)] == [SIZE / 8] * 3
    assert shipped == [SIZE]  # the later calls used the kept file, each in a private copy
    assert float(a.sum()) == SIZE / 8


def test_a_digest_the_worker_never_got_is_refused_and_the_call_still_right(
    remote_session: RemoteSession, shipped: list[int]
) -> None:
    assert checksum.remote(np.zeros(4)) == 0.0  # a lease, so a worker to pretend about
    b = np.random.default_rng(2).random(SIZE // 8)
    for held in _direct._HELD_BY.values():  # this side believes, wrongly, that it has b
        held.add(digest(b))
    assert checksum.remote(b) == float(b.sum())  # refused by digest, then sent whole
    assert shipped == [SIZE]


# -- from another machine: no shared memory, the worker pulls by digest (wire.pulled) --------


@pytest.fixture
def far_session(
    runner: RunningRunner, monkeypatch: pytest.MonkeyPatch
) -> Iterator[_session.RemoteSession]:
    """A session of this process as if from another machine: no shared memory with the runner."""
    monkeypatch.setattr(shm, "host_id", lambda: "another-machine-boot-id")
    yield from session_on(runner)


def test_from_another_machine_the_same_array_twice_is_sent_once(
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


def test_from_another_machine_a_function_writing_into_its_argument_changes_its_own_copy(
    far_session: _session.RemoteSession, sent: list[int]
) -> None:
    a = np.ones(SIZE // 8)
    assert [zero_then_sum.remote(a) for _ in range(3)] == [SIZE / 8] * 3
    assert (a == 1).all()
    assert len(sent) in (1, 2)  # the second call may come before the first copy was kept
    assert zero_then_sum.remote(a) == SIZE / 8


def test_from_another_machine_only_the_argument_the_worker_lacks_is_sent(
    far_session: _session.RemoteSession, sent: list[int]
) -> None:
    a = np.full(SIZE // 8, 2.0)
    b, c = np.ones(SIZE // 8 // 2), np.zeros(SIZE // 8 // 4)
    assert both.remote(a, b) == float(a.sum() - b.sum())
    assert both.remote(a, c) == float(a.sum())  # the same worker: it keeps a
    assert sent == [SIZE, SIZE // 2, SIZE // 4]
