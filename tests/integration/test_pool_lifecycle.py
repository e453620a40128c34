"""Workers' lives around their callers: a second interrupt, the end of an app's run, small
maps on a warm pool."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import nbremote as nr
from nbremote._session import RemoteSession
from nbremote.errors import RemoteError

app = nr.App("lifecycle")


@app.function(env={"SPEC": "not the spare's"})  # its workers boot: the runner's spare won't do
def which_worker(x: str) -> str:
    return os.environ["NBREMOTE_TASK_ID"]


STUBBORN = (  # a cell that swallows every interrupt
    "import time\n"
    "while True:\n"
    "    try:\n"
    "        time.sleep(0.2)\n"
    "    except KeyboardInterrupt:\n"
    "        pass"
)


def remote(shell: InteractiveShell, cell: str, line: str = "") -> Any:
    return shell.run_cell_magic("remote", line, cell)


def test_a_second_interrupt_kills_a_worker_that_ignores_the_first(shell: InteractiveShell) -> None:
    remote(shell, "import os\nbefore = os.environ['NBREMOTE_TASK_ID']\nkept = 1")
    before = shell.user_ns["before"]
    for delay in (1.0, 2.5):
        threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(RemoteError) as caught:
        remote(shell, STUBBORN)
    assert caught.value.ename == "KeyboardInterrupt"
    assert "did not stop on interrupt; it was killed" in str(caught.value)
    with capture_output() as status:
        shell.run_line_magic("remote", "status")
    assert "idle" not in status.stdout  # it is gone, not shown idle
    remote(shell, "import os\nafter = os.environ['NBREMOTE_TASK_ID']")
    assert shell.user_ns["after"] != before
    shell.user_ns.pop("kept")
    with pytest.raises(RemoteError, match="kept"):  # a new worker: an empty namespace
        remote(shell, "y = kept")


def test_a_small_map_on_a_warm_function_runs_on_the_warm_worker(
    remote_session: RemoteSession,
) -> None:
    """Both quick inputs run on the warm worker: neither waits for a second one to boot."""
    t0 = time.perf_counter()
    # Warmed through the runner: a direct .remote() would lease the worker, and the lease may
    # still be ending when the map's inputs arrive.
    [warm] = which_worker.map(["warm-up"])
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    ran_on = list(which_worker.map(["a", "b"]))
    mapped = time.perf_counter() - t0
    print(f"first call (a worker start) {cold:.2f} s, map of two on the warm one {mapped:.2f} s")
    assert ran_on == [warm, warm]


def test_the_end_of_an_app_run_stops_its_containers_and_their_exit_hooks_use_a_dict(
    remote_session: RemoteSession,
) -> None:
    run_app = nr.App("run-ends")

    @run_app.cls()
    class Recorder:
        @nr.method()
        def ping(self) -> str:
            return "pong"

        @nr.exit()
        def record(self) -> None:
            nr.Dict.from_name("run-ends")["exit"] = time.time()

    exits = nr.Dict.from_name("run-ends", create_if_missing=True)
    with run_app.run():
        assert Recorder().ping.remote() == "pong"
        ended = time.time()
    returned = time.time()
    try:
        assert exits.get("exit") is not None, "the @exit hook had not run when run() returned"
        hook, back = exits["exit"] - ended, returned - ended
        print(f"run end -> exit hook done {hook:.3f} s, run() returned {back:.3f} s")
    finally:
        exits.delete()


@app.function
def work(stall: bool) -> None:
    while stall:
        with contextlib.suppress(KeyboardInterrupt):  # swallows every interrupt
            time.sleep(0.2)


def test_a_second_interrupt_of_a_call_kills_its_worker(remote_session: RemoteSession) -> None:
    work.remote(False)  # warm: the stalling call starts at once on this worker
    for delay in (1.0, 2.5):
        threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises((RemoteError, KeyboardInterrupt)):
        work.remote(True)
    deadline = time.monotonic() + 10  # the runner's kill is under way: a bound, not a timing
    while time.monotonic() < deadline and remote_session.describe().workers:
        time.sleep(0.1)
    assert remote_session.describe().workers == [], "its worker still runs it"
