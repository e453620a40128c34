"""Images on a real runner: real uv builds of tiny pinned packages, real workers in the venvs.

Every build shares uv's global cache, and the tests on the shared runner share its layer cache:
the base layer is built once per run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import nbremote as nr
from nbremote import _session
from nbremote._cell import CellOptions, run_cell
from nbremote._client import RunnerClient
from nbremote.errors import RemoteError, RunnerError

from ..conftest import RunningRunner, start_runner


def remote(shell: InteractiveShell, cell: str, line: str = "") -> str:
    """Run a %%remote cell; what it printed on stdout and stderr."""
    with capture_output() as captured:
        shell.run_cell_magic("remote", line, cell)
    return captured.stdout + captured.stderr


def unique() -> dict[str, str]:
    """An env step that makes an image of this test's own (new layers from there on)."""
    return {"NBREMOTE_TEST_RUN": uuid.uuid4().hex}


def test_image_cell_cache_hit_and_one_step_rebuild(shell: InteractiveShell) -> None:
    shell.user_ns["img"] = nr.Image.debian_slim().env(unique()).pip_install("six==1.16.0")
    log = remote(
        shell, "import six, sys\nversion, prefix = six.__version__, sys.prefix", "--image img"
    )
    assert "step 3/3 pip install six==1.16.0" in log and "+ six==1.16.0" in log
    assert shell.user_ns["version"] == "1.16.0"
    assert "/images/layers/" in shell.user_ns["prefix"]  # the worker runs in the image's venv

    started = time.perf_counter()
    log = remote(shell, "import six\nagain = six.__version__", "--image img --fresh")
    assert shell.user_ns["again"] == "1.16.0" and "pip install" not in log  # cached: no build
    assert time.perf_counter() - started < 5
    image_id = shell.user_ns["img"].object_id  # a cached image by id, no variable needed
    remote(shell, "import six\nby_id = six.__version__", f"--image {image_id}")
    assert shell.user_ns["by_id"] == "1.16.0"

    shell.run_cell("img2 = img.pip_install('idna==3.7')")
    log = remote(
        shell, "import idna, six\nboth = idna.__version__, six.__version__", "--image img2"
    )
    assert "step 3/4 cached: pip install six==1.16.0" in log
    assert "step 4/4 pip install idna==3.7" in log and "step 3/4 pip install" not in log
    assert shell.user_ns["both"] == ("3.7", "1.16.0")


def test_pip_flag_and_failing_step(shell: InteractiveShell, runner: RunningRunner) -> None:
    log = remote(shell, "import tomli\nv = tomli.__version__", '--pip "tomli==2.0.1"')
    assert shell.user_ns["v"] == "2.0.1"

    shell.user_ns["before"] = 1
    bad = "nbremote-surely-missing-package==1.0"
    for _ in range(2):  # the failed step is not cached: the second run builds it again
        with pytest.raises(RemoteError) as failed, capture_output() as captured:
            shell.run_cell_magic("remote", f'--pip "{bad}"', "before = 2\nafter = 3")
        assert type(failed.value).__name__ == "ImageBuildError"
        assert f"step 2/2 (pip install {bad}) failed" in str(failed.value)
        assert "requirements are unsatisfiable" in str(failed.value)  # the log's tail
        assert f"step 2/2 pip install {bad}" in captured.stderr
    assert shell.user_ns["before"] == 1 and "after" not in shell.user_ns
    image = nr.Image.debian_slim().pip_install(bad)
    with runner.client() as client:
        described = client.request("GET", f"/api/v1/images/{image.object_id}")
    assert [layer["built"] for layer in described["layers"]] == [True, False]
    del log


def test_function_and_class_with_an_image(remote_session: _session.RemoteSession) -> None:
    app = nr.App("images-functions")
    image = nr.Image.debian_slim().pip_install("six==1.16.0").env({"GREETING": "hello"})

    @app.function(image=image)
    def versions() -> tuple[str, str]:
        import os

        import six

        return six.__version__, os.environ["GREETING"]

    @app.cls(image=image)
    class Greeter:
        @nr.method()
        def greet(self, name: str) -> str:
            import os

            return f"{os.environ['GREETING']} {name}"

    assert versions.remote() == ("1.16.0", "hello")
    assert Greeter().greet.remote("you") == "hello you"


