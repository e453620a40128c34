"""Scheduled jobs: the service the runner holds, and the driver that fires them.

The fire decisions are `scheduler.JobClock`'s (pure, tested apart); this module does the I/O
around them. One asyncio task, the driver, sleeps until the earliest ``wake`` of the unpaused
jobs (woken early by a promotion, pause, resume or removal), asks each due job's clock what to
do, starts runs as tasks of their own (never awaited by the driver: a slow run delays no other
fire) and records skipped and missed fires. Each job's cursor is stored as it moves, so a
restart knows what it missed: on start-up, runs a crash left queued or running are marked
interrupted, then each job's clock ``start`` catches up once (within its grace) or records
what was missed.

Runs themselves (`job_runs`), storage (`job_store`, `job_blobs`), promotion over a channel
(`job_promote`) and the webhook (`job_notify`) live beside this module.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nbremote.wire.codec import Header
from nbremote.wire.http import GpuRequest
from nbremote.wire.jobs import DescribeJob, DescribeJobRun, JobSettings
from nbremote.wire.schedule import Cron, Schedule, from_wire

from .errors import RunnerError
from .job_blobs import BlobStore
from .job_notify import notify
from .job_runs import RunContext, RunLogs, execute
from .job_store import JobRecord, JobRun, JobStore
from .scheduler import Fire, JobClock, Missed, Skip

log = logging.getLogger(__name__)


class JobNotFound(RunnerError):
    """No job of that name (the message lists those there are)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="NotFound")


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def in_words(schedule: Schedule) -> str:
    """``0 2 * * * (Europe/Berlin)`` or ``every 1h 30m``."""
    if isinstance(schedule, Cron):
        return f"{schedule.cron_string} ({schedule.timezone})"
    parts = [(schedule.days, "d"), (schedule.hours, "h"), (schedule.minutes, "m")]
    parts.append((schedule.seconds, "s"))
    return "every " + " ".join(f"{value:g}{unit}" for value, unit in parts if value)


@dataclass
class Job:
    """A job as the service holds it: its record, its clock, its runs in progress."""

    record: JobRecord
    clock: JobClock
    next_number: int
    active: set[asyncio.Task[None]] = field(default_factory=set)
    last: JobRun | None = None

    @property
    def name(self) -> str:
        return self.record.name


