"""What the job API refuses: promotions with a bad schedule, zone or name, inputs whose bytes
lie about their hash or whose hash is a path (nothing is stored, and the notebook is told why);
job names and run numbers in URLs that try to reach files or another job's runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import RunningRunner
from tests.integration.jobs_helpers import (
    api,
    channel_of,
    cron,
    error_of,
    finished,
    period,
    promote,
)

CODE = "y = x + 1"


@pytest.fixture
def name(runner: RunningRunner) -> Iterator[str]:
    job = f"s-{uuid.uuid4().hex[:8]}"
    yield job
    if job in job_names(runner):
        api(runner, "DELETE", f"/jobs/{job}")


def job_names(runner: RunningRunner) -> list[str]:
    return [job["name"] for job in api(runner, "GET", "/jobs")["jobs"]]


def refused(runner: RunningRunner, job: dict[str, Any], values: Any = None) -> dict[str, Any]:
    with channel_of(runner) as channel:
        done, _ = promote(channel, CODE, values or {"x": 1}, job, ["y"])
    assert done["ok"] is False, done
    error: dict[str, Any] = done["error"]
    return error


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        (cron("61 * * * *"), "minute 61 is out of 0"),
        (cron("0 2 * *"), "has 4 fields"),
        (cron("0 2 * * *", "Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (period(0), "zero length"),
        ({"kind": "hourly"}, "unknown schedule kind 'hourly'"),
    ],
)
def test_a_bad_schedule_is_refused_naming_what_is_wrong_and_nothing_is_stored(
    runner: RunningRunner, name: str, schedule: dict[str, Any], says: str
) -> None:
    error = refused(runner, {"name": name, "schedule": schedule})
    assert error["ename"] == "ValueError" and says in error["evalue"]
    assert name not in job_names(runner)


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "-x", "x" * 65, "a b"])
def test_a_bad_name_is_refused_naming_the_rule(runner: RunningRunner, bad: str) -> None:
    error = refused(runner, {"name": bad, "schedule": period(60)})
    assert error["ename"] == "ValidationError"
    assert error["evalue"].startswith("job settings: name: ")
    assert bad not in job_names(runner)


def test_an_input_whose_bytes_lie_about_its_hash_is_refused_and_not_kept(
    runner: RunningRunner, name: str
) -> None:
    values = {"x": 12345}
    job = {"name": name, "schedule": period(60)}

    def flip(buffers: list[Any]) -> list[Any]:
        return [b"\x80\x05K\x07." for _ in buffers]  # pickle of 7, claimed to be 12345's hash

    with channel_of(runner) as channel:
        done, _ = promote(channel, CODE, values, job, ["y"], tamper=flip)
        assert done["ok"] is False and "does not hash to" in done["error"]["evalue"]
        assert name not in job_names(runner)
        honest, frames = promote(channel, CODE, values, job, ["y"])
    assert honest["ok"], honest
    assert frames[0]["op"] == "need"  # the lying bytes were not kept under that hash


def test_an_input_hash_that_is_a_path_is_refused(runner: RunningRunner, name: str) -> None:
    with channel_of(runner) as channel:
        cell = {
            "op": "exec",
            "id": "p",
            "code": CODE,
            "inputs": [{"name": "x", "hash": "../../state.db", "nbuf": 0}],
            "outputs": ["y"],
        }
        channel.send(
            {
                "op": "promote",
                "id": "p",
                "cell": cell,
                "job": {"name": name, "schedule": period(60)},
            }
        )
        done, _ = channel.recv()
    assert done["ok"] is False and "is not a content hash" in done["error"]["evalue"]
    assert name not in job_names(runner)


def test_a_name_that_is_a_path_in_a_url_reaches_no_file(runner: RunningRunner) -> None:
    for path in ("/jobs/..%2F..%2Fstate.db", "/jobs/a%2Fb/runs", "/jobs/..%2Fx/runs/1/logs"):
        message = error_of(runner, "GET", path)
        assert "no job" in message or "no route" in message, message


def test_a_jobs_url_never_reaches_another_jobs_runs(runner: RunningRunner, name: str) -> None:
    other = f"{name}-other"
    with channel_of(runner) as channel:
        for job in (name, other):
            assert promote(channel, CODE, {"x": 1}, {"name": job, "schedule": period(3600)}, ["y"])[
                0
            ]["ok"]
    try:
        api(runner, "POST", f"/jobs/{name}/runs", {})
        number = finished(runner, name, 1)[0]["number"]
        for tail in ("", "/logs", "/outputs"):
            message = error_of(runner, "GET", f"/jobs/{other}/runs/{number}{tail}")
            assert f"job {other!r} has no run {number}" in message
        assert "no route" in error_of(runner, "GET", f"/jobs/{name}/runs/..%2F1/outputs")
    finally:
        api(runner, "DELETE", f"/jobs/{other}")


def test_a_parameter_that_is_not_an_input_is_refused(runner: RunningRunner, name: str) -> None:
    with channel_of(runner) as channel:
        assert promote(channel, CODE, {"x": 1}, {"name": name, "schedule": period(3600)}, ["y"])[0][
            "ok"
        ]
    message = error_of(runner, "POST", f"/jobs/{name}/runs", {"params": {"__import__": "os"}})
    assert "no input '__import__'" in message
    assert api(runner, "GET", f"/jobs/{name}/runs")["runs"] == []
