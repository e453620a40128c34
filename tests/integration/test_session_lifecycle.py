"""A session's life through real kernels (jupyter_client): a kernel that exits or restarts frees
its workers at once; one killed leaves its session detached for the grace, to be attached by a
new kernel or ended with ``nbremote sessions rm``; a restarted notebook waiting for its old GPU
is told which session holds it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from nbremote import _session
from nbremote._cell import CellOptions, run_cell
from nbremote._client import RunnerClient
from nbremote.errors import RunnerError
from nbremote.gpu import parse
from nbremote.wire.codec import Header

from ..conftest import TOKEN, RunningRunner, runner_environment, start_runner
from ..kernels import Kernel

NOTEBOOK = "analysis/model.ipynb"
RELEASE_WAIT = 15.0  # the most a test waits for the runner to free what a kernel held


@pytest.fixture(scope="module")
def lifecycle_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRunner]:
    """A runner with the default grace: a session kept after its kernel is kept minutes."""
    running = start_runner(tmp_path_factory.mktemp("lifecycle"))
    yield running
    running.stop()


def session_id_of(kernel: Kernel) -> str:
    """The id of the kernel's nbremote session."""
    return kernel.ok("from nbremote import _session\nprint(_session.current_session().id)").strip()


@pytest.fixture
def kernels(tmp_path: Path) -> Iterator[Callable[[RunningRunner], Kernel]]:
    """Start kernels on a runner; each is shut down (if still alive) after the test."""
    started: list[Kernel] = []

    def start(runner: RunningRunner) -> Kernel:
        started.append(Kernel(runner, tmp_path, NOTEBOOK))
        return started[-1]

    yield start
    for kernel in started:
        kernel.close()


def sessions(runner: RunningRunner) -> dict[str, dict[str, Any]]:
    with runner.client() as client:
        listed = client.request("GET", "/api/v1/sessions")["sessions"]
    return {session["id"]: session for session in listed}


def worker_pids(runner: RunningRunner, session_id: str) -> list[int]:
    return [worker["pid"] for worker in sessions(runner)[session_id]["workers"]]


def released(
    runner: RunningRunner, session_id: str, pids: list[int], since: float | None = None
) -> float:
    """Wait until the runner no longer lists the session and its workers' processes are gone;
    how long since ``since`` (a `time.monotonic`) that took (the test fails after
    `RELEASE_WAIT`)."""
    started = time.monotonic() if since is None else since
    while time.monotonic() - started < RELEASE_WAIT:
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if session_id not in sessions(runner) and not alive:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(
        f"{RELEASE_WAIT:g} s after its kernel went, session {session_id} is still "
        f"{sessions(runner).get(session_id, 'gone')} (worker pids alive: {alive})"
    )


def start_with_a_worker(kernel: Kernel, runner: RunningRunner) -> tuple[str, list[int]]:
    """Run a %%remote cell in the kernel: its session id and its worker's pid."""
    kernel.ok("%%remote\nimport os\nsecret = 41\nworker_pid = os.getpid()")
    session_id = session_id_of(kernel)
    pids = worker_pids(runner, session_id)
    assert len(pids) == 1
    return session_id, pids


def test_a_kernel_that_shuts_down_frees_its_workers_at_once(
    lifecycle_runner: RunningRunner, kernels: Callable[[RunningRunner], Kernel]
) -> None:
    kernel = kernels(lifecycle_runner)
    session_id, pids = start_with_a_worker(kernel, lifecycle_runner)
    since = time.monotonic()
    kernel.manager.shutdown_kernel()  # as Jupyter (and nbclient) shut a kernel down
    took = released(lifecycle_runner, session_id, pids, since)
    print(f"kernel shutdown -> workers gone: {took:.2f} s")


