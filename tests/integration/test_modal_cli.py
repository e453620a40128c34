"""The command line as Modal's: ``nbremote run FILE::f --x 3`` (parameters as options) and
Modal's spellings (``app list``, ``volume ls VOL [PATH]``, ``secret create``, ``secret list``),
each run as a user would, in a process of its own against a real runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ..conftest import RunningRunner

SCRIPT = '''
from __future__ import annotations  # annotations as strings: still typed options

from typing import Optional

import nbremote as modal

app = modal.App("cli-params")


@app.function()
def describe(x: int, scale: float = 1.5, name: str = "a", loud: bool = False, count=2,
             label: Optional[str] = None) -> str:
    """Describe the options it was given."""
    text = f"{x * scale} {name} {count} {label}"
    return text.upper() if loud else text


@app.local_entrypoint()
def main(n: int, dry_run: bool = True):
    print("main got", n, dry_run)
    if not dry_run:
        print("remote says", describe.remote(n))
'''


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "cli_params.py"
    path.write_text(SCRIPT)
    return path


def test_run_turns_parameters_into_options(runner: RunningRunner, script: Path) -> None:
    ran = runner.cli("run", f"{script}::describe", "--x", "3", "--name", "b", "--loud")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().splitlines()[-1] == "'4.5 B 2 NONE'"
    ran = runner.cli("run", f"{script}::describe", "--x=2", "--scale", "2", "--count", "5")
    assert ran.stdout.strip().splitlines()[-1] == "'4.0 a 5 None'"

    entry = runner.cli("run", str(script), "--n", "4", "--no-dry-run")
    assert entry.returncode == 0, entry.stderr
    assert entry.stdout.splitlines() == ["main got 4 False", "remote says 6.0 a 2 None"]

    shown = runner.cli("run", f"{script}::describe", "--help")
    assert shown.returncode == 0
    for option in ("--x INTEGER", "--scale FLOAT", "--loud / --no-loud", "--label TEXT"):
        assert option in shown.stdout
    assert "Describe the options it was given." in shown.stdout


def test_run_refuses_missing_and_mistyped_options(runner: RunningRunner, script: Path) -> None:
    missing = runner.cli("run", f"{script}::describe", "--name", "b")
    assert missing.returncode == 2 and "Missing option '--x'" in missing.stderr
    mistyped = runner.cli("run", str(script), "--n", "many")
    assert mistyped.returncode == 2
    assert "Invalid value for '--n': 'many' is not a valid integer" in mistyped.stderr
    unknown = runner.cli("run", f"{script}::describe", "--x", "1", "--colour", "red")
    assert unknown.returncode == 2 and "No such option '--colour'" in unknown.stderr


def test_app_list_is_apps_ls(runner: RunningRunner, tmp_path: Path) -> None:
    name = f"listed-{uuid.uuid4().hex[:6]}"
    app_file = tmp_path / "listed.py"
    app_file.write_text(
        f"import nbremote as modal\napp = modal.App({name!r})\n\n"
        "@app.function()\ndef ping() -> str:\n    return 'pong'\n"
    )
    assert runner.cli("deploy", str(app_file)).returncode == 0
    try:
        listed = runner.cli("app", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        apps = {app["name"]: app for app in json.loads(listed.stdout)}
        assert [obj["name"] for obj in apps[name]["objects"]] == ["ping"]
        assert name in runner.cli("app", "list").stdout
    finally:
        assert runner.cli("app", "stop", name).returncode == 0
    assert name not in runner.cli("apps", "ls").stdout
    assert runner.cli("image", "list", "--json").returncode == 0  # `modal image list`


def test_volume_ls_lists_a_volumes_files(runner: RunningRunner, tmp_path: Path) -> None:
    name = f"vol-{uuid.uuid4().hex[:6]}"
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model.bin").write_bytes(b"x" * 10)
    assert runner.cli("volume", "create", name).returncode == 0
    try:
        assert runner.cli("volume", "put", name, str(tmp_path / "weights"), "/").returncode == 0
        top = runner.cli("volume", "ls", name)
        assert top.returncode == 0, top.stderr
        assert "weights/" in top.stdout
        inside = runner.cli("volume", "ls", name, "/weights", "--json")
        assert [entry["path"] for entry in json.loads(inside.stdout)] == ["weights/model.bin"]
        assert name in runner.cli("volume", "list").stdout  # without a name: the volumes
    finally:
        assert runner.cli("volume", "delete", name).returncode == 0
    extra = runner.cli("volume", "rm", name, "/weights")  # Modal's file delete: not ours
    assert extra.returncode == 2


def test_secret_create_and_list_never_show_values(runner: RunningRunner) -> None:
    name = f"sec-{uuid.uuid4().hex[:6]}"
    typed, piped = f"typed-{uuid.uuid4().hex}", f"piped-{uuid.uuid4().hex}"
    env = {**os.environ, "NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": str(runner.token)}
    created = subprocess.run(
        [sys.executable, "-m", "nbremote", "secret", "create", name, f"A={typed}", "B=-"],
        input=piped + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == f"secret {name!r} set: A, B"
    listed = runner.cli("secret", "list", "--json")
    secrets = {secret["name"]: secret for secret in json.loads(listed.stdout)}
    assert secrets[name]["keys"] == ["A", "B"]
    with runner.client() as client:  # the values as stored: what workers will get
        assert piped not in json.dumps(client.request("GET", f"/api/v1/secrets/{name}"))

    bad = runner.cli("secret", "create", name, f"{typed}")  # no '=': never echoed back
    assert bad.returncode == 2 and "argument 1 is not KEY=VALUE" in bad.stderr
    assert typed not in bad.stderr
    twice = runner.cli("secret", "create", name, "A=-", "B=-")
    assert twice.returncode == 2 and "only one KEY=- can read stdin" in twice.stderr
    outputs = [created.stdout, created.stderr, listed.stdout, "".join(runner.output)]
    assert not any(value in text for text in outputs for value in (typed, piped))
    assert runner.cli("secret", "delete", name).returncode == 0


def test_the_secret_created_from_stdin_reaches_a_function(
    runner: RunningRunner, tmp_path: Path
) -> None:
    name = f"sec-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": str(runner.token)}
    subprocess.run(
        [sys.executable, "-m", "nbremote", "secret", "create", name, "PASSWORD=-"],
        input="s3cr3t with spaces\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    app_file = tmp_path / "uses_secret.py"
    app_file.write_text(
        "import os\nimport nbremote as modal\napp = modal.App('uses-secret')\n\n"
        f"@app.function(secrets=[modal.Secret.from_name({name!r})])\n"
        "def length() -> int:\n    return len(os.environ['PASSWORD'])\n"
    )
    ran = runner.cli("run", f"{app_file}::length")  # no entrypoint: the function is the target
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == str(len("s3cr3t with spaces"))
    runner.cli("secret", "delete", name)
