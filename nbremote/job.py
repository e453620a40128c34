"""Scheduled jobs on the runner (``nr.Job``) and their runs (`JobRun`).

A job is a promoted cell (``%%remote --schedule``) or a deployed function with ``schedule=``;
the runner fires it, keeps each run's status, times, output and values. This module is the
notebook's (and the CLI's) view of them, through the runner's REST API, one call per method.
A run's values come as one frame in the channel's encoding, unpacked exactly as a cell's
``done`` outputs are (`nbremote._namespace.unpack`), streamed into their buffers.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote
from zoneinfo import ZoneInfo

from .errors import NbremoteError, RunnerError
from .wire.jobs import DescribeJob, DescribeJobRun, ListJobRunsResponse, ListJobsResponse, RunJob

if TYPE_CHECKING:
    from ._client import RunnerClient

FINISHED = frozenset({"succeeded", "failed", "interrupted", "skipped", "missed"})
POLL_S = 0.2  # how often `JobRun.wait` asks


def _default_client() -> RunnerClient:
    from . import _session

    return _session.current_session().client


def _when(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp).astimezone()


class JobRun:
    """One run of a job: its status and times now, its output and values once it ends.

    Example:
        >>> run = nr.Job("nightly").run(lr=0.01).wait(timeout=600)  # doctest: +SKIP
        >>> run.status, run.outputs["loss"]  # doctest: +SKIP
        ('succeeded', 0.12)
    """

    def __init__(self, described: DescribeJobRun, client: RunnerClient) -> None:
        self.described = described
        self._client = client
        self._outputs: dict[str, Any] | None = None
        self.unloadable: dict[str, str] = {}  # outputs that cannot live here: name -> why

    def __repr__(self) -> str:
        return f"<nbremote.JobRun {self.job!r} #{self.number} {self.status}>"

    @property
    def job(self) -> str:
        """The job's name."""
        return self.described.job

    @property
    def number(self) -> int:
        """1, 2, ... per job."""
        return self.described.number

    @property
    def status(self) -> str:
        """queued, running, succeeded, failed, interrupted, skipped or missed."""
        return self.described.status

    @property
    def trigger(self) -> str:
        """What started it: schedule, catch-up or manual."""
        return self.described.trigger

    @property
    def attempt(self) -> int:
        """1, or more when a failed run was tried again (``--retries``)."""
        return self.described.attempt

    @property
    def error(self) -> str | None:
        """``Ename: message`` of a failed run."""
        return self.described.error

    @property
    def scheduled(self) -> datetime | None:
        """The fire time it was for (None: run by hand)."""
        return _when(self.described.scheduled)

    @property
    def started(self) -> datetime | None:
        """When it started (local time, aware)."""
        return _when(self.described.started)

    @property
    def finished(self) -> datetime | None:
        """When it ended (local time, aware); None while it runs."""
        return _when(self.described.finished)

    @property
    def done(self) -> bool:
        """Whether it has ended (whichever way)."""
        return self.status in FINISHED

    def _path(self, tail: str = "") -> str:
        return f"/api/v1/jobs/{quote(self.job)}/runs/{self.number}{tail}"

    def refresh(self) -> JobRun:
        """Ask the runner for its status now (this object is updated, and returned)."""
        self.described = self._client.call("GET", self._path(), response=DescribeJobRun)
        return self

    def wait(self, timeout: float | None = None) -> JobRun:
        """Wait until it ends (whichever way); this run, updated.

        Raises:
            TimeoutError: it still runs after ``timeout`` seconds (it goes on).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.refresh().done:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"run {self.number} of job {self.job!r} is still {self.status} after "
                    f"{timeout:g} s; it goes on (wait again, or `nbremote jobs logs {self.job}`)"
                )
            time.sleep(POLL_S)
        return self

    def logs(self) -> str:
        """What it printed (stdout and stderr, in order), so far."""
        return b"".join(self._client.stream(self._path("/logs"))).decode(errors="replace")

    def follow_logs(self) -> Iterator[str]:
        """What it prints, as it comes, until it ends."""
        for chunk in self._client.stream(self._path("/logs?follow=1")):
            yield chunk.decode(errors="replace")

    @property
    def outputs(self) -> dict[str, Any]:
        """The values it left (the names its cell bound; a function's return as ``result``),
        fetched once. Those that cannot be unpickled here are in `unloadable`.

        Raises:
            NbremoteError: it has not ended, or kept no values (it failed, say).
        """
        if self._outputs is None:
            self._outputs = self._fetch_outputs()
        return self._outputs

    def _fetch_outputs(self) -> dict[str, Any]:
        from ._namespace import unpack

        if not self.done:
            self.refresh()
        if not self.done:
            raise NbremoteError(
                f"run {self.number} of job {self.job!r} is {self.status}: its outputs come "
                "once it ends (.wait() first)"
            )
        if self.status != "succeeded":
            raise NbremoteError(
                f"run {self.number} of job {self.job!r} {self.status}"
                + (f" ({self.error})" if self.error else "")
                + ": it left no outputs"
            )
        header, buffers = read_frame(self._client.stream(self._path("/outputs")))
        values, failed = unpack(header.get("outputs") or [], buffers, {})
        self.unloadable = failed
        return values


class _Chunks:
    """A socket's ``recv``/``recv_into`` over an answer's chunks, so that `FrameReader` reads
    the body straight into each buffer (a big output is never held twice)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._rest = memoryview(b"")

    def recv(self, size: int) -> bytes:
        if not self._rest:
            self._rest = memoryview(next(self._chunks, b""))
        data, self._rest = self._rest[:size], self._rest[size:]
        return bytes(data)

    def recv_into(self, view: memoryview) -> int:
        data = self.recv(len(view))
        view[: len(data)] = data
        return len(data)


def read_frame(chunks: Iterator[bytes]) -> tuple[dict[str, Any], list[bytearray]]:
    """The one frame an answer's body holds (``nbremote.wire.codec`` encoding).

    Raises:
        RunnerError: the body is not one whole frame.
    """
    import socket

    from .wire.codec import FrameReader

    try:
        return FrameReader(cast(socket.socket, _Chunks(chunks))).read()
    except (ConnectionError, ValueError) as exc:
        raise RunnerError(
            "UnexpectedAnswer", f"a run's outputs are not one whole frame ({exc})"
        ) from None


class Job:
    """A scheduled job on the runner, by name.

    Args:
        name: the job's name (``%%remote --schedule ... --name N``, ``f.schedule(..., name=N)``,
            or ``"{app}.{function}"`` for a deployed function with ``schedule=``).

    Example:
        >>> job = nr.Job("nightly")  # doctest: +SKIP
        >>> job.run().wait().outputs  # doctest: +SKIP
        {'total': 42}
    """

    def __init__(self, name: str, *, client: RunnerClient | None = None) -> None:
        self.name = name
        self._given_client = client

    def __repr__(self) -> str:
        return f"<nbremote.Job {self.name!r}>"

    @property
    def _client(self) -> RunnerClient:
        return self._given_client or _default_client()

    def _path(self, tail: str = "") -> str:
        return f"/api/v1/jobs/{quote(self.name)}{tail}"

    @classmethod
    def list(cls, *, client: RunnerClient | None = None) -> list[DescribeJob]:
        """Every job on the runner, described."""
        listed = (client or _default_client()).call(
            "GET", "/api/v1/jobs", response=ListJobsResponse
        )
        return listed.jobs

    def describe(self) -> DescribeJob:
        """Its settings, schedule, next fire times and last run.

        Raises:
            RunnerError: (``NotFound``) there is no such job (the message lists those there are).
        """
        return self._client.call("GET", self._path(), response=DescribeJob)

    def runs(self, limit: int = 20) -> builtins.list[JobRun]:
        """Its last ``limit`` runs, newest first."""
        listed = self._client.call(
            "GET", self._path(f"/runs?limit={int(limit)}"), response=ListJobRunsResponse
        )
        return [JobRun(run, self._client) for run in listed.runs]

    def last_run(self) -> JobRun | None:
        """Its newest run (None: it has not run yet)."""
        last = self.describe().last_run
        return None if last is None else JobRun(last, self._client)

    def run(self, **params: Any) -> JobRun:
        """Run it now; ``params`` replace the cell's inputs of those names for this run only
        (keyword arguments, for a function's job). Returns at once: ``.wait()`` for the end.

        Raises:
            TypeError: a parameter's value is not JSON (numbers, strings, lists, dicts...).
            RunnerError: the job does not read an input of that name (the message lists them).
        """
        for key, value in params.items():
            try:
                json.dumps(value)
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"Job.run({key}=...): a parameter travels as JSON ({exc}); pass numbers, "
                    "strings, lists or dicts, or promote the cell again with the new value"
                ) from None
        body = RunJob(params=params)
        started = self._client.call("POST", self._path("/runs"), body, response=DescribeJobRun)
        return JobRun(started, self._client)

    def pause(self) -> DescribeJob:
        """Stop firing it on schedule (it can still be run by hand)."""
        return self._client.call("POST", self._path("/pause"), response=DescribeJob)

    def resume(self) -> DescribeJob:
        """Fire it on schedule again."""
        return self._client.call("POST", self._path("/resume"), response=DescribeJob)

    def delete(self) -> None:
        """Delete it, with its versions, runs, logs and outputs."""
        self._client.call("DELETE", self._path())


