"""The embedded runner: started by the first cell, shared by kernels, stopped or idled out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import RunningRunner, run_python, stop_embedded_runner

FIRST_CELL = """
import os
from IPython.testing.globalipapp import start_ipython
shell = start_ipython()
shell.run_line_magic("load_ext", "nbremote")
shell.user_ns["x"] = 20
shell.run_cell_magic("remote", "", "import os\\ny = x + 1\\npid = os.getpid()")
from nbremote import _session
url = _session.current_session().client.url
print(shell.user_ns["y"], shell.user_ns["pid"] != os.getpid(), url)
"""


def _runtime(home: Path) -> dict[str, object]:
    runtime: dict[str, object] = json.loads((home / "runner.json").read_text())
    return runtime


def test_first_cell_starts_one_runner_shared_by_kernels(
    nbremote_home: Path, tmp_path: Path
) -> None:
    first = run_python(FIRST_CELL, tmp_path).split()
    assert first[:2] == ["21", "True"]
    runtime = _runtime(nbremote_home)
    assert first[2] == runtime["url"] and runtime["token"]
    assert (nbremote_home / "runner.json").stat().st_mode & 0o777 == 0o600
    second = run_python(FIRST_CELL, tmp_path).split()
    assert second[2] == first[2]  # the second kernel found the same runner


def test_runner_stop_stops_it(nbremote_home: Path, tmp_path: Path) -> None:
    run_python(FIRST_CELL, tmp_path)
    pid = int(str(_runtime(nbremote_home)["pid"]))
    stop_embedded_runner()
    assert not (nbremote_home / "runner.json").exists()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _exists(pid):
        time.sleep(0.05)
    assert not _exists(pid)


def test_idle_runner_exits_by_itself(nbremote_home: Path, tmp_path: Path) -> None:
    run_python(FIRST_CELL, tmp_path, env={"NBREMOTE_IDLE_TIMEOUT": "1"})
    pid = int(str(_runtime(nbremote_home)["pid"]))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _exists(pid):
        time.sleep(0.1)
    assert not _exists(pid)


def test_user_files_named_like_our_modules_break_nothing(
    nbremote_home: Path, tmp_path: Path
) -> None:
    for name in ("runner", "server_ext", "nbremote_runner", "nbremote_server_ext", "worker"):
        (tmp_path / f"{name}.py").write_text("raise RuntimeError('a user file was imported')\n")
    assert run_python(FIRST_CELL, tmp_path).split()[:2] == ["21", "True"]


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited all the same.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_environment_points_the_kernel_at_a_runner(runner: RunningRunner, tmp_path: Path) -> None:
    env = {"NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": str(runner.token)}
    assert run_python(FIRST_CELL, tmp_path, env=env).split() == ["21", "True", runner.url]


def test_a_runner_that_is_down_fails_the_cell_quickly(tmp_path: Path) -> None:
    code = FIRST_CELL.replace('print(shell.user_ns["y"]', 'print(shell.user_ns.get("y")')
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NBREMOTE_URL": "http://127.0.0.1:9"},
    )
    assert (
        "RunnerUnavailable: cannot reach the runner at http://127.0.0.1:9"
        in result.stdout + result.stderr
    )
    assert time.monotonic() - started < 15


def test_status_cli_prints_json(runner: RunningRunner) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nbremote",
            "status",
            "--json",
            "--url",
            runner.url,
            "--token",
            str(runner.token),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    document = json.loads(result.stdout)
    assert document["runner"]["backend"] == "process"
    assert isinstance(document["sessions"], list)
