"""Scheduled jobs in the runner's SQLite state: jobs, their versions, their runs (schema 2).

Why a module of its own: the job service (`jobs`) decides, this one only turns its records into
rows and back. A promotion and a removal are awaited (`State.write`: on disk before the caller
is answered); run records and cursors are written behind (`State.write_later`), in order, and
a read queued after a write sees it (the state has one thread).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from nbremote.wire.codec import Header
from nbremote.wire.jobs import DescribeJobOutput, DescribeJobRun, JobSettings

from .state import State, Statement

RUN_COLUMNS = (
    "id, job, number, version, status, trigger, scheduled, started, finished, attempt, params, "
    "error, missed, outputs"
)
ACTIVE = ("queued", "running")


@dataclass
class StoredOutput:
    """One output of a run: as the API describes it, and its item (by hash) as a done has it."""

    described: DescribeJobOutput
    item: Header  # {"name", "hash"} (a value in the blob store) or {"name", "module"} ...

    def wire(self) -> dict[str, Any]:
        return {**self.described.model_dump(), "item": self.item}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> StoredOutput:
        item = data.pop("item")
        return cls(DescribeJobOutput.model_validate(data), item)


@dataclass
class JobRun:
    """One record of a job's history (a run, or a skipped or missed fire)."""

    id: str
    job: str
    number: int
    version: int
    status: str
    trigger: str
    scheduled: float | None = None
    started: float | None = None
    finished: float | None = None
    attempt: int = 1
    params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    missed: int = 0
    outputs: list[StoredOutput] = field(default_factory=list)

    def describe(self) -> DescribeJobRun:
        """The run as the API shows it."""
        return DescribeJobRun(
            id=self.id,
            job=self.job,
            number=self.number,
            version=self.version,
            status=self.status,  # type: ignore[arg-type]
            trigger=self.trigger,  # type: ignore[arg-type]
            scheduled=self.scheduled,
            started=self.started,
            finished=self.finished,
            attempt=self.attempt,
            params=self.params,
            error=self.error,
            missed=self.missed,
            outputs=[output.described for output in self.outputs],
        )

    def row(self) -> tuple[Any, ...]:
        outputs = json.dumps([output.wire() for output in self.outputs])
        return (
            self.id,
            self.job,
            self.number,
            self.version,
            self.status,
            self.trigger,
            self.scheduled,
            self.started,
            self.finished,
            self.attempt,
            json.dumps(self.params),
            self.error,
            self.missed,
            outputs,
        )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> JobRun:
        (id_, job, number, version, status, trigger, scheduled, started, finished) = row[:9]
        attempt, params, error, missed, outputs = row[9:]
        return cls(
            id_,
            job,
            number,
            version,
            status,
            trigger,
            scheduled,
            started,
            finished,
            attempt,
            json.loads(params),
            error,
            missed,
            [StoredOutput.from_wire(data) for data in json.loads(outputs)],
        )


@dataclass
class JobRecord:
    """A job as stored: its current version's settings and request."""

    name: str
    kind: str  # 'cell' or 'function'
    app: str | None
    version: int
    settings: JobSettings
    request: Header  # the exec (or call) request each run sends, inputs by hash
    paused: bool
    cursor: float
    created_at: float
    updated_at: float