# -- how jobs are shown (the magics' and the CLI's) ---------------------------------------

JOB_COLUMNS = ["NAME", "SCHEDULE", "NEXT FIRE", "LAST RUN", "PAUSED"]


def zone_of(job: DescribeJob) -> ZoneInfo:
    """The zone a job's times are shown in: its cron's (a period's are UTC)."""
    return ZoneInfo(job.settings.schedule.get("timezone") or "UTC")


def format_fire(when: datetime, zone: ZoneInfo, now: datetime | None = None) -> str:
    """A fire time for people, in ``zone``: ``Tue 2026-03-03 02:00 CET (in 5 h)``.

    Example:
        >>> now = datetime.fromisoformat("2026-03-03T00:00:00+00:00")
        >>> format_fire(datetime.fromisoformat("2026-03-03T02:00:00+01:00"), ZoneInfo("UTC"), now)
        'Tue 2026-03-03 01:00 UTC (in 1 h)'
    """
    local = when.astimezone(zone)
    shown = local.strftime("%a %Y-%m-%d %H:%M" + (":%S" if local.second else "") + " %Z")
    return shown if now is None else f"{shown} ({format_in(when, now)})"


def format_in(when: datetime, now: datetime) -> str:
    """How far ahead a time is: ``in 40 s``, ``in 12 min``, ``in 5 h``, ``in 3 d``."""
    seconds = (when - now).total_seconds()
    if seconds < 0:
        return "due"
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"in {seconds / length:.0f} {unit}"
    return f"in {seconds:.0f} s"