def test_local_files_commands_and_apt(
    shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "shippedpkg"
    package.mkdir()
    (package / "__init__.py").write_text("from .core import ANSWER\n")
    (package / "core.py").write_text("ANSWER = 42\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "table.csv").write_text("a,b\n1,2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    shell.user_ns["img"] = (
        nr.Image.debian_slim()
        .apt_install("coreutils")  # on the host already: accepted
        .run_commands("python -c \"import sys; open(sys.prefix + '/marker', 'w').write('ran')\"")
        .add_local_python_source("shippedpkg")
        .add_local_dir(tmp_path / "data", "/root/data")
    )
    cell = (
        "import shippedpkg, sys, pathlib\n"
        "answer = shippedpkg.ANSWER\n"
        "marker = pathlib.Path(sys.prefix, 'marker').read_text()\n"
        "table = pathlib.Path('data/table.csv').read_text()"
    )
    remote(shell, cell, "--image img")
    assert shell.user_ns["answer"] == 42
    assert shell.user_ns["marker"] == "ran"
    assert shell.user_ns["table"] == "a,b\n1,2\n"

    for image, message in [
        (nr.Image.debian_slim().apt_install("surely-not-a-package"), "apt-get install surely"),
        (nr.Image.from_registry("python:3.11-slim"), "needs the docker backend"),
        (nr.Image.debian_slim().add_local_dir(tmp_path / "data", "/data"), "relative path"),
    ]:
        shell.user_ns["bad"] = image
        with pytest.raises(RemoteError, match=message):
            remote(shell, "x = 1", "--image bad")


def test_unavailable_python_lists_what_the_runner_has(shell: InteractiveShell) -> None:
    shell.user_ns["img"] = nr.Image.debian_slim(python_version="3.99")
    with pytest.raises(
        RunnerError, match=r"'3.99' is not available on this runner; it has .*3\.11"
    ):
        remote(shell, "x = 1", "--image img")


def test_concurrent_requests_for_one_image_build_it_once(runner: RunningRunner) -> None:
    image = nr.Image.debian_slim().env(unique()).pip_install("tomli==2.0.1")
    logs: list[list[str]] = [[], []]
    results: list[Any] = [None, None]

    def run(index: int) -> None:
        session = _session.RemoteSession(RunnerClient(runner.url, runner.token))
        try:

            def collect(frame: dict[str, Any], buffers: list[bytearray]) -> None:
                if frame["op"] == "stream":
                    logs[index].append(frame["text"])

            namespace: dict[str, Any] = {}
            options = CellOptions(image=image)
            run_cell(session, "import tomli\nv = tomli.__version__", namespace, options, collect)
            results[index] = namespace["v"]
        finally:
            session.reset()
            session.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=100)
    assert results == ["2.0.1", "2.0.1"]
    joined = ["".join(log) for log in logs]
    assert sum("waiting for the build of image" in log for log in joined) == 1, joined
    leftovers = list((runner.data_dir / "images" / "layers").glob(".tmp-*"))
    assert leftovers == []


def test_local_module_beside_the_notebook_is_shipped_and_reloaded(
    shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the notebook's folder
    monkeypatch.syspath_prepend(str(tmp_path))
    utils = tmp_path / "nbr_utils.py"
    utils.write_text("import nbr_helpers\n\ndef scale(x):\n    return x * nbr_helpers.FACTOR\n")
    (tmp_path / "nbr_helpers.py").write_text("FACTOR = 2\n")
    remote(shell, "import nbr_utils\nfirst = nbr_utils.scale(21)")
    assert shell.user_ns["first"] == 42

    utils.write_text("import nbr_helpers\n\ndef scale(x):\n    return x * nbr_helpers.FACTOR + 1\n")
    remote(shell, "import nbr_utils\nsecond = nbr_utils.scale(21)")
    assert shell.user_ns["second"] == 43  # the edited file, without rebuilding anything

    # A function pool's workers get no files: a local module's code travels in the pickle.
    (tmp_path / "nbr_funcs.py").write_text(
        "import nbr_helpers\n\ndef shift(x):\n    return x + 100 * nbr_helpers.FACTOR\n"
    )
    cell = (
        "import nbremote as nr\nfrom nbr_funcs import shift\n\n"
        "@nr.remote\ndef call_shift(x):\n    return shift(x)\n\nshifted = call_shift.remote(1)"
    )
    assert shell.run_cell(cell).success
    assert shell.user_ns["shifted"] == 201


def _cli(runner: RunningRunner, *args: str) -> str:
    env = {"NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": runner.token or ""}
    result = subprocess.run(
        [sys.executable, "-m", "nbremote", "images", *args],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **env},
        timeout=100,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_cli_build_ls_rm_prune_and_restart(tmp_path: Path) -> None:
    data = tmp_path / "runner"
    running = start_runner(data)
    try:
        out = _cli(running, "build", "--pip", "six==1.16.0")
        assert "step 2/2 pip install six==1.16.0" in out and "ready" in out
        script = tmp_path / "images_app.py"
        script.write_text(
            "import nbremote as nr\n"
            "base = nr.Image.debian_slim()\n"
            "tools = base.pip_install('idna==3.7')\n"
        )
        out = _cli(running, "build", f"{script}::tools")
        assert "step 1/2 cached" in out and "step 2/2 pip install idna==3.7" in out
        listed = json.loads(_cli(running, "ls", "--json"))
        by_name = {image["name"]: image for image in listed}
        assert by_name["tools"]["built"] and by_name["tools"]["bytes"] > 0
        assert by_name["tools"]["layers"][0]["bytes"] > 1_000_000  # the base venv
        assert "tools" in _cli(running, "ls")
    finally:
        running.stop()

    running = start_runner(data)  # the cache and the definitions survive a restart
    try:
        with running.client() as client:
            started = time.perf_counter()
            resolved = b"".join(client.stream("/api/v1/images/tools/build", method="POST"))
            elapsed = time.perf_counter() - started
        assert b"result: ok" in resolved and b"step 2/2 cached: pip install idna" in resolved
        assert b"Installed" not in resolved
        assert elapsed < 1.0  # ~10 ms when idle; measured in the README
        _cli(running, "rm", "tools")
        remaining = json.loads(_cli(running, "ls", "--json"))
        assert "tools" not in {image["name"] for image in remaining}
        out = _cli(running, "prune", "--keep-bytes", "0")
        assert "removed 1 images" in out
        assert json.loads(_cli(running, "ls", "--json")) == []
        assert [p.name for p in (data / "images" / "layers").iterdir() if p.suffix != ".lock"] == []
    finally:
        running.stop()


def test_runners_sharing_a_data_dir_build_a_layer_once_and_kills_leave_nothing(
    tmp_path: Path,
) -> None:
    data = tmp_path / "shared"
    first, second = start_runner(data), start_runner(data)
    image = nr.Image.debian_slim().env(unique()).pip_install("six==1.16.0")
    logs: dict[str, str] = {}

    def build(running: RunningRunner) -> None:
        with running.client() as client:
            client.request("POST", "/api/v1/images", image.create_request())
            path = f"/api/v1/images/{image.object_id}/build"
            logs[running.url] = b"".join(client.stream(path, method="POST")).decode()

    try:
        threads = [threading.Thread(target=build, args=(r,)) for r in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=100)
        assert all("result: ok" in log for log in logs.values()), logs
        assert sum("+ six==1.16.0" in log for log in logs.values()) == 1, logs  # built once

        # A runner killed in the middle of a step leaves no layer that counts as built.
        slow = image.run_commands("sleep 5")
        with first.client() as client:
            client.request("POST", "/api/v1/images", slow.create_request())
            stream = client.stream(f"/api/v1/images/{slow.object_id}/build", method="POST")
            while b"$ sleep 5" not in next(stream):
                pass
            first.proc.kill()
            first.proc.wait()
        layers = data / "images" / "layers"
        assert list(layers.glob(".tmp-*"))  # the half-built layer is still there...
        with second.client() as client:
            described = client.request("GET", f"/api/v1/images/{slow.object_id}")
            assert described["built"] is False  # ...but does not count
            log = b"".join(client.stream(f"/api/v1/images/{slow.object_id}/build", "POST"))
        assert b"step 4/4 run commands sleep 5" in log and b"result: ok" in log
        assert not list(layers.glob(".tmp-*"))
    finally:
        first.stop()
        second.stop()