class JobStore:
    """The job tables of a runner's `State`."""

    def __init__(self, state: State) -> None:
        self.state = state

    async def load(self) -> list[JobRecord]:
        """Every job, at its current version."""
        rows = await self.state.query(
            "SELECT j.name, j.kind, j.app, j.version, v.settings, v.request, j.paused, j.cursor, "
            "j.created_at, j.updated_at FROM jobs j JOIN job_versions v "
            "ON v.job = j.name AND v.version = j.version ORDER BY j.name"
        )
        return [
            JobRecord(
                name,
                kind,
                app,
                version,
                JobSettings.model_validate_json(settings),
                json.loads(request),
                bool(paused),
                cursor,
                created_at,
                updated_at,
            )
            for (
                name,
                kind,
                app,
                version,
                settings,
                request,
                paused,
                cursor,
                created_at,
                updated_at,
            ) in rows
        ]

    async def save_version(self, job: JobRecord) -> None:
        """Store ``job`` as its new current version (on disk once this returns)."""
        statements: list[Statement] = [
            (
                "INSERT INTO job_versions VALUES (?, ?, ?, ?, ?)",
                (
                    job.name,
                    job.version,
                    job.updated_at,
                    job.settings.model_dump_json(),
                    json.dumps(job.request),
                ),
            ),
            (
                "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.name,
                    job.kind,
                    job.app,
                    job.version,
                    int(job.paused),
                    job.cursor,
                    job.created_at,
                    job.updated_at,
                ),
            ),
        ]
        await self.state.write(statements, lambda: None)

    def save_cursor(self, name: str, cursor: float) -> None:
        """Keep the last fire time a job dealt with (written behind)."""
        self.state.write_later("UPDATE jobs SET cursor = ? WHERE name = ?", (cursor, name))

    async def save_paused(self, name: str, paused: bool, cursor: float) -> None:
        """Keep whether a job is paused (on disk once this returns)."""
        sql = "UPDATE jobs SET paused = ?, cursor = ?, updated_at = ? WHERE name = ?"
        await self.state.write([(sql, (int(paused), cursor, time.time(), name))], lambda: None)

    def save_run(self, run: JobRun) -> None:
        """Keep a run record as it is now (written behind)."""
        self.state.write_later(
            f"INSERT OR REPLACE INTO job_runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * 14)})",
            run.row(),
        )

    async def delete(self, name: str) -> None:
        """Forget a job, its versions and its runs (on disk once this returns)."""
        statements: list[Statement] = [
            (f"DELETE FROM {table} WHERE {column} = ?", (name,))
            for table, column in (("job_runs", "job"), ("job_versions", "job"), ("jobs", "name"))
        ]
        await self.state.write(statements, lambda: None)

    async def interrupt_leftovers(self, now: float) -> int:
        """Mark the runs a crash left queued or running as interrupted; how many there were."""
        where = f"status IN {ACTIVE!r}"
        rows = await self.state.query(f"SELECT count(*) FROM job_runs WHERE {where}")
        sql = f"UPDATE job_runs SET status = 'interrupted', finished = ?, error = ? WHERE {where}"
        error = "RunnerStopped: the runner stopped during this run"
        await self.state.write([(sql, (now, error))], lambda: None)
        count: int = rows[0][0]
        return count

    async def runs(self, name: str, limit: int) -> list[JobRun]:
        """A job's latest ``limit`` records, newest first."""
        rows = await self.state.query(
            f"SELECT {RUN_COLUMNS} FROM job_runs WHERE job = ? ORDER BY number DESC LIMIT ?",
            (name, limit),
        )
        return [JobRun.from_row(row) for row in rows]

    async def run(self, name: str, number: int) -> JobRun | None:
        """One record of a job, by number."""
        rows = await self.state.query(
            f"SELECT {RUN_COLUMNS} FROM job_runs WHERE job = ? AND number = ?", (name, number)
        )
        return JobRun.from_row(rows[0]) if rows else None

    async def last_number(self, name: str) -> int:
        """The highest record number a job has had (0: none)."""
        rows = await self.state.query("SELECT max(number) FROM job_runs WHERE job = ?", (name,))
        number: int = rows[0][0] or 0
        return number

    async def hashes_in_use(self) -> set[str]:
        """Every value some job's version or run refers to (the rest of the blob store can go)."""
        used: set[str] = set()
        for (request,) in await self.state.query("SELECT request FROM job_versions"):
            used.update(
                item["hash"] for item in json.loads(request).get("inputs", ()) if "hash" in item
            )
        for (outputs,) in await self.state.query("SELECT outputs FROM job_runs"):
            used.update(o["item"]["hash"] for o in json.loads(outputs) if "hash" in o["item"])
        return used