def test_a_restarted_kernel_frees_the_old_sessions_workers(
    lifecycle_runner: RunningRunner, kernels: Callable[[RunningRunner], Kernel]
) -> None:
    kernel = kernels(lifecycle_runner)
    session_id, pids = start_with_a_worker(kernel, lifecycle_runner)
    since = time.monotonic()
    kernel.manager.restart_kernel()
    took = released(lifecycle_runner, session_id, pids, since)
    print(f"kernel restart -> workers gone: {took:.2f} s")
    kernel.client.wait_for_ready(timeout=60)
    kernel.ok("%load_ext nbremote")
    assert session_id_of(kernel) != session_id


def test_a_killed_kernels_session_is_detached_then_attached_by_a_new_kernel(
    lifecycle_runner: RunningRunner, kernels: Callable[[RunningRunner], Kernel]
) -> None:
    crashed = kernels(lifecycle_runner)
    session_id, pids = start_with_a_worker(crashed, lifecycle_runner)
    os.kill(crashed.pid, signal.SIGKILL)
    deadline = time.monotonic() + RELEASE_WAIT
    while sessions(lifecycle_runner)[session_id]["attached"] and time.monotonic() < deadline:
        time.sleep(0.1)
    described = sessions(lifecycle_runner)[session_id]
    assert not described["attached"] and described["ends_at"] - time.time() > 60
    assert worker_pids(lifecycle_runner, session_id) == pids  # the namespace is still there

    kernel = kernels(lifecycle_runner)
    listing = kernel.ok("%remote sessions")
    [line] = [line for line in listing.splitlines() if line.startswith(session_id[:8])]
    assert NOTEBOOK in line and "detached" in line and "secret" in line and "worker_pid" in line
    said = kernel.ok(f"%remote attach {session_id[:8]}")
    assert f"now uses session {session_id[:8]}" in said
    # The remote namespace of the killed kernel goes on: its names, in its worker.
    kernel.ok("%%remote\nimport os\nseen = secret + 1\nsame = os.getpid() == worker_pid")
    assert kernel.ok("print(seen, same)").split() == ["42", "True"]
    assert session_id_of(kernel) == session_id
    assert sessions(lifecycle_runner)[session_id]["attached"]

    kernel.manager.shutdown_kernel()  # the attached session is now this kernel's: it ends too
    released(lifecycle_runner, session_id, pids)


def test_attach_refuses_a_session_whose_kernel_is_alive(
    lifecycle_runner: RunningRunner, kernels: Callable[[RunningRunner], Kernel]
) -> None:
    alive = kernels(lifecycle_runner)
    session_id, _ = start_with_a_worker(alive, lifecycle_runner)
    other = _session.RemoteSession(RunnerClient(lifecycle_runner.url, lifecycle_runner.token))
    with pytest.raises(RunnerError, match="in use by a live kernel"):
        other.attach(session_id)
    other.close()
    alive.ok("%%remote\nsecret += 1")  # the live kernel keeps its session
    assert "42" in alive.ok("%%remote\nprint(secret)")


def test_a_killed_kernels_workers_go_after_the_grace_flag(
    tmp_path: Path, kernels: Callable[[RunningRunner], Kernel]
) -> None:
    runner = start_runner(tmp_path / "grace", TOKEN, "--session-grace", "1s")
    try:
        kernel = kernels(runner)
        session_id, pids = start_with_a_worker(kernel, runner)
        since = time.monotonic()
        os.kill(kernel.pid, signal.SIGKILL)
        took = released(runner, session_id, pids, since)
        print(f"kill -9 with --session-grace 1s -> workers gone: {took:.2f} s")
    finally:
        runner.stop()


