"""What one worker can reach: not the runner's token, files or other workers, and nothing of it
outlives the runner.

Each test plays the attacker from an ordinary ``%%remote`` cell (or a local user with ``ps``),
or kills the runner with SIGKILL, and checks what a user would notice.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from IPython.core.interactiveshell import InteractiveShell
from nbremote_runner.backends.sandbox import unavailable

import nbremote as nr
from nbremote import _session
from nbremote._cell import CellOptions, run_cell
from nbremote._client import RunnerClient
from nbremote.errors import NbremoteError
from tests.conftest import TOKEN, RunningRunner, runner_environment, start_runner

SECRET = "isolation-secret-5e1f0c"  # searched for in everything a cell can read
OTHER = "other-notebook-secret-93b2d7"

# Run in the worker: every file of the runner's data dir, every /proc entry it can see, and the
# given paths; what each holds (or why it could not be read).
HARVEST = """
import os
def _read(path):
    try:
        with open(path, 'rb') as file:
            return file.read()
    except Exception as exc:
        return repr(exc).encode()
_paths = list(targets)
for _root, _dirs, _files in os.walk(data_dir):
    _paths += [os.path.join(_root, _name) for _name in _files]
for _pid in os.listdir('/proc'):
    if _pid.isdigit():
        _paths += [f'/proc/{_pid}/cmdline', f'/proc/{_pid}/environ']
harvest = {_path: _read(_path) for _path in _paths}
def _link(fd):
    try:
        return os.readlink(f'/proc/self/fd/{fd}')
    except OSError:  # the descriptor listdir itself used
        return ''
fds = [_link(_fd) for _fd in os.listdir('/proc/self/fd')]
"""


needs_sandbox = pytest.mark.skipif(
    unavailable() is not None, reason=f"workers are not sandboxed here: {unavailable()}"
)


def remote(shell: InteractiveShell, cell: str, line: str = "") -> Any:
    return shell.run_cell_magic("remote", line, cell)


def workers_of(runner: RunningRunner, session_id: str) -> list[dict[str, Any]]:
    with runner.client() as client:
        workers: list[dict[str, Any]] = client.request("GET", f"/api/v1/sessions/{session_id}")[
            "workers"
        ]
    return workers


def leaks(harvest: dict[str, bytes], *needles: str) -> list[str]:
    found = [path for path, data in harvest.items() if any(n.encode() in data for n in needles)]
    return sorted(found)


@pytest.fixture
def other_notebook(runner: RunningRunner) -> Iterator[int]:
    """Another notebook on the shared runner whose worker holds ``OTHER`` in its environment;
    that worker's pid (on the host, as the API shows it)."""
    session = _session.RemoteSession(RunnerClient(runner.url, runner.token))
    run_cell(session, "x = 1", {}, CellOptions(env={"OTHER_KEY": OTHER}), lambda *_: None)
    [worker] = workers_of(runner, session.id)
    yield worker["pid"]
    session.reset()
    session.close()


@pytest.fixture
def named_secret(runner: RunningRunner) -> Iterator[None]:
    """A named secret on the shared runner (so its data dir holds ``SECRET``)."""
    with runner.client() as client:
        client.request("PUT", "/api/v1/secrets/isolation", {"values": {"KEY": SECRET}})
    yield
    with runner.client() as client:
        client.request("DELETE", "/api/v1/secrets/isolation")


@needs_sandbox
def test_a_cell_reads_no_token_and_no_secret_of_the_runner_or_other_notebooks(
    shell: InteractiveShell, runner: RunningRunner, other_notebook: int, named_secret: None
) -> None:
    shell.user_ns["data_dir"] = str(runner.data_dir)
    shell.user_ns["targets"] = [
        f"/proc/{runner.proc.pid}/cmdline",
        f"/proc/{runner.proc.pid}/environ",
        str(runner.data_dir / "secrets.json"),
        str(runner.data_dir / "state.db"),
        f"/proc/{other_notebook}/environ",
        "/proc/self/environ",
    ]
    remote(shell, HARVEST, "--out harvest")
    harvest = shell.user_ns["harvest"]
    assert not leaks(harvest, TOKEN, SECRET, OTHER)
    # A worker that needs the runner (Dict, Queue, volumes) uses its own socket, not the token.
    remote(shell, "import os\nrunner_vars = sorted(k for k in os.environ if 'NBREMOTE_T' in k)")
    assert shell.user_ns["runner_vars"] == ["NBREMOTE_TASK_ID"]


