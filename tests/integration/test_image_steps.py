"""Modal's other image steps on a real runner: add_local_file, workdir, entrypoint,
run_function (cached by its source), uv_sync, conda refused, Secret.from_local_environ."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from nbremote_runner.image_build import uv_bin, uv_env

import nbremote as nr
from nbremote import _session
from nbremote.errors import NbremoteError, RemoteError

from ..conftest import RunningRunner


def remote(shell: InteractiveShell, cell: str, line: str = "") -> str:
    """Run a %%remote cell; what it printed (the build log among it)."""
    with capture_output() as captured:
        shell.run_cell_magic("remote", line, cell)
    return captured.stdout + captured.stderr


def base() -> nr.Image:
    """A base with an env step of this test's own: its later layers are built anew."""
    return nr.Image.debian_slim().env({"NBREMOTE_TEST_RUN": uuid.uuid4().hex})


def write_greeting(text: str, times: int = 1) -> None:
    """Run at build time by run_function: what it writes in its folder is in the image."""
    import pathlib

    pathlib.Path("greeting.txt").write_text(text * times)


def test_workdir_add_local_file_and_entrypoint(shell: InteractiveShell, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"mode": "fast"}')
    shell.user_ns["img"] = (
        base()
        .entrypoint([])  # recorded; a process-backend worker has no entrypoint to clear
        .add_local_file(config, "/root/app/settings.json")
        .add_local_file(config, "/root/")  # a folder: the file keeps its name
        .workdir("/root/app")
        .run_commands("echo built > made.txt")  # after workdir(): runs there, stays there
    )
    cell = (
        "import os, pathlib\n"
        "cwd = pathlib.Path.cwd().name\n"
        "here = pathlib.Path('settings.json').read_text()\n"
        "above = pathlib.Path('../config.json').read_text()\n"
        "made = pathlib.Path('made.txt').read_text()\n"
        "pathlib.Path('notes.txt').write_text('mine')  # the workdir takes new files\n"
    )
    log = remote(shell, cell, "--image img")
    assert "entrypoint []" in log and "workdir /root/app" in log
    assert shell.user_ns["cwd"] == "app"
    assert shell.user_ns["here"] == shell.user_ns["above"] == '{"mode": "fast"}'
    assert shell.user_ns["made"] == "built\n"
    remote(shell, "import os\nagain = os.path.exists('notes.txt')", "--image img --fresh")
    assert shell.user_ns["again"] is False  # a new worker: the image is as built

    shell.user_ns["bad"] = base().workdir("/srv/app")
    with pytest.raises(RemoteError, match=r"workdir\('/srv/app'\).*relative path"):
        remote(shell, "x = 1", "--image bad")