def nbremote_cli(runner: RunningRunner, *args: str) -> str:
    env = runner_environment(runner.token) | {"NBREMOTE_URL": runner.url}
    result = subprocess.run(
        [sys.executable, "-P", "-m", "nbremote", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_sessions_ls_and_rm_from_the_command_line(
    lifecycle_runner: RunningRunner, kernels: Callable[[RunningRunner], Kernel]
) -> None:
    kernel = kernels(lifecycle_runner)
    session_id, pids = start_with_a_worker(kernel, lifecycle_runner)
    listed = json.loads(nbremote_cli(lifecycle_runner, "sessions", "ls", "--json"))["sessions"]
    [mine] = [session for session in listed if session["id"] == session_id]
    assert mine["notebook"] == NOTEBOOK and mine["attached"] and len(mine["workers"]) == 1
    table = nbremote_cli(lifecycle_runner, "sessions", "ls")
    assert any(line.startswith(session_id[:8]) for line in table.splitlines())

    said = nbremote_cli(lifecycle_runner, "sessions", "rm", session_id[:8])
    assert said.strip() == f"ended session {session_id} (1 worker stopped)"
    released(lifecycle_runner, session_id, pids)
    # The kernel goes on in a new, empty session, and is told so.
    said = kernel.ok("%%remote\nfresh = 'secret' not in globals()")
    assert f"session {session_id[:8]} was ended on the runner" in said
    assert kernel.ok("print(fresh)").strip() == "True"


# -- a restarted notebook waiting for the GPU its previous session holds -------------------------


@pytest.fixture
def gpu_runner(tmp_path: Path) -> Iterator[RunningRunner]:
    fake = tmp_path / "gpus.json"
    device = {"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "uuid": "GPU-a100-0"}
    fake.write_text(json.dumps({"devices": [device], "error": None}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NBREMOTE_FAKE_NVML", str(fake))
        running = start_runner(tmp_path / "gpu-data")
    yield running
    running.stop()


def test_a_restarted_notebook_waiting_for_its_old_gpu_is_told_attach_or_rm(
    gpu_runner: RunningRunner,
) -> None:
    previous = _session.RemoteSession(RunnerClient(gpu_runner.url, gpu_runner.token), NOTEBOOK)
    run_cell(previous, "x = 1", {}, CellOptions(gpu=parse("A100")), lambda *_: None)
    previous.close()  # its kernel is gone without a goodbye: the session keeps the GPU
    restarted = _session.RemoteSession(RunnerClient(gpu_runner.url, gpu_runner.token), NOTEBOOK)
    notices: list[str] = []
    errors: list[BaseException] = []

    def on_frame(frame: Header, buffers: list[bytearray]) -> None:
        if frame["op"] == "notice":
            notices.append(frame["text"])

    def run() -> None:
        try:
            run_cell(restarted, "y = 2", {}, CellOptions(gpu=parse("A100")), on_frame)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while not notices and time.monotonic() < deadline:
        time.sleep(0.05)
    short = previous.id[:8]
    assert notices[0].endswith(
        f"held by this notebook's previous session {short} (`%remote attach {short}` to use "
        f"its workers, or `nbremote sessions rm {short}` to free them)"
    )
    nbremote_cli(gpu_runner, "sessions", "rm", short)
    thread.join(30)
    assert not thread.is_alive() and not errors
    restarted.reset()
    restarted.close()


STUBBORN = (  # a cell that swallows every interrupt
    "import time\nwhile True:\n    try:\n        time.sleep(0.2)\n    except KeyboardInterrupt:\n"
    "        pass"
)


def test_two_interrupts_of_a_real_kernel_kill_a_worker_that_ignores_the_first(
    runner: RunningRunner, kernels: Callable[[RunningRunner], Kernel]
) -> None:
    # The notebook's stop button twice, as JupyterLab sends it: SIGINT to the kernel process.
    kernel = kernels(runner)
    kernel.ok("%%remote\nkept = 1")
    errors: list[dict[str, Any]] = []

    def hook(message: dict[str, Any]) -> None:
        if message["msg_type"] == "error":
            errors.append(message["content"])

    for delay in (1.5, 3.5):  # what interrupt_kernel sends (called from a timer's thread, it
        threading.Timer(delay, os.kill, (kernel.pid, signal.SIGINT)).start()  # leaks a loop)
    reply = kernel.client.execute_interactive(f"%%remote\n{STUBBORN}", timeout=60, output_hook=hook)
    assert reply["content"]["status"] == "error"
    assert "did not stop on interrupt; it was killed" in errors[-1]["evalue"]
    # The next cell runs, on a new worker with an empty namespace.
    assert kernel.ok("%%remote\nprint('kept' in globals())") == "False\n"
