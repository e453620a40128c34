"""HTTP resources of scheduled jobs (routes in ``JOB_ROUTES``, added to the API's).

Thin: the job service (`jobs`) decides. What comes from the URL is looked up, never used as a
path: a job by its name in the service (404 listing the jobs there are), a run by its number
within that job only (so no job's URL reaches another's runs), logs and outputs by the run's
id, which the runner made. Outputs are one frame in the channel's encoding, so the client unpacks
them exactly as a cell's ``done``; the runner only moves the stored bytes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tornado.iostream import StreamClosedError

from nbremote.wire.codec import encode_prefix
from nbremote.wire.jobs import (
    DescribeJob,
    DescribeJobRun,
    ListJobRunsResponse,
    ListJobsResponse,
    RunJob,
)

from .errors import ApiError
from .handlers import API, BaseHandler, Operation
from .job_runs import outputs_frame
from .job_store import ACTIVE, JobRun
from .jobs import Jobs

FOLLOW_POLL = 0.1  # seconds between looks at a followed run's log
NAME = r"(?P<name>[^/]{1,200})"
RUN = r"(?P<run>[0-9]{1,9}|last)"


class JobHandler(BaseHandler):
    """Job resources: the service, and a run looked up within its job."""

    @property
    def jobs(self) -> Jobs:
        return self.runner.jobs

    async def find_run(self, name: str, ref: str) -> JobRun:
        """Run ``ref`` (a number or ``last``) of job ``name``, or a 404 saying which is missing."""
        self.jobs.get(name)
        if ref == "last":
            runs = await self.jobs.store.runs(name, 1)
            found = runs[0] if runs else None
        else:
            found = await self.jobs.store.run(name, int(ref))
        if found is None:
            raise ApiError(404, "NotFound", f"job {name!r} has no run {ref}")
        return found


class JobsHandler(JobHandler):
    api = {"get": Operation("List scheduled jobs", ListJobsResponse)}

    def get(self) -> None:
        described = [self.jobs.describe(job) for _, job in sorted(self.jobs.jobs.items())]
        self.reply(ListJobsResponse(jobs=described))


class JobItemHandler(JobHandler):
    api = {
        "get": Operation("Describe a job", DescribeJob),
        "delete": Operation("Remove a job, its versions, runs, logs and outputs", status=204),
    }

    def get(self, name: str) -> None:
        self.reply(self.jobs.describe(self.jobs.get(name)))

    async def delete(self, name: str) -> None:
        await self.jobs.remove(name)
        self.set_status(204)


class JobPauseHandler(JobHandler):
    api = {"post": Operation("Pause a job (a run in progress goes on)", DescribeJob)}

    async def post(self, name: str) -> None:
        self.reply(await self.jobs.pause(name))


class JobResumeHandler(JobHandler):
    api = {"post": Operation("Resume a job (missed fires are not made up)", DescribeJob)}

    async def post(self, name: str) -> None:
        self.reply(await self.jobs.resume(name))


class JobRunsHandler(JobHandler):
    api = {
        "get": Operation(
            "A job's runs, newest first (?limit=N, 20 by default)", ListJobRunsResponse
        ),
        "post": Operation("Run a job now, params replacing inputs", DescribeJobRun, RunJob, 202),
    }

    async def get(self, name: str) -> None:
        self.jobs.get(name)
        try:
            limit = int(self.get_argument("limit", "20"))
        except ValueError:
            raise ApiError(422, "ValidationError", "limit: a whole number, e.g. 20") from None
        runs = await self.jobs.store.runs(name, max(1, min(limit, 10_000)))
        self.reply(ListJobRunsResponse(runs=[run.describe() for run in runs]))

    def post(self, name: str) -> None:
        request: RunJob = self.parse(RunJob)
        self.reply(self.jobs.run_now(name, request.params), 202)


class JobRunHandler(JobHandler):
    api = {"get": Operation("One run of a job (its number, or 'last')", DescribeJobRun)}

    async def get(self, name: str, run: str) -> None:
        self.reply((await self.find_run(name, run)).describe())


class JobRunLogsHandler(JobHandler):
    api = {"get": Operation("What a run printed (text; ?follow=1 streams until it ends)")}

    async def get(self, name: str, run: str) -> None:
        found = await self.find_run(name, run)
        follow = self.get_argument("follow", "") not in ("", "0", "false")
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        offset = 0
        try:
            while True:
                text, offset = await self.jobs.logs.read(found.id, offset)
                if text:
                    self.write(text)
                    await self.flush()
                if not follow or found.status not in ACTIVE:
                    return
                await asyncio.sleep(FOLLOW_POLL)
                found = await self.jobs.store.run(name, found.number) or found
                if found.status not in ACTIVE:
                    follow = False  # one more read: what it printed last
        except StreamClosedError:
            pass


class JobRunOutputsHandler(JobHandler):
    api = {"get": Operation("A run's outputs: one frame, as a cell's done (octet-stream)")}

    async def get(self, name: str, run: str) -> None:
        found = await self.find_run(name, run)
        if not found.outputs:
            raise ApiError(404, "NotFound", f"run {found.number} of job {name!r} kept no outputs")
        try:
            header, buffers = await outputs_frame(self.jobs.blobs, found)
        except LookupError as exc:
            raise ApiError(404, "NotFound", str(exc)) from None
        self.set_header("Content-Type", "application/octet-stream")
        self.write(encode_prefix(header, buffers))
        for buffer in buffers:
            self.write(bytes(buffer))
        self.finish()


JOB_ROUTES: list[tuple[str, Any]] = [
    (f"{API}/jobs", JobsHandler),
    (f"{API}/jobs/{NAME}", JobItemHandler),
    (f"{API}/jobs/{NAME}/pause", JobPauseHandler),
    (f"{API}/jobs/{NAME}/resume", JobResumeHandler),
    (f"{API}/jobs/{NAME}/runs", JobRunsHandler),
    (f"{API}/jobs/{NAME}/runs/{RUN}", JobRunHandler),
    (f"{API}/jobs/{NAME}/runs/{RUN}/logs", JobRunLogsHandler),
    (f"{API}/jobs/{NAME}/runs/{RUN}/outputs", JobRunOutputsHandler),
]
