"""Deployed apps on a real runner: deploy, call from other processes, stop, restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nbremote as nr
from nbremote import _session
from tests.conftest import RunningRunner, start_runner

EXAMPLE = Path(__file__).parents[2] / "examples" / "inference.py"


def cli(runner: RunningRunner, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": str(runner.token)}
    return subprocess.run(
        [sys.executable, "-m", "nbremote", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def call_from_another_process(runner: RunningRunner, code: str) -> str:
    prelude = (
        "import nbremote as nr\nfrom nbremote import _session\n"
        f"_session.connect({runner.url!r}, {runner.token!r})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_deployed_class_serves_every_process_from_one_container(
    fresh_runner: RunningRunner,
) -> None:
    deployed = cli(fresh_runner, "deploy", str(EXAMPLE))
    assert "deployed app 'inference'" in deployed.stdout and "Model (class)" in deployed.stdout
    code = (
        "m = nr.Cls.from_name('inference', 'Model')()\n"
        "print(m.generate.remote('hi'), m.loaded_in.remote())"
    )
    first = call_from_another_process(fresh_runner, code).split()
    second = call_from_another_process(fresh_runner, code).split()
    assert first[:4] == ["hi", "brown", "fox", "jumps"]
    assert first[-1] == second[-1]  # the same warm container, loaded once
    assert (
        call_from_another_process(
            fresh_runner, "print(nr.Function.from_name('inference', 'tokenize').remote('a b'))"
        )
        == "tokenizing 'a b'\n['a', 'b']"  # remote output is printed by the caller too
    )
    listed = json.loads(cli(fresh_runner, "apps", "ls", "--json").stdout)
    assert [app["name"] for app in listed] == ["inference"] and listed[0]["workers"] >= 1


def test_deployed_apps_survive_a_restart_and_stop_runs_exit(
    fresh_runner: RunningRunner, tmp_path: Path
) -> None:
    log = tmp_path / "exit.log"
    script = tmp_path / "closing.py"
    script.write_text(
        "import nbremote as nr\napp = nr.App('closing')\n"
        "@app.cls()\nclass Resource:\n"
        "    @nr.method()\n    def ping(self):\n        return 'pong'\n"
        "    @nr.exit()\n    def close(self):\n"
        f"        open({str(log)!r}, 'a').write('closed\\n')\n"
    )
    assert cli(fresh_runner, "deploy", str(script)).returncode == 0
    fresh_runner.stop()
    restarted = start_runner(fresh_runner.data_dir)
    try:
        assert (
            call_from_another_process(
                restarted, "print(nr.Cls.from_name('closing', 'Resource')().ping.remote())"
            )
            == "pong"
        )
        stopped = cli(restarted, "apps", "stop", "closing")
        assert stopped.stdout.strip() == "stopped app 'closing'"
        assert log.read_text() == "closed\n"
        missing = cli(restarted, "apps", "stop", "closing")
        assert missing.returncode == 2 and "no deployed app 'closing'" in missing.stderr
    finally:
        restarted.stop()


def test_lookups_of_what_is_not_deployed_list_what_is(runner: RunningRunner) -> None:
    session = _session.connect(runner.url, runner.token)
    try:
        with pytest.raises(nr.NbremoteError, match=r"no deployed app 'ghost' \(deployed: "):
            nr.Function.from_name("ghost", "f")
        with pytest.raises(nr.NbremoteError, match="no deployed app 'ghost'"):
            nr.App.lookup("ghost")
        assert nr.App.lookup("ghost", create_if_missing=True).name == "ghost"
    finally:
        session.close()
        _session._current = None


def test_the_inference_example_runs_as_a_script(runner: RunningRunner) -> None:
    result = cli(runner, "run", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "hello the quick brown",
        "['a quick brown fox', 'bb brown fox jumps', 'ccc fox jumps the']",
    ]


def test_apps_logs_show_and_follow_what_the_app_printed(fresh_runner: RunningRunner) -> None:
    assert cli(fresh_runner, "deploy", str(EXAMPLE)).returncode == 0
    env = {
        **os.environ,
        "NBREMOTE_URL": fresh_runner.url,
        "NBREMOTE_TOKEN": str(fresh_runner.token),
    }
    follower = subprocess.Popen(
        [sys.executable, "-m", "nbremote", "apps", "logs", "inference", "--follow"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        code = "f = nr.Function.from_name('inference', 'tokenize')\nf.remote('x y')\nf.remote('z')"
        call_from_another_process(fresh_runner, code)
        assert (
            cli(fresh_runner, "apps", "logs", "inference").stdout
            == "tokenizing 'x y'\ntokenizing 'z'\n"
        )
        assert follower.stdout is not None
        assert follower.stdout.readline() == "tokenizing 'x y'\n"  # streamed as it came
    finally:
        follower.terminate()
        follower.wait(timeout=10)
        if follower.stdout is not None:
            follower.stdout.close()
    missing = cli(fresh_runner, "apps", "logs", "ghost")
    assert missing.returncode == 2 and "no deployed app 'ghost'" in missing.stderr