def job_row(job: DescribeJob, now: datetime) -> list[str]:
    """One job as a row of `JOB_COLUMNS`."""
    upcoming = (
        format_fire(datetime.fromisoformat(job.next_fires[0]), zone_of(job), now)
        if job.next_fires and not job.paused
        else "-"
    )
    last = job.last_run
    ran = "never" if last is None else f"#{last.number} {last.status}"
    return [job.name, job.schedule, upcoming, ran, "yes" if job.paused else "no"]


def pull(name: str, names: list[str], client: RunnerClient | None = None) -> dict[str, Any]:
    """The values ``names`` of job ``name``'s last run (``%remote pull --job``).

    Raises:
        NbremoteError: it has not run, its last run left no values, or lacks one of ``names``
            (the message lists those it has).
    """
    job = Job(name, client=client)
    last = job.last_run()
    if last is None:
        raise NbremoteError(f"job {name!r} has not run yet: nr.Job({name!r}).run() runs it now")
    outputs = last.outputs
    missing = [n for n in names if n not in outputs]
    if missing:
        why = "; ".join(f"{n}: {last.unloadable[n]}" for n in missing if n in last.unloadable)
        have = ", ".join(sorted(n for n in outputs if n != "_")) or "none"
        raise NbremoteError(
            f"run {last.number} of job {name!r} left no {', '.join(missing)}"
            + (f" ({why})" if why else "")
            + f"; its outputs: {have}"
        )
    return {n: outputs[n] for n in names}
