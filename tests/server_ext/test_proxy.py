"""The jupyter-server extension against a real runner and a real ``jupyter server``: the runner's
jobs, endpoints, GPUs and sessions under Jupyter's login, never its token, and "no runner" as a
state rather than a crash.

The runner is the shared one of the test run; jobs and endpoints are promoted from a real IPython
shell with ``%%remote``, as a notebook user does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from tests.conftest import RunningRunner, run_python
from tests.server_ext.jupyter import Jupyter, running_jupyter


@pytest.fixture(scope="module")
def jupyter(runner: RunningRunner, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jupyter]:
    """A Jupyter server configured for the shared runner as a user would: its environment."""
    env = {"NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": str(runner.token)}
    with running_jupyter(tmp_path_factory.mktemp("jupyter"), env) as server:
        yield server


def promote(shell: InteractiveShell, line: str, cell: str) -> None:
    shell.run_cell_magic("remote", line, cell)


def test_the_extension_is_enabled_by_the_installed_config_file() -> None:
    """What `pip install` puts in the prefix enables the extension (no command line flag)."""
    config = Path(sys.prefix, "etc", "jupyter", "jupyter_server_config.d", "nbremote.json")
    enabled = json.loads(config.read_text())["ServerApp"]["jpserver_extensions"]
    assert enabled == {"nbremote_server_ext": True}


def test_jobs_and_endpoints_promoted_from_a_notebook_are_listed(
    jupyter: Jupyter, shell: InteractiveShell, runner: RunningRunner
) -> None:
    promote(shell, "--schedule '0 2 * * *' --tz Europe/Berlin --name t-ext-nightly", "x = 1\n")
    promote(shell, "--endpoint POST /hi --name t-ext-hello", "response = {'hi': 1}\n")
    try:
        status, _, jobs = jupyter.fetch("/nbremote/api/jobs")
        assert status == 200
        job = next(j for j in jobs["jobs"] if j["name"] == "t-ext-nightly")
        assert job["schedule"] == "0 2 * * * (Europe/Berlin)"
        assert len(job["next_fires"]) == 3

        status, _, listed = jupyter.fetch("/nbremote/api/endpoints")
        endpoint = next(e for e in listed["endpoints"] if e["name"] == "t-ext-hello")
        assert endpoint["url"] == f"{runner.url}/endpoints/t-ext-hello"
        assert endpoint["token"] is None  # a list never carries tokens

        status, _, one = jupyter.fetch("/nbremote/api/endpoints/t-ext-hello")
        assert status == 200 and one["token"]  # the endpoint's own token, for the copy button

        # The dialog's "try it": the server calls the endpoint with its token.
        tried = jupyter.fetch(
            "/nbremote/api/endpoints/t-ext-hello/try", "POST", body={"path": "/hi", "body": {}}
        )
        assert tried[0] == 200 and tried[2]["status"] == 200
        assert json.loads(tried[2]["body"]) == {"hi": 1}
        outside = {"path": "/hi/../../../api/v1/runner"}  # a path stays under the endpoint
        tried = jupyter.fetch("/nbremote/api/endpoints/t-ext-hello/try", "POST", body=outside)
        assert tried[2]["status"] == 404 and "version" not in tried[2]["body"]
        bad = jupyter.fetch("/nbremote/api/endpoints/t-ext-hello/try", "POST", body={"path": "x"})
        assert bad[0] == 422 and bad[2]["error"]["message"].startswith("path:")

        status, _, gpus = jupyter.fetch("/nbremote/api/gpus")
        assert status == 200 and "gpus" in gpus and "source" in gpus
        status, _, sessions = jupyter.fetch("/nbremote/api/sessions")
        assert status == 200 and sessions["sessions"]

        status, _, described = jupyter.fetch("/nbremote/api/status")
        assert described["connected"] is True and described["url"] == runner.url
        everything = [jobs, listed, one, gpus, sessions, described]
        assert str(runner.token) not in json.dumps(everything)  # never the runner's token
    finally:
        jupyter.fetch("/nbremote/api/jobs/t-ext-nightly", "DELETE")
        jupyter.fetch("/nbremote/api/endpoints/t-ext-hello", "DELETE")


def test_a_job_is_paused_run_and_deleted_from_the_panel(
    jupyter: Jupyter, shell: InteractiveShell
) -> None:
    promote(shell, "--schedule '@daily' --name t-ext-actions", "print('ran', 6 * 7)\n")
    status, _, job = jupyter.fetch("/nbremote/api/jobs/t-ext-actions/pause", "POST")
    assert status == 200 and job["paused"] is True
    status, _, job = jupyter.fetch("/nbremote/api/jobs/t-ext-actions/resume", "POST")
    assert status == 200 and job["paused"] is False

    # A name is one segment of the runner's URL: "t-ext-actions/pause" is a job name (there is
    # none), never a path under the job t-ext-actions.
    status, _, error = jupyter.fetch("/nbremote/api/jobs/t-ext-actions%2Fpause", "DELETE")
    assert status == 404 and "'t-ext-actions/pause'" in error["error"]["message"]
    assert jupyter.fetch("/nbremote/api/jobs/t-ext-actions")[0] == 200

    status, _, run = jupyter.fetch("/nbremote/api/jobs/t-ext-actions/runs", "POST")
    assert status == 202 and run["trigger"] == "manual"
    for _ in range(600):  # until the run ends: its log then holds what it printed
        _, _, runs = jupyter.fetch("/nbremote/api/jobs/t-ext-actions/runs")
        if runs["runs"][0]["status"] not in ("queued", "running"):
            break
    assert runs["runs"][0]["status"] == "succeeded"
    status, kind, log = jupyter.fetch("/nbremote/api/jobs/t-ext-actions/runs/last/logs")
    assert status == 200 and kind.startswith("text/plain") and "ran 42" in log

    assert jupyter.fetch("/nbremote/api/jobs/t-ext-actions", "DELETE")[0] == 204
    status, _, error = jupyter.fetch("/nbremote/api/jobs/t-ext-actions")
    assert status == 404
    assert error["error"]["type"] == "NotFound" and "t-ext-actions" in error["error"]["message"]


def test_nothing_is_answered_without_jupyter_login(jupyter: Jupyter) -> None:
    for path in ("/nbremote/api/jobs", "/nbremote/api/status", "/nbremote/api/events"):
        assert jupyter.fetch(path, token=None)[0] == 403
        assert jupyter.fetch(path, token="not-the-token")[0] == 403
    assert jupyter.fetch("/nbremote/api/jobs/x", "DELETE", token=None)[0] == 403


def test_a_schedule_is_previewed_as_the_magic_reads_it(jupyter: Jupyter) -> None:
    path = "/nbremote/api/schedule-preview?schedule=0+2+*+*+*&tz=Asia/Tokyo"
    status, _, preview = jupyter.fetch(path)
    assert status == 200 and len(preview["next_fires"]) == 3
    assert all(when.endswith("T02:00:00+09:00") for when in preview["next_fires"])

    status, _, error = jupyter.fetch("/nbremote/api/schedule-preview?schedule=61+*+*+*+*")
    assert status == 422 and "minute" in error["error"]["message"]
    status, _, error = jupyter.fetch("/nbremote/api/schedule-preview?schedule=@daily&tz=Mars/Base")
    assert status == 422 and "Mars/Base" in error["error"]["message"]


def test_without_a_runner_the_status_says_so_and_none_is_started(tmp_path: Path) -> None:
    home = tmp_path / "nbremote-home"
    env = {"NBREMOTE_HOME": str(home), "NBREMOTE_URL": "", "NBREMOTE_TOKEN": ""}
    with running_jupyter(tmp_path, env) as server:
        status, _, described = server.fetch("/nbremote/api/status")
        assert status == 200 and described["connected"] is False
        assert "nbremote runner" in described["error"]
        status, _, error = server.fetch("/nbremote/api/jobs")
        assert status == 503 and error["error"]["type"] == "RunnerUnavailable"
    assert not (home / "runner.json").exists()  # looking never starts a runner


def test_the_embedded_runner_is_found_as_the_kernels_find_it(
    tmp_path: Path, nbremote_home: Path
) -> None:
    # What a kernel's first %%remote cell does, in a process of its own (the runner outlives it).
    code = "from nbremote._config import embedded_runner; print(embedded_runner()[0])"
    url = run_python(code, tmp_path, {"NBREMOTE_HOME": str(nbremote_home)}).strip()
    env = {"NBREMOTE_HOME": str(nbremote_home), "NBREMOTE_URL": "", "NBREMOTE_TOKEN": ""}
    with running_jupyter(tmp_path, env) as server:
        status, _, described = server.fetch("/nbremote/api/status")
        assert status == 200 and described["connected"] is True and described["url"] == url
