"""Direct calls: `.remote()` on a worker leased to this kernel, with no runner hop per call.

What a user would notice if the lease went wrong: a call lost or run twice, output or errors
missing, a Ctrl-C that does not stop the function, a worker kept from a map, a stranger using
the worker. Each is exercised against a real runner and real workers.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

import nbremote as nr
from nbremote._client import Channel
from nbremote._session import RemoteSession
from nbremote.errors import RemoteError

app = nr.App("direct")


@app.function
def whoami(x: int) -> tuple[int, int]:
    return os.getpid(), x + 1


def test_consecutive_calls_share_one_lease_and_it_is_taken_again_after_idling(
    remote_session: RemoteSession,
) -> None:
    pid, _ = whoami.remote(0)
    (lease,) = remote_session.leases.by_pool.values()
    assert [whoami.remote(i) for i in range(50)] == [(pid, i + 1) for i in range(50)]
    assert list(remote_session.leases.by_pool.values()) == [lease]  # no runner round trip per call
    time.sleep(1.2)  # past the lease's idle time: the worker went back to its pool
    assert whoami.remote(7) == (pid, 8)  # the same warm worker, leased again
    assert remote_session.leases.by_pool[next(iter(remote_session.leases.by_pool))] is not lease


def test_output_and_dicts_work_from_a_direct_call(
    remote_session: RemoteSession, capsys: pytest.CaptureFixture[str]
) -> None:
    counts = nr.Dict.from_name("direct-counts", create_if_missing=True)

    @app.function
    def count(word: str) -> int:
        print(f"counting {word}")
        counts[word] = counts.get(word, 0) + 1
        return int(counts[word])

    assert [count.remote("a") for _ in range(3)] == [1, 2, 3]
    assert capsys.readouterr().out.count("counting a") == 3
    assert counts["a"] == 3


def test_a_worker_dying_mid_call_fails_it_once_without_retries(
    remote_session: RemoteSession, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"

    @app.function
    def crash() -> None:
        with open(runs, "a") as log:
            log.write("x")
        os._exit(3)

    whoami.remote(0)  # a lease on some worker of another pool is no matter
    with pytest.raises(nr.WorkerDied, match="died"):
        crash.remote()
    assert runs.read_text() == "x"  # not run a second time behind the user's back

    @app.function(retries=1)
    def crash_then_ok() -> str:
        with open(runs, "a") as log:
            log.write("y")
        if runs.read_text().count("y") == 1:
            os._exit(3)
        return "ok"

    assert crash_then_ok.remote() == "ok"  # the retry goes through the runner
    assert runs.read_text() == "xyy"


def test_ctrl_c_interrupts_a_direct_call_and_the_worker_survives(
    remote_session: RemoteSession,
) -> None:
    @app.function
    def slow(seconds: float) -> int:
        time.sleep(seconds)
        return os.getpid()

    first = slow.remote(0)
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    started = time.monotonic()
    with pytest.raises((RemoteError, KeyboardInterrupt)):
        slow.remote(30)
    assert time.monotonic() - started < 10
    assert slow.remote(0) == first  # the same warm worker, still serving


def test_a_map_right_after_calls_gets_the_only_worker(remote_session: RemoteSession) -> None:
    single = whoami.with_options(max_containers=1)
    pid, _ = single.remote(0)
    started = time.monotonic()
    assert list(single.map(range(5))) == [(pid, i + 1) for i in range(5)]
    assert time.monotonic() - started < 0.9  # the lease was given back, not waited out


def test_a_wrong_token_gets_nothing(remote_session: RemoteSession) -> None:
    channel = remote_session._open()
    lease_id = "stranger-lease"
    pool = whoami._target().pool
    channel.send({"op": "lease", "id": lease_id, "pool": pool})
    while True:
        leased, _ = channel.recv()
        if leased.get("id") == lease_id and leased["op"] == "leased":
            break
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(f"\0{leased['address']}")
    stranger = Channel(sock)
    stranger.send({"op": "hello", "token": "0" * 32})
    with pytest.raises(OSError):  # closed without an answer (a broken pipe if closed already)
        stranger.send({"op": "call", "id": "x", "pool": pool, "function": {}, "count": 1})
        stranger.recv()
    stranger.close()
    assert whoami.remote(4)[1] == 5
