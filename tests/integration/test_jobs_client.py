"""Scheduled jobs from the notebook and the command line, against a real runner: a cell promoted
with ``%%remote --schedule`` and run by hand, its outputs pulled back, ``%remote jobs``,
``nr.Job``, ``f.schedule`` and ``nbremote jobs``. The schedules here are far off (or a period of
an hour): the runs are started by hand, so nothing waits for a clock."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import nbremote as nr
from nbremote import _session
from nbremote._client import Channel
from nbremote.errors import RunnerError
from tests.conftest import RunningRunner

RUN_TIMEOUT = 120  # seconds a run may take here: a fresh worker starts for it

PROMOTED = """\
print("summing", len(values))
total = int(values.sum()) + offset
label = f"total={total}"
values = None
"""


def promote(shell: InteractiveShell, line: str, cell: str) -> str:
    with capture_output() as captured:
        shell.run_cell_magic("remote", line, cell)
    return captured.stdout


@pytest.fixture
def job_name(request: pytest.FixtureRequest, shell: InteractiveShell) -> Iterator[str]:
    """A job name of this test's own; the job is deleted afterwards."""
    name = "t-" + request.node.name.removeprefix("test_")[:40].replace("_", "-")
    yield name
    with contextlib.suppress(RunnerError):  # the test deleted it, or never made it
        nr.Job(name).delete()


@pytest.fixture
def promoted(shell: InteractiveShell, job_name: str) -> tuple[str, str]:
    """A cell promoted with two inputs (an array and a number); what the magic printed."""
    shell.user_ns.update(values=np.arange(1000), offset=7)
    line = f'--schedule "0 2 * * *" --tz Europe/Berlin --name {job_name}'
    return job_name, promote(shell, line, PROMOTED)


def test_a_promoted_cell_is_stored_not_run(
    shell: InteractiveShell, promoted: tuple[str, str]
) -> None:
    name, printed = promoted
    lines = printed.splitlines()
    assert lines[0] == f"Scheduled job {name!r} (version 1): 0 2 * * * (Europe/Berlin)"
    assert len(lines) == 4 and all(" 02:00 CE" in line for line in lines[1:])  # CET or CEST
    # Nothing ran here: the namespace is as it was.
    assert "total" not in shell.user_ns and "label" not in shell.user_ns
    assert shell.user_ns["values"].sum() == 499500 and shell.user_ns["offset"] == 7
    described = nr.Job(name).describe()
    assert described.kind == "cell" and set(described.inputs) == {"values", "offset"}
    assert described.last_run is None


def test_a_run_of_it_computes_what_the_cell_would(
    shell: InteractiveShell, promoted: tuple[str, str]
) -> None:
    name, _ = promoted
    shell.user_ns["offset"] = 1000  # a change after the promotion is not the job's
    run = nr.Job(name).run().wait(timeout=RUN_TIMEOUT)
    assert run.status == "succeeded", run.error
    assert run.trigger == "manual" and run.number == 1 and run.attempt == 1
    assert run.started is not None and run.finished is not None and run.finished >= run.started
    assert run.outputs["total"] == 499500 + 7
    assert run.outputs["label"] == "total=499507"
    assert run.outputs["values"] is None
    assert "summing 1000" in run.logs()


def test_params_replace_inputs_for_one_run(
    shell: InteractiveShell, promoted: tuple[str, str]
) -> None:
    name, _ = promoted
    job = nr.Job(name)
    assert job.run(offset=-500).wait(timeout=RUN_TIMEOUT).outputs["total"] == 499000
    assert job.run().wait(timeout=RUN_TIMEOUT).outputs["total"] == 499507  # only that run
    with pytest.raises(RunnerError, match="nope") as refused:
        job.run(nope=1)
    assert "offset" in refused.value.message  # the inputs there are
    assert [run.number for run in job.runs()] == [2, 1]


def test_pull_job_binds_the_last_runs_outputs(
    shell: InteractiveShell, promoted: tuple[str, str]
) -> None:
    name, _ = promoted
    with pytest.raises(UsageError, match=f"job {name!r} has not run yet"):
        shell.run_line_magic("remote", f"pull --job {name} total")
    nr.Job(name).run().wait(timeout=RUN_TIMEOUT)
    shell.run_line_magic("remote", f"pull --job {name} total label")
    assert shell.user_ns["total"] == 499507 and shell.user_ns["label"] == "total=499507"
    with pytest.raises(UsageError, match="left no loss; its outputs: label, total, values"):
        shell.run_line_magic("remote", f"pull --job {name} loss")


