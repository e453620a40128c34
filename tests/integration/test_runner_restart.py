"""The runner goes away under a live kernel: the next cell finds it again, says so in one line,
and runs; a cell whose runner dies under it fails in one line, and the next one works."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output

from nbremote import _session
from tests.conftest import TOKEN, RunningRunner, clean_shell, start_runner, stop_embedded_runner

NOTICE = "restarted; the remote namespace is gone"


def run(shell: InteractiveShell, code: str) -> tuple[bool, CapturedIO]:
    """Run a cell as a notebook would: whether it succeeded, and what it showed."""
    with capture_output() as shown:
        result = shell.run_cell(code)
    return result.success, shown


@pytest.fixture
def embedded_shell(ipython: InteractiveShell, nbremote_home: Path) -> InteractiveShell:
    """A clean shell on the embedded runner of a home of this test's own, after a first cell."""
    shell = clean_shell(ipython)
    _session._current = None
    shell.user_ns["x"] = 20
    ok, shown = run(shell, "%%remote\ny = x + 1")
    assert ok and shell.user_ns["y"] == 21, shown.stdout + shown.stderr
    return shell


def test_a_cell_after_runner_stop_restarts_it(embedded_shell: InteractiveShell) -> None:
    stop_embedded_runner()
    ok, shown = run(embedded_shell, "%%remote\nz = x + 2")
    assert ok, shown.stdout + shown.stderr
    assert embedded_shell.user_ns["z"] == 22  # the notebook's x went to the new worker
    assert shown.stderr.count(NOTICE) == 1 and len(shown.stderr.splitlines()) == 1
    ok, shown = run(embedded_shell, "%%remote\nw = x + 3")
    assert ok and embedded_shell.user_ns["w"] == 23 and NOTICE not in shown.stderr


def test_a_function_call_after_runner_stop_restarts_it(embedded_shell: InteractiveShell) -> None:
    ok, shown = run(
        embedded_shell,
        "import nbremote as nr\n@nr.remote()\ndef double(v):\n    return 2 * v\n"
        "first = double.remote(4)",
    )
    assert ok and embedded_shell.user_ns["first"] == 8, shown.stdout + shown.stderr
    stop_embedded_runner()
    ok, shown = run(embedded_shell, "again = double.remote(x)")
    assert ok, shown.stdout + shown.stderr
    assert embedded_shell.user_ns["again"] == 40
    assert shown.stderr.count(NOTICE) == 1


def test_reset_after_runner_stop(embedded_shell: InteractiveShell) -> None:
    stop_embedded_runner()
    ok, shown = run(embedded_shell, "%remote reset")
    assert ok, shown.stdout + shown.stderr
    assert NOTICE in shown.stderr and "namespace was dropped" in shown.stdout
    ok, shown = run(embedded_shell, "%%remote\nz = x + 2")
    assert ok and embedded_shell.user_ns["z"] == 22, shown.stdout + shown.stderr


def test_a_cell_whose_embedded_runner_crashes_fails_in_one_line(
    embedded_shell: InteractiveShell, nbremote_home: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "cell-started"  # workers do not see the home (the runner's token)
    embedded_shell.user_ns["marker"] = str(marker)
    runtime = json.loads((nbremote_home / "runner.json").read_text())
    killer = _stop_when_exists(marker, lambda: os.kill(runtime["pid"], signal.SIGKILL))
    ok, shown = run(embedded_shell, _STARTED_THEN_SLEEP)
    killer.join()
    assert not ok
    _assert_one_line_went_away(shown)
    ok, shown = run(embedded_shell, "%%remote\nz = x + 2")
    assert ok and embedded_shell.user_ns["z"] == 22, shown.stdout + shown.stderr


# -- a standalone runner, restarted on the same port --------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Restartable:
    """A standalone runner on a fixed port, which a test may stop and start again there."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.running: RunningRunner = self.start()

    def start(self) -> RunningRunner:
        self.running = start_runner(self.data_dir, TOKEN, "--port", str(self.port))
        return self.running

    def restart(self) -> None:
        self.running.stop()
        self.start()


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[Restartable]:
    runner = Restartable(tmp_path / "runner")
    yield runner
    runner.running.stop()


@pytest.fixture
def standalone_shell(
    ipython: InteractiveShell, standalone: Restartable
) -> Iterator[InteractiveShell]:
    session = _session.connect(standalone.running.url, standalone.running.token)
    shell = clean_shell(ipython)
    shell.user_ns["x"] = 20
    ok, shown = run(shell, "%%remote\ny = x + 1")
    assert ok and shell.user_ns["y"] == 21, shown.stdout + shown.stderr
    yield shell
    session.close()
    _session._current = None


def test_a_cell_after_a_standalone_runner_restarts_reconnects(
    standalone_shell: InteractiveShell, standalone: Restartable
) -> None:
    standalone.restart()
    ok, shown = run(standalone_shell, "%%remote\nz = x + 2")
    assert ok, shown.stdout + shown.stderr
    assert standalone_shell.user_ns["z"] == 22
    assert shown.stderr.count(NOTICE) == 1


def test_a_cell_while_the_runner_is_down_fails_in_one_line_then_works(
    standalone_shell: InteractiveShell, standalone: Restartable
) -> None:
    standalone.running.stop()
    ok, shown = run(standalone_shell, "%%remote\nz = x + 2")
    assert not ok
    assert shown.stdout.strip().startswith("RunnerUnavailable: cannot reach the runner")
    assert len(shown.stdout.strip().splitlines()) == 1, shown.stdout
    standalone.start()
    ok, shown = run(standalone_shell, "%%remote\nz = x + 2")
    assert ok and standalone_shell.user_ns["z"] == 22, shown.stdout + shown.stderr
    assert shown.stderr.count(NOTICE) == 1


def test_a_cell_whose_standalone_runner_dies_fails_in_one_line(
    standalone_shell: InteractiveShell, standalone: Restartable, tmp_path: Path
) -> None:
    marker = tmp_path / "cell-started"
    standalone_shell.user_ns["marker"] = str(marker)
    killer = _stop_when_exists(marker, standalone.running.proc.kill)
    ok, shown = run(standalone_shell, _STARTED_THEN_SLEEP)
    killer.join()
    standalone.running.stop()
    assert not ok
    _assert_one_line_went_away(shown)
    standalone.start()
    ok, shown = run(standalone_shell, "%%remote\nz = x + 2")
    assert ok and standalone_shell.user_ns["z"] == 22, shown.stdout + shown.stderr


_STARTED_THEN_SLEEP = (
    "%%remote\nimport pathlib, time\npathlib.Path(marker).write_text('')\ntime.sleep(120)"
)


def _stop_when_exists(marker: Path, stop: Callable[[], object]) -> threading.Thread:
    """A thread that calls ``stop`` once ``marker`` exists (the cell is running)."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        stop()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _assert_one_line_went_away(shown: CapturedIO) -> None:
    lines = shown.stdout.strip().splitlines()
    assert len(lines) == 1, shown.stdout
    assert lines[0].startswith("RunnerUnavailable: the runner at ")
    assert "went away while this ran" in lines[0]
