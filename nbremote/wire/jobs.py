"""The documents of the runner's HTTP API about scheduled jobs (``/api/v1/jobs``), and the
``job`` of a ``promote`` frame: the rest of the API's models are in `nbremote.wire.http`."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field

from .http import ApiModel

JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
JobName = Annotated[
    str,
    Field(
        pattern=JOB_NAME.pattern,
        description="a job's name: letters, digits, '_', '.', '-' (64 at most, not first)",
    ),
]
JobStatus = Literal["queued", "running", "succeeded", "failed", "interrupted", "skipped", "missed"]


class JobSettings(ApiModel):
    """A job's schedule and run settings, as ``%%remote --schedule`` or ``schedule=`` give them
    (the ``job`` of a ``promote`` frame)."""

    name: JobName
    schedule: dict[str, Any] = Field(
        description="the schedule's wire form: nbremote.wire.schedule (cron or period)"
    )
    retries: int = Field(default=0, ge=0, le=10, description="runs again after a failure")
    timeout: float | None = Field(default=None, gt=0, description="seconds a run may take")
    notify: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]{1,2000}$",
        description="a webhook URL that gets a JSON summary of each failed run",
    )
    notify_on_success: bool = False


class DescribeJobOutput(ApiModel):
    """A value a run left (a name its cell bound, or a function's return value as 'result')."""

    name: str
    type: str
    repr: str = Field(description="its repr, cut to 1000 characters")
    nbytes: int


class DescribeJobRun(ApiModel):
    """One run of a job (or a stretch of missed fires, ``missed`` counting them)."""

    id: str
    job: str
    number: int = Field(description="1, 2, ... per job")
    version: int
    status: JobStatus
    trigger: Literal["schedule", "catch-up", "manual"]
    scheduled: float | None = Field(default=None, description="the fire time it was for")
    started: float | None = None
    finished: float | None = None
    attempt: int = 1
    params: dict[str, Any] = Field(default_factory=dict)
    error: str | None = Field(default=None, description="'Ename: message' of a failed run")
    missed: int = Field(default=0, description="for a 'missed' record: how many fire times")
    outputs: list[DescribeJobOutput] = Field(default_factory=list)


class DescribeJob(ApiModel):
    """A scheduled job: its current version's settings, when it fires next, its last run."""

    name: str
    kind: Literal["cell", "function"]
    version: int
    settings: JobSettings
    schedule: str = Field(description="the schedule in words: '0 2 * * * (Europe/Berlin)'")
    paused: bool
    created_at: float
    updated_at: float
    next_fires: list[str] = Field(description="the next three fire times, ISO 8601, job's zone")
    app: str | None = Field(default=None, description="the deployed app it belongs to")
    gpu: str | None = None
    image: str | None = None
    inputs: list[str] = Field(default_factory=list)
    last_run: DescribeJobRun | None = None


class ListJobsResponse(ApiModel):
    """Every job."""

    jobs: list[DescribeJob]


class ListJobRunsResponse(ApiModel):
    """A job's runs, newest first."""

    runs: list[DescribeJobRun]


class RunJob(ApiModel):
    """``POST /api/v1/jobs/{name}/runs``: run a job now, some inputs replaced for this run."""

    params: dict[str, Any] = Field(
        default_factory=dict, description="input name -> JSON value, for this run only"
    )