def test_remote_jobs_lists_it(shell: InteractiveShell, promoted: tuple[str, str]) -> None:
    name, _ = promoted
    nr.Job(name).pause()
    with capture_output() as captured:
        shell.run_line_magic("remote", "jobs")
    header, *rows = captured.stdout.splitlines()
    assert header.split() == ["NAME", "SCHEDULE", "NEXT", "FIRE", "LAST", "RUN", "PAUSED"]
    row = next(row for row in rows if row.startswith(name + " "))
    assert "0 2 * * * (Europe/Berlin)" in row and row.split()[-2:] == ["never", "yes"]


def test_promoting_again_makes_a_new_version(
    shell: InteractiveShell, promoted: tuple[str, str]
) -> None:
    name, _ = promoted
    printed = promote(shell, f"--schedule 'every 1h' --name {name}", "total = offset * 2")
    assert printed.startswith(f"Scheduled job {name!r} (version 2): ")
    assert nr.Job(name).run().wait(timeout=RUN_TIMEOUT).outputs["total"] == 14


def test_an_unchanged_big_input_is_not_sent_again(
    shell: InteractiveShell, job_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []  # bytes of each blobs answer to a need
    original = Channel.send

    def send(self: Channel, header: dict[str, Any], buffers: Any = ()) -> None:
        if header.get("op") == "blobs":
            sent.append(sum(memoryview(b).nbytes for b in buffers))
        original(self, header, buffers)

    monkeypatch.setattr(Channel, "send", send)
    shell.user_ns["big"] = np.ones(4 << 20, dtype=np.uint8)  # 4 MiB
    cell = "size = int(big.sum())"
    promote(shell, f"--schedule @daily --name {job_name}", cell)
    assert len(sent) == 1 and sent[0] >= 4 << 20
    printed = promote(shell, f"--schedule @hourly --name {job_name}", cell)
    assert "(version 2)" in printed
    assert len(sent) == 1  # the runner holds it: no need, no blobs
    assert nr.Job(job_name).run().wait(timeout=RUN_TIMEOUT).outputs["size"] == 4 << 20


def test_a_name_a_deployed_app_holds_is_refused(shell: InteractiveShell) -> None:
    app = nr.App("jobs-held")

    @app.function
    def tick() -> int:
        return 1

    tick.schedule(nr.Period(hours=1), name="t-held")
    try:
        with pytest.raises(UsageError, match=r"job 't-held' was not scheduled: .*taken by"):
            promote(shell, "--schedule @daily --name t-held", "y = 1")
        assert nr.Job("t-held").describe().kind == "function"  # left as it was
    finally:
        _session.current_session().client.call("DELETE", "/api/v1/apps/t-held")


def test_a_name_an_endpoint_holds_is_refused(shell: InteractiveShell) -> None:
    @nr.remote
    def echo(x: int) -> int:
        return x

    echo.serve(name="t-named")
    try:
        with pytest.raises(UsageError, match=r"taken by the endpoint 't-named'"):
            promote(shell, "--schedule @daily --name t-named", "y = 1")
        assert "t-named" not in [job.name for job in nr.Job.list()]
    finally:
        _session.current_session().client.call("DELETE", "/api/v1/apps/t-named")

    # And the other way round: a cell's job holds the name an endpoint asks for.
    promote(shell, "--schedule @daily --name t-named", "y = 1")
    with pytest.raises(RunnerError, match=r"taken by the job 't-named'"):
        echo.serve(name="t-named")
    assert nr.Job("t-named").describe().kind == "cell"
    nr.Job("t-named").delete()


def test_bad_cron_fields_are_named(shell: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="hour 24 is out of 0\N{EN DASH}23"):
        promote(shell, '--schedule "0 24 * * *" --name t-bad-cron', "y = 1")
    with pytest.raises(UsageError, match="--schedule needs --name N"):
        promote(shell, '--schedule "0 2 * * *"', "y = 1")
    with pytest.raises(RunnerError, match="t-bad-cron"):
        nr.Job("t-bad-cron").describe()  # nothing was stored


def test_a_failed_run_says_why_and_keeps_no_outputs(shell: InteractiveShell, job_name: str) -> None:
    promote(shell, f"--schedule @daily --name {job_name}", "raise ValueError('no data today')")
    run = nr.Job(job_name).run().wait(timeout=RUN_TIMEOUT)
    assert run.status == "failed" and run.error == "ValueError: no data today"
    with pytest.raises(
        nr.NbremoteError, match=r"failed \(ValueError: no data today\): it left no outputs"
    ):
        run.outputs  # noqa: B018


def test_a_run_whose_image_does_not_build_fails_with_the_build_log(
    shell: InteractiveShell, job_name: str
) -> None:
    bad = "nbremote-surely-missing-package==1.0"
    promote(shell, f'--pip "{bad}" --schedule @daily --name {job_name}', "x = 1")
    job = nr.Job(job_name)
    for _ in range(2):  # the schedule goes on: the next run tries the build again
        run = job.run().wait(timeout=RUN_TIMEOUT)
        assert run.status == "failed" and run.error.startswith("ImageBuildError: ")
        assert f"pip install {bad}" in run.logs()  # the build's log, in the run's
    assert job.describe().paused is False


def test_a_scheduled_function_runs_and_returns_its_result(shell: InteractiveShell) -> None:
    app = nr.App("jobs-fn")

    @app.function
    def answer() -> dict[str, Any]:
        return {"answer": 42}

    job = answer.schedule(nr.Period(hours=1), name="t-answer")
    try:
        described = job.describe()
        assert described.kind == "function" and described.app == "t-answer"
        assert job.run().wait(timeout=RUN_TIMEOUT).outputs["result"] == {"answer": 42}
    finally:
        _session.current_session().client.call("DELETE", "/api/v1/apps/t-answer")
    with pytest.raises(RunnerError, match="t-answer"):
        job.describe()  # stopping its app ended the job


def test_a_deployed_apps_cron_is_a_job(runner: RunningRunner, tmp_path: Path) -> None:
    script = tmp_path / "nightly_app.py"
    script.write_text(
        "import nbremote as nr\n"
        "app = nr.App('t-deployed')\n"
        "@app.function(schedule=nr.Cron('0 3 * * *', timezone='UTC'))\n"
        "def report():\n"
        "    return 'done'\n"
    )
    deployed = runner.cli("deploy", str(script))
    assert deployed.returncode == 0, deployed.stderr
    try:
        listed = runner.cli("jobs", "ls", "--json")
        jobs = {job["name"]: job for job in json.loads(listed.stdout)}
        assert jobs["t-deployed.report"]["schedule"] == "0 3 * * * (UTC)"
        run = runner.cli("jobs", "run", "t-deployed.report", "--wait", "--json")
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["status"] == "succeeded"
    finally:
        runner.cli("apps", "stop", "t-deployed")


def test_the_cli_lists_runs_pauses_and_deletes(
    runner: RunningRunner, promoted: tuple[str, str]
) -> None:
    name, _ = promoted
    listed = json.loads(runner.cli("jobs", "ls", "--json").stdout)
    assert name in [job["name"] for job in listed]
    shown = json.loads(runner.cli("jobs", "show", name, "--json").stdout)
    assert shown["settings"]["schedule"] == nr.Cron("0 2 * * *", "Europe/Berlin").wire()

    run = runner.cli("jobs", "run", name, "-p", "offset=3", "--wait")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"run 1 of job {name!r} succeeded")
    assert nr.Job(name).last_run().outputs["total"] == 499503  # type: ignore[union-attr]
    assert "summing 1000" in runner.cli("jobs", "logs", name).stdout
    assert "summing 1000" in runner.cli("jobs", "logs", name, "1").stdout
    assert "#1 succeeded" in runner.cli("jobs", "ls").stdout
    table = runner.cli("jobs", "show", name).stdout
    assert "Europe/Berlin" in table and "manual" in table

    assert runner.cli("jobs", "pause", name).stdout == f"paused job {name!r}\n"
    assert nr.Job(name).describe().paused
    assert runner.cli("jobs", "resume", name).stdout.startswith(f"resumed job {name!r}")
    assert not nr.Job(name).describe().paused
    assert runner.cli("jobs", "rm", name).stdout == f"deleted job {name!r}\n"
    missing = runner.cli("jobs", "show", name)
    assert missing.returncode == 2 and name in missing.stderr


def test_the_cli_exits_1_when_a_run_fails(
    runner: RunningRunner, shell: InteractiveShell, job_name: str
) -> None:
    promote(shell, f"--schedule @daily --name {job_name}", "raise RuntimeError('boom')")
    run = runner.cli("jobs", "run", job_name, "--wait")
    assert run.returncode == 1
    assert "failed" in run.stdout and "RuntimeError: boom" in run.stdout