def test_run_function_runs_at_build_time_once_per_source(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    image = base().run_function(write_greeting, args=("hi",), kwargs={"times": 2})
    shell.user_ns["img"] = image
    log = remote(
        shell, "import pathlib\ngreeting = pathlib.Path('greeting.txt').read_text()", "--image img"
    )
    assert "step 3/3 run function write_greeting" in log
    assert shell.user_ns["greeting"] == "hihi"

    # The same source and arguments: the same layer, not run again.
    shell.user_ns["again"] = (
        nr.Image.debian_slim()
        .env(image.steps[1].options)
        .run_function(write_greeting, args=("hi",), kwargs={"times": 2})
    )
    log = remote(shell, "x = 1", "--image again --fresh")
    assert "pip install" not in log and "step 3/3" not in log  # cached: no build at all

    # Another source under the same name: a new layer.
    edited = tmp_path / "edited.py"
    edited.write_text(
        "def write_greeting(text, times=1):\n"
        "    import pathlib\n"
        "    pathlib.Path('greeting.txt').write_text(text.upper() * times)\n"
    )
    namespace: dict[str, object] = {}
    exec(compile(edited.read_text(), str(edited), "exec"), namespace)
    changed = (
        nr.Image.debian_slim()
        .env(image.steps[1].options)
        .run_function(
            namespace["write_greeting"],
            args=("hi",),  # type: ignore[arg-type]
        )
    )
    assert changed.object_id != image.object_id
    shell.user_ns["changed"] = changed
    log = remote(
        shell, "import pathlib\nnow = pathlib.Path('greeting.txt').read_text()", "--image changed"
    )
    assert "step 3/3 run function write_greeting" in log
    assert shell.user_ns["now"] == "HI"


def test_run_function_failure_and_refusals(shell: InteractiveShell) -> None:
    def fails() -> None:
        raise ValueError("no weights today")

    shell.user_ns["img"] = base().run_function(fails)
    with pytest.raises(RemoteError, match=r"(?s)run function fails.*ValueError: no weights today"):
        remote(shell, "x = 1", "--image img")
    with pytest.raises(NbremoteError, match=r"run_function\(fails\): secrets= not supported"):
        base().run_function(fails, secrets=[nr.Secret.from_dict({"A": "b"})])
    with pytest.raises(NbremoteError, match="takes a function defined with def"):
        base().run_function(lambda: None)
    with pytest.raises(NbremoteError, match=r"args and kwargs go into the image's definition"):
        base().run_function(fails, args=(object(),))
    for refused in (
        lambda: nr.Image.micromamba(),
        lambda: nr.Image.debian_slim().micromamba_install("numpy"),
        lambda: nr.Image.debian_slim().conda_install("numpy"),
    ):
        with pytest.raises(NbremoteError, match=r"not supported by nbremote.*\.pip_install"):
            refused()


def test_uv_sync_installs_the_locked_dependencies(shell: InteractiveShell, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "demo-proj"\nversion = "0.1.0"\nrequires-python = ">=3.9"\n'
        'dependencies = ["six==1.16.0"]\n\n[dependency-groups]\ntools = ["idna==3.7"]\n'
    )
    with pytest.raises(NbremoteError, match=r"no uv\.lock in .*run `uv lock` there"):
        base().uv_sync(project)
    subprocess.run([uv_bin(), "lock"], cwd=project, env=uv_env(), check=True, capture_output=True)
    shell.user_ns["img"] = base().uv_sync(project, groups=["tools"])
    cell = "import six, idna\nversions = six.__version__, idna.__version__"
    log = remote(shell, cell, "--image img")
    assert "uv sync" in log
    assert shell.user_ns["versions"] == ("1.16.0", "3.7")


def test_secret_from_local_environ(
    remote_session: _session.RemoteSession, runner: RunningRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = f"local-{uuid.uuid4().hex}"
    monkeypatch.setenv("NBR_LOCAL_TOKEN", value)
    monkeypatch.delenv("NBR_NOT_SET", raising=False)
    with pytest.raises(NbremoteError, match="NBR_NOT_SET not set in this environment") as missing:
        nr.Secret.from_local_environ(["NBR_LOCAL_TOKEN", "NBR_NOT_SET"])
    assert value not in str(missing.value)

    app = nr.App("local-environ")

    @app.function(secrets=[nr.Secret.from_local_environ(["NBR_LOCAL_TOKEN"])])
    def token() -> str:
        return os.environ["NBR_LOCAL_TOKEN"]

    assert token.remote() == value
    assert value not in repr(nr.Secret.from_local_environ(["NBR_LOCAL_TOKEN"]))
    assert value not in "".join(runner.output)


def test_crafted_steps_are_refused_by_the_runner(shell: InteractiveShell) -> None:
    """Steps written by hand (not by the Image methods) cannot escape or inject: the runner
    checks what it writes into a script and the paths it makes."""
    from nbremote.wire.images import ImageStep

    injected = ImageStep(
        kind="run_function",
        options={"name": "f(); import os; os.system('id') #", "source": "", "call": "{}"},
    )
    escaping = ImageStep(kind="workdir", options={"path": "../../outside"})
    for step, message in [
        (injected, "is not a function name"),
        (escaping, r"workdir\('../../outside'\): '\.\.' is not allowed"),
    ]:
        shell.user_ns["img"] = nr.Image([*base().steps, step])
        with pytest.raises(RemoteError, match=message):
            remote(shell, "x = 1", "--image img")
