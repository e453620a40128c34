"""Fixtures: a real runner on an ephemeral loopback port, and a real IPython shell pointed at it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython

from nbremote import _session
from nbremote._cell import CellOptions
from nbremote._client import Channel, RunnerClient
from nbremote._defaults import Defaults
from nbremote.wire.codec import Header
from nbremote.wire.pulled import THRESHOLD

TOKEN = "test-token-0123456789"

# A sandboxed worker has a /tmp of its own: tests that share files with workers (tmp_path) keep
# them elsewhere, where workers see the host's files.
if os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK):
    tempfile.tempdir = "/var/tmp"

# The Ctrl-C tests send SIGINT to this process, as a person's Ctrl-C reaches a kernel. A shell
# that starts the suite in the background (`make test &`) leaves SIGINT ignored, and Python then
# installs no handler: every such test would hang until its timeout. Take Ctrl-C as Python does.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class RunningRunner:
    """A runner process started by a test."""

    url: str
    token: str | None
    data_dir: Path
    proc: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)  # what it printed after its first line

    def __post_init__(self) -> None:
        # Read all along: the runner logs a line per refused request, and a full pipe would
        # block it.
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:  # closed at the end of its output (the runner has exited)
            self.output.extend(self.proc.stdout)

    def client(self) -> RunnerClient:
        """The runner's API."""
        return RunnerClient(self.url, self.token)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``nbremote ARGS`` in a process of its own, pointed at this runner (by environment:
        the token never on a command line)."""
        env = {**os.environ, "NBREMOTE_URL": self.url, "NBREMOTE_TOKEN": str(self.token)}
        return subprocess.run(
            [sys.executable, "-m", "nbremote", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )

    def stop(self) -> None:
        """Stop it (SIGTERM) and wait."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self._drain.join(timeout=20)


def runner_environment(token: str | None) -> dict[str, str]:
    """This process's environment, with ``NBREMOTE_TOKEN`` set to ``token`` (or unset): how a
    runner is given its token (never on its command line)."""
    env = {k: v for k, v in os.environ.items() if k != "NBREMOTE_TOKEN"}
    return env | ({"NBREMOTE_TOKEN": token} if token else {})


def start_runner(
    data_dir: Path, token: str | None = TOKEN, *extra: str, wrap: Sequence[str] = ()
) -> RunningRunner:
    """Start ``nbremote runner --port 0`` (``token`` in its environment; under the ``wrap``
    command, if given) and wait until its health check answers."""
    command = [
        *wrap,
        sys.executable,
        "-P",
        "-m",
        "nbremote",
        "runner",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        *extra,
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=runner_environment(token),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"runner did not start: {line}{proc.stdout.read()}")
    url = line.split("listening on ")[1].split()[0]
    runner = RunningRunner(url, token, data_dir, proc)
    deadline = time.monotonic() + 20
    while True:
        try:
            with runner.client() as client:
                client.request("GET", "/api/v1/health")
            return runner
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="session")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRunner]:
    """One runner shared by the tests of a run (each test gets its own session on it)."""
    running = start_runner(tmp_path_factory.mktemp("runner"))
    yield running
    running.stop()


@pytest.fixture
def fresh_runner(tmp_path: Path) -> Iterator[RunningRunner]:
    """A runner of this test's own, for tests that stop or restart it."""
    running = start_runner(tmp_path / "runner")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def ipython() -> InteractiveShell:
    """The process's IPython shell, with nbremote loaded."""
    shell = start_ipython()
    assert shell is not None
    shell.run_line_magic("load_ext", "nbremote")
    return shell


def session_on(runner: RunningRunner) -> Iterator[_session.RemoteSession]:
    """This process's session on ``runner``, for a fixture to yield from: reset (its workers
    stopped) and closed afterwards, and no longer the process's current one."""
    session = _session.connect(runner.url, runner.token)
    yield session
    session.reset()
    session.close()
    _session._current = None


@pytest.fixture
def remote_session(runner: RunningRunner) -> Iterator[_session.RemoteSession]:
    """This process's session, on the shared runner, new for each test."""
    yield from session_on(runner)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the big buffers (`THRESHOLD` and more) this kernel
    writes on its channels, in order."""
    sizes: list[int] = []
    send = Channel.send

    def counted(self: Channel, header: Header, buffers: Sequence[Any] = ()) -> None:
        sizes.extend(n for n in (memoryview(b).nbytes for b in buffers) if n >= THRESHOLD)
        send(self, header, buffers)

    monkeypatch.setattr(Channel, "send", counted)
    return sizes


def clean_shell(ipython: InteractiveShell) -> InteractiveShell:
    """``ipython`` with an empty user namespace and the magics' memory of earlier cells gone."""
    ipython.reset(new_session=False)
    magics = ipython.magics_manager.registry["RemoteMagics"]
    magics.remote_only.clear()
    magics.untold.clear()
    magics.last_worker = CellOptions()
    magics.defaults = Defaults()
    return ipython


@pytest.fixture
def shell(ipython: InteractiveShell, remote_session: _session.RemoteSession) -> InteractiveShell:
    """A clean user namespace, with a session of its own on the shared runner."""
    return clean_shell(ipython)


@pytest.fixture
def nbremote_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An NBREMOTE_HOME of this test's own, its embedded runner stopped afterwards."""
    from nbremote._embedded import stop

    home = tmp_path / "home"
    monkeypatch.setenv("NBREMOTE_HOME", str(home))
    monkeypatch.delenv("NBREMOTE_URL", raising=False)
    monkeypatch.delenv("NBREMOTE_TOKEN", raising=False)
    yield home
    stop(home)
    _session._current = None


def run_python(code: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 90) -> str:
    """Run ``code`` in a new Python process; its output, or an assertion error with it."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def stop_embedded_runner() -> None:
    """``nbremote runner stop``, as a user would type it, for this test's NBREMOTE_HOME."""
    stopped = subprocess.run(
        [sys.executable, "-m", "nbremote", "runner", "stop"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "stopped the embedded runner" in stopped.stdout