class Jobs:
    """Every scheduled job of a runner.

    Args:
        ctx: what runs need (dispatcher, GPU broker, blob store, logs, store).
    """

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.blobs = ctx.blobs
        self.logs = ctx.logs
        self.jobs: dict[str, Job] = {}
        self._wake = asyncio.Event()
        self._driver: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # promotions and removals, one at a time
        self._background: set[asyncio.Task[Any]] = set()
        self.pinned: collections.Counter[str] = collections.Counter()  # promotions' blobs
        # Who else holds a name (an endpoint, say), in words; None: nobody. Set by the service.
        self.held_elsewhere: Callable[[str], str | None] = lambda name: None

    @classmethod
    def create(cls, state: Any, data_dir: Path, dispatcher: Any, gpus: Any) -> Jobs:
        """The jobs of the runner whose data dir is ``data_dir``."""
        root = data_dir / "jobs"
        store = JobStore(state)
        ctx = RunContext(dispatcher, gpus, BlobStore(root / "blobs"), RunLogs(root / "logs"), store)
        return cls(ctx)

    # -- life ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the jobs, mark what a crash cut off, catch up, and start the driver."""
        interrupted = await self.store.interrupt_leftovers(time.time())
        if interrupted:
            log.info("jobs: %d run(s) cut off by the runner's stop marked interrupted", interrupted)
        now = datetime.now(UTC)
        for record in await self.store.load():
            clock = JobClock(from_wire(record.settings.schedule), _utc(record.cursor))
            job = Job(record, clock, await self.store.last_number(record.name) + 1)
            last = await self.store.runs(record.name, 1)
            job.last = last[0] if last else None
            self.jobs[record.name] = job
            if not record.paused:
                self._act(job, clock.start(now))
        self._driver = asyncio.create_task(self._drive())

    async def stop(self) -> None:
        """Stop the driver and every run in progress (their records say interrupted)."""
        if self._driver is not None:
            self._driver.cancel()
        runs = [task for job in self.jobs.values() for task in job.active]
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, *self._background, return_exceptions=True)
        self.blobs.close()
        self.logs.close()

    @property
    def busy(self) -> bool:
        """Whether a run is in progress (the runner is not idle)."""
        return any(job.active for job in self.jobs.values())

    @property
    def scheduled(self) -> bool:
        """Whether a job will fire (or runs now): the runner must not idle out."""
        return self.busy or any(not job.record.paused for job in self.jobs.values())

    # -- the driver ----------------------------------------------------------------------------

    def wake(self) -> None:
        """Have the driver look again now (a job was added, paused, resumed or removed)."""
        self._wake.set()

    async def _drive(self) -> None:
        while True:
            self._wake.clear()
            wake = self._tick(datetime.now(UTC))
            timeout = None if wake is None else (wake - datetime.now(UTC)).total_seconds()
            if timeout is not None and timeout <= 0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _tick(self, now: datetime) -> datetime | None:
        """Fire what is due; the earliest next wake of the unpaused jobs (None: no job)."""
        earliest: datetime | None = None
        for job in list(self.jobs.values()):
            if job.record.paused:
                continue
            try:
                if job.clock.wake <= now:
                    self._act(job, job.clock.tick(now, bool(job.active)))
                wake = job.clock.wake
            except Exception:  # one job's fault must not stop the others' schedules
                log.exception("jobs: firing %s failed", job.name)
                continue
            earliest = wake if earliest is None or wake < earliest else earliest
        return earliest

    def _act(self, job: Job, actions: list[Fire | Skip | Missed]) -> None:
        for action in actions:
            if isinstance(action, Fire):
                trigger = "catch-up" if action.catch_up else "schedule"
                self._fire(job, trigger, action.scheduled.timestamp())
            elif isinstance(action, Skip):
                self._record(job, "skipped", "schedule", action.scheduled.timestamp())
            else:
                record = self._record(job, "missed", "schedule", action.last.timestamp())
                record.missed = action.count
                self.store.save_run(record)
        if actions:
            job.record.cursor = job.clock.cursor.timestamp()
            self.store.save_cursor(job.name, job.record.cursor)

    def _record(self, job: Job, status: str, trigger: str, scheduled: float | None) -> JobRun:
        run = JobRun(
            uuid.uuid4().hex, job.name, job.next_number, job.record.version, status, trigger
        )
        run.scheduled = scheduled
        job.next_number += 1
        job.last = run
        self.store.save_run(run)
        return run

    def _fire(
        self, job: Job, trigger: str, scheduled: float | None, params: dict[str, Any] | None = None
    ) -> JobRun:
        run = self._record(job, "queued", trigger, scheduled)
        run.params = params or {}
        task = asyncio.create_task(self._run(job, job.record, run))
        job.active.add(task)
        task.add_done_callback(job.active.discard)
        return run

    async def _run(self, job: Job, record: JobRecord, run: JobRun) -> None:
        try:
            await execute(self.ctx, record, run)
        finally:
            posting = notify(record.settings, run)
            if posting is not None:
                self._background.add(posting)
                posting.add_done_callback(self._background.discard)

    # -- what the API does ---------------------------------------------------------------------

    def get(self, name: str) -> Job:
        """The job of that name, or `JobNotFound` listing those there are."""
        job = self.jobs.get(name)
        if job is None:
            there = ", ".join(sorted(self.jobs)) or "none"
            raise JobNotFound(
                f"no job {name[:80]!r} on this runner (jobs: {there}); promote a cell with "
                "%%remote --schedule CRON --name NAME"
            )
        return job

    def check_name(self, name: str, app: str | None) -> None:
        """Refuse to replace a job of another owner (a deployed app's, or a cell's), or to take
        a name that something else of the runner holds (an endpoint)."""
        holder = self.held_elsewhere(name)
        if holder is not None:
            raise RunnerError(
                f"the name {name!r} is taken by {holder}: choose another --name",
                kind="Conflict",
            )
        job = self.jobs.get(name)
        if job is None or job.record.app == app:
            return
        owner = f"the deployed app {job.record.app!r}" if job.record.app else "a promoted cell"
        raise RunnerError(
            f"the job name {name!r} is taken by {owner}: choose another --name, or remove it "
            f"first (nbremote jobs rm {name})",
            kind="Conflict",
        )

    async def promote(
        self, settings: JobSettings, kind: str, request: Header, app: str | None = None
    ) -> DescribeJob:
        """Store a new version of a job (its first, or n+1: the runs are kept)."""
        async with self._lock:
            now = time.time()
            old = self.jobs.get(settings.name)
            record = JobRecord(
                name=settings.name,
                kind=kind,
                app=app,
                version=old.record.version + 1 if old else 1,
                settings=settings,
                request=request,
                paused=old.record.paused if old else False,
                cursor=now,
                created_at=old.record.created_at if old else now,
                updated_at=now,
            )
            await self.store.save_version(record)
            clock = JobClock(from_wire(settings.schedule), _utc(now))
            if old is None:
                number = await self.store.last_number(settings.name) + 1
                self.jobs[settings.name] = Job(record, clock, number)
            else:
                old.record, old.clock = record, clock
            self.wake()
            return self.describe(self.jobs[settings.name])

    async def pause(self, name: str) -> DescribeJob:
        """Stop firing a job (a run in progress goes on)."""
        job = self.get(name)
        job.record.paused = True
        await self.store.save_paused(name, True, job.record.cursor)
        self.wake()
        return self.describe(job)

    async def resume(self, name: str) -> DescribeJob:
        """Fire a paused job again; the times that passed meanwhile are neither run nor kept."""
        job = self.get(name)
        job.clock.resume(datetime.now(UTC))
        job.record.paused = False
        job.record.cursor = job.clock.cursor.timestamp()
        await self.store.save_paused(name, False, job.record.cursor)
        self.wake()
        return self.describe(job)

    async def remove(self, name: str) -> None:
        """Remove a job with its versions, runs, logs and outputs (runs in progress stop)."""
        async with self._lock:
            job = self.get(name)
            del self.jobs[name]
            for task in job.active:
                task.cancel()
            await asyncio.gather(*job.active, return_exceptions=True)
            run_ids = [run.id for run in await self.store.runs(name, 1 << 30)]
            await self.store.delete(name)
            self.logs.remove(run_ids)
            await self.collect()
            self.wake()

    async def collect(self) -> None:
        """Delete the blobs no job refers to any more (those of runs in progress are kept)."""
        if self.busy:
            return  # a run's parameters are blobs of their own: collect another time
        wanted = await self.store.hashes_in_use()
        await self.blobs.collect(wanted | set(self.pinned))

    def run_now(self, name: str, params: dict[str, Any]) -> DescribeJobRun:
        """Start a run now, ``params`` replacing inputs of those names for this run.

        Raises:
            JobNotFound: no such job.
            RunnerError: a parameter names no input of the job (400, listing them).
        """
        job = self.get(name)
        inputs = [item["name"] for item in job.record.request.get("inputs", ())]
        unknown = [key for key in params if key not in inputs and job.record.kind == "cell"]
        if unknown:
            raise RunnerError(
                f"job {name!r} has no input {unknown[0]!r} (its inputs: "
                f"{', '.join(inputs) or 'none'}): a parameter replaces an input of the cell",
                kind="BadRequest",
                status=400,
            )
        return self._fire(job, "manual", None, params).describe()

    def describe(self, job: Job) -> DescribeJob:
        """A job as the API shows it."""
        record = job.record
        after = datetime.now(UTC) if record.paused else job.clock.cursor
        fires = [when.isoformat() for when in job.clock.schedule.next_fires(after, 3)]
        spec = record.request.get("spec") or {}
        return DescribeJob(
            name=record.name,
            kind=record.kind,  # type: ignore[arg-type]
            version=record.version,
            settings=record.settings,
            schedule=in_words(job.clock.schedule),
            paused=record.paused,
            created_at=record.created_at,
            updated_at=record.updated_at,
            next_fires=fires,
            app=record.app,
            gpu=_gpu_words(spec.get("gpu")),
            image=spec.get("image"),
            inputs=[
                item["name"] for item in record.request.get("inputs", ()) if record.kind == "cell"
            ],
            last_run=job.last.describe() if job.last else None,
        )


def _gpu_words(gpu: Any) -> str | None:
    if not gpu:
        return None
    with contextlib.suppress(ValueError, TypeError):
        return str(GpuRequest.model_validate(gpu))
    return None
