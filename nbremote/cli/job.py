"""``nbremote jobs ls|show|run|pause|resume|rm|logs``: scheduled jobs on the runner.

Each verb is one call of `nbremote.job.Job` (the notebook's ``nr.Job``), so the command line and
the notebook read the same answers the same way.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from ._options import echo_stream, json_option, runner_client, runner_options, usage_errors
from ._utils import display_table, format_when

if TYPE_CHECKING:
    from ..job import Job, JobRun

RUN_COLUMNS = ["RUN", "STATUS", "TRIGGER", "STARTED", "TOOK", "ATTEMPT", "ERROR"]


def parse_param(text: str) -> tuple[str, Any]:
    """``-p k=v``: ``v`` as JSON when it is valid JSON (``0.01``, ``true``, ``[1, 2]``), else as
    the string it is (``-p name=alice``).

    Raises:
        click.BadParameter: no ``=``, or nothing before it.

    Example:
        >>> parse_param("lr=0.01"), parse_param("who=alice")
        (('lr', 0.01), ('who', 'alice'))
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"{text!r} is not NAME=VALUE (e.g. -p lr=0.01)", param_hint="-p")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def _job(name: str, url: str | None, token: str | None) -> Job:
    from ..job import Job

    return Job(name, client=runner_client(url, token))


def _took(run: JobRun) -> str:
    started, finished = run.described.started, run.described.finished
    if started is None or finished is None:
        return "-"
    return f"{finished - started:.1f} s"


def run_row(run: JobRun) -> list[object]:
    """One run as a row of `RUN_COLUMNS`."""
    started = run.described.started
    return [
        run.number,
        run.status + (f" ({run.described.missed})" if run.status == "missed" else ""),
        run.trigger,
        format_when(started) if started is not None else "-",
        _took(run),
        run.attempt,
        run.error or "",
    ]


@click.group()
def jobs() -> None:
    """Scheduled jobs: promoted cells and functions with schedule=."""


@jobs.command("ls")
@runner_options
@json_option
def jobs_ls(url: str | None, token: str | None, as_json: bool) -> None:
    """List jobs: schedule, next fire time, last run, paused."""
    from ..job import JOB_COLUMNS, Job, job_row

    with usage_errors():
        listed = Job.list(client=runner_client(url, token))
    now = datetime.now(UTC)
    display_table(
        JOB_COLUMNS,
        [job_row(job, now) for job in listed],
        [job.model_dump(mode="json") for job in listed],
        as_json,
        empty="no scheduled jobs",
    )


@jobs.command("show")
@click.argument("name")
@runner_options
@json_option
def jobs_show(name: str, url: str | None, token: str | None, as_json: bool) -> None:
    """Show a job: its settings, next fire times and last runs."""
    from ..job import format_fire, zone_of

    job = _job(name, url, token)
    with usage_errors():
        described = job.describe()
        runs = job.runs(limit=10)
    if as_json:
        click.echo(json.dumps(described.model_dump(mode="json"), indent=2))
        return
    now, zone = datetime.now(UTC), zone_of(described)
    fires = [format_fire(datetime.fromisoformat(t), zone, now) for t in described.next_fires]
    settings = described.settings
    lines = {
        "job": f"{described.name} ({described.kind}, version {described.version})",
        "schedule": described.schedule + ("  [paused]" if described.paused else ""),
        "next fires": "; ".join(fires) if fires and not described.paused else "-",
        "app": described.app,
        "inputs": ", ".join(described.inputs),
        "gpu": described.gpu,
        "image": described.image,
        "timeout": f"{settings.timeout:g} s" if settings.timeout else None,
        "retries": settings.retries or None,
        "notify": settings.notify,
    }
    for key, value in lines.items():
        if value not in (None, ""):
            click.echo(f"{key:<11} {value}")
    click.echo()
    display_table(RUN_COLUMNS, [run_row(r) for r in runs], None, False, empty="no runs yet")


@jobs.command("run")
@click.argument("name")
@click.option(
    "-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
    help="Replace an input for this run (VALUE read as JSON if it is, else a string).",
)  # fmt: skip
@click.option("--wait", is_flag=True, help="Wait for the run to end; exit 1 if it failed.")
@runner_options
@json_option
def jobs_run(
    name: str,
    params: tuple[str, ...],
    wait: bool,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Run a job now (its schedule goes on as before)."""
    values = dict(parse_param(text) for text in params)
    with usage_errors():
        run = _job(name, url, token).run(**values)
        if wait:
            run.wait()
    if as_json:
        click.echo(json.dumps(run.described.model_dump(mode="json"), indent=2))
    elif not wait:
        click.echo(f"started run {run.number} of job {name!r} (nbremote jobs logs {name})")
    else:
        took = _took(run)
        click.echo(
            f"run {run.number} of job {name!r} {run.status}"
            + (f" in {took}" if took != "-" else "")
            + (f": {run.error}" if run.error else "")
        )
    if wait and run.status != "succeeded":
        sys.exit(1)


@jobs.command("pause")
@click.argument("name")
@runner_options
def jobs_pause(name: str, url: str | None, token: str | None) -> None:
    """Stop firing a job on schedule (it can still be run by hand)."""
    with usage_errors():
        _job(name, url, token).pause()
    click.echo(f"paused job {name!r}")


@jobs.command("resume")
@click.argument("name")
@runner_options
def jobs_resume(name: str, url: str | None, token: str | None) -> None:
    """Fire a paused job on schedule again."""
    with usage_errors():
        described = _job(name, url, token).resume()
    fires = described.next_fires[:1]
    click.echo(f"resumed job {name!r}" + (f"; next fire {fires[0]}" if fires else ""))


@jobs.command("rm")
@click.argument("name")
@runner_options
def jobs_rm(name: str, url: str | None, token: str | None) -> None:
    """Delete a job with its versions, runs, logs and outputs."""
    with usage_errors():
        _job(name, url, token).delete()
    click.echo(f"deleted job {name!r}")


@jobs.command("logs")
@click.argument("name")
@click.argument("run", required=False, default="last")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the run ends.")
@runner_options
def jobs_logs(name: str, run: str, follow: bool, url: str | None, token: str | None) -> None:
    """Print what a run printed (RUN: its number; default the last run)."""
    from urllib.parse import quote

    if run != "last" and not run.isdigit():
        raise click.BadParameter(f"{run!r}: a run's number, or 'last'", param_hint="RUN")
    path = f"/api/v1/jobs/{quote(name)}/runs/{run}/logs" + ("?follow=1" if follow else "")
    echo_stream(url, token, path)