@needs_sandbox
def test_a_cell_does_not_see_the_embedded_runner_files(nbremote_home: Path, tmp_path: Path) -> None:
    code = (
        "import nbremote\n"
        "ip = get_ipython()\n"
        "ip.run_line_magic('load_ext', 'nbremote')\n"
        f"ip.user_ns['data_dir'] = {str(nbremote_home)!r}\n"
        "ip.user_ns['targets'] = []\n"
        f"ip.run_cell_magic('remote', '--out harvest,fds', {HARVEST!r})\n"
        "import json, pathlib\n"
        "token = json.loads(pathlib.Path(data_dir, 'runner.json').read_text())['token']\n"
        "log = pathlib.Path(data_dir, 'runner.log').read_text()\n"
        "found = [p for p, d in ip.user_ns['harvest'].items() if token.encode() in d]\n"
        "found += [p for p in ip.user_ns['fds'] if p.startswith(data_dir)]  # reopened by fd\n"
        "print(json.dumps({'found': found, 'token_in_log': token in log}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "IPython", "--quick", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert '"found": [], "token_in_log": false' in result.stdout, result.stdout + result.stderr


def test_the_token_is_on_no_command_line_and_in_no_output(tmp_path: Path) -> None:
    running = start_runner(tmp_path / "data")
    try:
        while not running.output and running.proc.poll() is None:
            time.sleep(0.01)
        announced = running.output[0]
        pids = [running.proc.pid, *(c.pid for c in psutil.Process(running.proc.pid).children())]
        ps = subprocess.run(  # other runners on this machine are not ours to judge
            ["ps", "-ww", "-o", "args", "-p", ",".join(map(str, pids))],
            capture_output=True,
            text=True,
        ).stdout
        environ = Path(f"/proc/{running.proc.pid}/environ").read_bytes()
    finally:
        running.stop()
    assert "nbremote runner" in ps and TOKEN not in ps
    assert announced.strip() == "token: from NBREMOTE_TOKEN"
    assert TOKEN.encode() not in environ  # `ps e` shows no more than `ps`


def test_the_token_file_must_be_private(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o644)
    command = [sys.executable, "-m", "nbremote", "runner", "--port", "0"]
    command += ["--data-dir", str(tmp_path / "data"), "--token-file", str(token_file)]
    refused = subprocess.run(
        command, capture_output=True, text=True, timeout=60, env=runner_environment(None)
    )
    assert refused.returncode == 2
    assert f"chmod 600 {token_file}" in refused.stderr
    token_file.chmod(0o600)
    running = start_runner(tmp_path / "data", None, "--token-file", str(token_file))
    running.token = TOKEN
    try:
        with running.client() as client:
            assert client.request("GET", "/api/v1/runner")["backend"] == "process"
        with RunnerClient(running.url, None) as anonymous, pytest.raises(NbremoteError):
            anonymous.request("GET", "/api/v1/runner")
    finally:
        running.stop()
    on_argv = subprocess.run(
        [sys.executable, "-m", "nbremote", "runner", "--token", TOKEN],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert on_argv.returncode == 2 and "No such option '--token'" in on_argv.stderr


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_dir_is_readable_by_its_user_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "secrets.json").write_text("{}")
    (data / "secrets.json").chmod(0o644)  # as an older runner may have left them
    running = start_runner(data)
    try:
        with running.client() as client:
            client.request("PUT", "/api/v1/secrets/modes", {"values": {"KEY": SECRET}})
    finally:
        running.stop()
    assert mode(data) == 0o700
    files = [path for path in data.rglob("*") if path.is_file() and "images" not in path.parts]
    assert {"secrets.json", "state.db"} <= {path.name for path in files}
    assert {str(path): mode(path) & 0o077 for path in files} == {str(path): 0 for path in files}


def started_worker(runner: RunningRunner) -> tuple[_session.RemoteSession, int]:
    session = _session.RemoteSession(RunnerClient(runner.url, runner.token))
    run_cell(session, "x = 1", {}, CellOptions(), lambda *_: None)
    [worker] = workers_of(runner, session.id)
    assert worker["rss_bytes"] > 0  # the runner reads a sandboxed worker's memory by host pid
    return session, worker["pid"]


def gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_a_busy_worker_dies_with_a_killed_runner(fresh_runner: RunningRunner) -> None:
    session, pid = started_worker(fresh_runner)
    assert "nbremote_runner.worker" in " ".join(psutil.Process(pid).cmdline())
    spin = threading.Thread(
        target=lambda: _quietly(run_cell, session, "while True: pass", {}, CellOptions(), print),
        daemon=True,
    )
    spin.start()
    deadline = time.monotonic() + 20
    while psutil.Process(pid).cpu_times().user < 0.3 and time.monotonic() < deadline:
        time.sleep(0.05)  # the loop is running
    fresh_runner.proc.send_signal(signal.SIGKILL)
    fresh_runner.proc.wait()
    try:
        assert gone(pid, within=5), f"worker {pid} outlived its runner"
    finally:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
        spin.join(timeout=10)
        session.close()


@needs_sandbox
def test_an_image_build_step_sees_no_secret_and_dies_with_a_killed_runner(
    fresh_runner: RunningRunner,
) -> None:
    """A build step runs user code too (run_commands, a package's setup.py): it cannot read the
    runner's secrets, and nothing it starts outlives a killed runner."""
    nap = f"300.{os.getpid()}{time.monotonic_ns() % 10**6}"  # a sleep only this test starts
    image = nr.Image.debian_slim().run_commands(
        f"cat {fresh_runner.data_dir}/secrets.json /proc/{fresh_runner.proc.pid}/environ || true",
        f"sleep {nap} & sleep {nap}",  # the background one is a grandchild of the step
    )
    log = b""
    with fresh_runner.client() as client:
        client.request("PUT", "/api/v1/secrets/isolation", {"values": {"KEY": SECRET}})
        client.request("POST", "/api/v1/images", image.create_request())
        stream = client.stream(f"/api/v1/images/{image.object_id}/build", method="POST")
        while f"$ sleep {nap}".encode() not in log:
            log += next(stream)
    sleepers: list[psutil.Process] = []
    deadline = time.monotonic() + 20
    while len(sleepers) < 2 and time.monotonic() < deadline:
        sleepers = [p for p in psutil.process_iter(["cmdline"]) if nap in (p.info["cmdline"] or [])]
    assert len(sleepers) == 2, sleepers
    fresh_runner.proc.send_signal(signal.SIGKILL)
    fresh_runner.proc.wait()
    try:
        assert SECRET.encode() not in log, log.decode()
        assert all(gone(p.pid, within=5) for p in sleepers), "a build step outlived its runner"
    finally:
        for sleeper in sleepers:
            with contextlib.suppress(psutil.Error):
                sleeper.kill()


def _quietly(fn: Any, *args: Any) -> None:
    with contextlib.suppress(Exception):  # the runner is killed under it
        fn(*args)


def test_a_restarted_runner_removes_what_a_killed_one_left(fresh_runner: RunningRunner) -> None:
    session, pid = started_worker(fresh_runner)
    shm = session.describe().shm_dir
    shm_dir = Path(shm) if shm else None
    scratch = [path for path in (fresh_runner.data_dir / "scratch").rglob("*") if path.is_dir()]
    assert scratch
    fresh_runner.proc.send_signal(signal.SIGKILL)
    fresh_runner.proc.wait()
    session.close()
    gone(pid, within=5)
    assert all(path.exists() for path in scratch)
    restarted = start_runner(fresh_runner.data_dir)
    try:
        assert not any(path.exists() for path in scratch)
        if shm_dir is not None:
            assert not shm_dir.exists()
    finally:
        restarted.stop()


@pytest.fixture(autouse=True)
def _not_our_token_in_the_environment() -> None:
    assert os.environ.get("NBREMOTE_TOKEN") != TOKEN  # else `ps e` of anything would show it
