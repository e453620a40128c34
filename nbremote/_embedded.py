"""The embedded runner: one per ``NBREMOTE_HOME``, started on first use, shared by every kernel.

It runs as its own process (so it outlives the kernel that started it), listens on a random
loopback port with a random token, and announces both in ``runner.json`` in its data dir (mode
0600, in a 0700 folder). The token is made inside the runner: it is never on a command line, in
an environment or in the log. A file lock keeps two kernels from starting two runners. It exits
by itself after ``NBREMOTE_IDLE_TIMEOUT`` seconds (default 1800) with no client.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._client import RunnerClient
from ._status import step
from .errors import NbremoteError, RunnerUnavailable
from .wire.http import Health

RUNTIME_FILE = "runner.json"
START_TIMEOUT = 60.0
CLIENT_VARIABLES = ("NBREMOTE_TOKEN", "NBREMOTE_URL")  # the kernel's, not the runner's
# Runners this process started: held so that a running one is not collected (a warning), and
# reaped by `_alive` once stopped.
_started: list[subprocess.Popen[bytes]] = []


def _alive(pid: int) -> bool:
    # The process that started the runner must reap it, or it would linger as a zombie that
    # kill(pid, 0) still finds.
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: its parent reaps it
    try:
        os.kill(pid, 0)  # signal 0: only asks whether it exists (psutil cost a kernel ~40 ms)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def _runtime(home: Path) -> dict[str, object] | None:
    try:
        runtime: dict[str, object] = json.loads((home / RUNTIME_FILE).read_text())
    except (OSError, ValueError):
        return None
    pid = runtime.get("pid")
    return runtime if isinstance(pid, int) and _alive(pid) else None


def find(home: Path) -> tuple[str, str | None] | None:
    """The embedded runner of ``home`` if it is up and healthy."""
    runtime = _runtime(home)
    if runtime is None:
        return None
    url, token = str(runtime["url"]), runtime.get("token")
    token = token if isinstance(token, str) else None
    try:
        with RunnerClient(url, token) as client:
            client.call("GET", "/api/v1/health", response=Health)
    except NbremoteError:
        return None
    return url, token


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _start(home: Path) -> subprocess.Popen[bytes]:
    fd = os.open(home / "runner.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    log = os.fdopen(fd, "ab")  # handed to the child
    command = [
        sys.executable,
        "-P",
        "-m",
        "nbremote_runner.embedded",  # without the command line's imports
        str(home),
    ]
    with log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=home,
            env={k: v for k, v in os.environ.items() if k not in CLIENT_VARIABLES},
            start_new_session=True,  # outlives the kernel; the kernel's Ctrl-C does not reach it
        )


def _log_tail(home: Path, lines: int = 15) -> str:
    try:
        return "\n".join((home / "runner.log").read_text().splitlines()[-lines:])
    except OSError:
        return ""


def find_or_start(home: Path) -> tuple[str, str | None]:
    """The URL and token of the embedded runner of ``home``, starting it if it is not up.

    Raises:
        RunnerUnavailable: it did not come up; the message carries its log's tail.
    """
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    found = find(home)
    if found:
        return found
    with _locked(home / "runner.lock"), step("starting the runner"):
        found = find(home)
        if found:
            return found
        proc = _start(home)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            found = find(home)
            if found:
                _started.append(proc)
                return found
            time.sleep(0.005)  # a look at runner.json: cheap, and the first cell waits on it
        proc.kill()
    raise RunnerUnavailable(
        f"the embedded runner in {home} did not start. Its log ({home / 'runner.log'}) ends:\n"
        + _log_tail(home)
    )


def stop(home: Path, timeout: float = 10.0) -> bool:
    """Stop the embedded runner of ``home``; False if none was running."""
    runtime = _runtime(home)
    if runtime is None:
        return False
    pid = int(str(runtime["pid"]))
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    return True
