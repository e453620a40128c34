"""The runner's durable state: a SQLite file in its data dir, written off the event loop.

It keeps the record of every cell run (who, when, how it ended), the contents of named Dicts
and Queues, and the names of volumes, so that they survive a restart. Writes go through a single
thread: SQLite connections are not shared between threads, and the event loop never waits on the
disk.

A write that is answered to a caller (a Dict put, a Queue get) is awaited with `State.write`,
which returns once its transaction is on disk (WAL, ``synchronous=FULL``: it survives a kill -9
and a power cut). Group commit keeps that fast: every write queued while one transaction commits
goes into the next one, so a thousand concurrent puts cost a few fsyncs, not a thousand. Each
write brings an ``undo`` of its in-memory change: when a transaction fails, the state undoes the
failed writes (and any queued behind them) newest first, so what the runner holds in memory is
again exactly what is on disk, and their callers get `WriteFailed` instead of an answer.

The schema is versioned (``PRAGMA user_version``) so that a data dir survives upgrades: opening
the database applies, in order, each of `MIGRATIONS` it has not had yet, each in its own
transaction together with the bump of its version, so a migration that fails leaves the database
as it was. Migration 1 is the schema from before versioning: a database with its tables and
version 0 was made by such a runner, and is checked, then taken as version 1. A database newer
than this code is refused (an older runner would misread it), naming both versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RunnerError

log = logging.getLogger(__name__)

Statement = tuple[str, tuple[Any, ...]]

# The tables as runners made them before the schema had a version. Never edit a migration that
# has shipped: data dirs were made with it; add the next one to MIGRATIONS instead.
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    session TEXT NOT NULL,
    notebook TEXT,
    op TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT
);
CREATE TABLE IF NOT EXISTS apps (
    name TEXT PRIMARY KEY,
    deployed_at REAL NOT NULL,
    document TEXT NOT NULL            -- the DeployApp request, payloads included
);
CREATE TABLE IF NOT EXISTS stores (
    name TEXT NOT NULL,
    kind TEXT NOT NULL,               -- 'dict' or 'queue'
    PRIMARY KEY (kind, name)
);
CREATE TABLE IF NOT EXISTS store_items (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    key BLOB NOT NULL,                -- a Dict's pickled key; a Queue's position, big-endian
    value BLOB NOT NULL,              -- the pickled value's parts, back to back
    sizes TEXT NOT NULL,              -- their lengths, as JSON
    PRIMARY KEY (kind, name, key)
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    id TEXT NOT NULL,                 -- its folder under volumes/ (versions live in files there)
    created_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Migration:
    """One step of the schema: the SQL that takes a database from ``version - 1`` to ``version``.

    Args:
        version: the schema version once applied (1, 2, ... in order).
        summary: what it changes, for the error should it fail.
        sql: its statements, separated by ``;``.
    """

    version: int
    summary: str
    sql: str


# Scheduled jobs (runner/jobs.py): a job, each version promoted under its name, and its runs.
# Values (inputs, outputs) live in the job blob store (runner/job_blobs.py), named by hash here.
SCHEMA_V2 = """
CREATE TABLE jobs (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,               -- 'cell' or 'function'
    app TEXT,                         -- the deployed app of a function job
    version INTEGER NOT NULL,         -- its current version
    paused INTEGER NOT NULL,
    cursor REAL NOT NULL,             -- the last fire time dealt with (Unix time)
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE job_versions (
    job TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at REAL NOT NULL,
    settings TEXT NOT NULL,           -- JobSettings, as JSON
    request TEXT NOT NULL,            -- the exec (or call) request a run sends, inputs by hash
    PRIMARY KEY (job, version)
);
CREATE TABLE job_runs (
    id TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    number INTEGER NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    trigger TEXT NOT NULL,
    scheduled REAL,
    started REAL,
    finished REAL,
    attempt INTEGER NOT NULL,
    params TEXT NOT NULL,             -- JSON
    error TEXT,
    missed INTEGER NOT NULL,
    outputs TEXT NOT NULL,            -- JSON: [{name, type, repr, nbytes, item}] (item: by hash)
    UNIQUE (job, number)
);
"""

# Web endpoints (runner/endpoints.py): how each is served is read from its app's deployed
# settings; kept here is what a redeploy or a restart must not change, its token above all.
SCHEMA_V3 = """
CREATE TABLE endpoints (
    name TEXT PRIMARY KEY,            -- a label, or '{app}/{function}'
    app TEXT NOT NULL,
    function TEXT NOT NULL,
    token TEXT NOT NULL,              -- its bearer token (the data dir is the runner's own)
    created_at REAL NOT NULL
);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "runs, apps, Dicts and Queues, volumes", SCHEMA_V1),
    Migration(2, "scheduled jobs, their versions and runs", SCHEMA_V2),
    Migration(3, "web endpoints and their tokens", SCHEMA_V3),
)


class StateError(RunnerError, ValueError):
    """The data dir's database cannot be used by this runner (too new, foreign, or a migration
    failed); the runner does not start. A ValueError: the CLI shows it as a usage error."""


class WriteFailed(RunnerError):
    """A write could not be committed; nothing of it was kept, on disk or in memory."""


@dataclass
class _Write:
    statements: list[Statement]
    undo: Callable[[], None] | None = None
    done: asyncio.Future[None] | None = None  # resolved on the event loop once committed
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)


class State:
    """The runner's SQLite database."""

    def __init__(self, path: Path) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbremote-state")
        self._path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # guards the three fields below (loop and state thread)
        self._queued: list[_Write] = []  # writes for the next transaction, in order
        self._flush_queued = False  # a _commit_queued is waiting in the executor
        self._failed = False  # a transaction failed; no other starts until the loop undid it

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _open(self) -> None:
        # isolation_level=None: transactions are begun and committed here, explicitly.
        self._db = sqlite3.connect(self._path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is fsynced before its writers are answered (NORMAL would lose the last
        # transactions on a power cut); group commit pays for it (bench/bench_stores.py).
        self._db.execute("PRAGMA synchronous=FULL")
        migrate(self._db, self._path, MIGRATIONS)

    async def open(self) -> None:
        """Open (creating if needed) the database file and bring its schema up to date.

        Raises:
            StateError: the database is newer than this runner, was not made by a runner, or a
                migration failed (it is left at the version it had).
        """
        await self._call(self._open)

    def _execute(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        assert self._db is not None
        with self._db:
            return self._db.execute(sql, params).fetchall()

    # -- writes ----------------------------------------------------------------------------------

    def _enqueue(self, write: _Write) -> None:
        with self._lock:
            self._queued.append(write)
            if self._flush_queued:
                return  # the waiting transaction takes this write too
            self._flush_queued = True
        self._executor.submit(self._commit_queued)

    def write(self, statements: list[Statement], undo: Callable[[], None]) -> asyncio.Future[None]:
        """Queue ``statements`` for the next transaction (with whatever else is queued) now; the
        future resolves once they are on disk. ``undo`` reverts the caller's in-memory change,
        should they fail: queue the write right after making the change, with no await between
        (failed writes are undone newest first).

        The future raises `WriteFailed` when the transaction failed (the disk is full, say);
        ``undo`` has run by then.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._enqueue(_Write(statements, undo, done, loop))
        return done

    def write_later(self, sql: str, params: tuple[Any, ...]) -> None:
        """Queue a write and return at once (for records nobody was promised: run history);
        closing the state still performs every queued write."""
        self._enqueue(_Write([(sql, params)]))

    def _commit_queued(self) -> None:
        """In the state thread: commit every queued write in one transaction, then answer
        their writers (on their loop)."""
        with self._lock:
            self._flush_queued = False
            if self._failed:
                return  # the loop fails these too, once it has undone the failed ones
            batch, self._queued = self._queued, []
        if not batch:
            return
        loop = next((write.loop for write in batch if write.loop is not None), None)
        try:
            self._transaction(batch)
        except Exception as exc:  # whatever it is, every writer must hear of it
            log.error("state: a transaction of %d writes failed: %s", len(batch), exc)
            if loop is None:
                return  # only write_later records: no memory to undo, nobody waits
            with self._lock:
                self._failed = True
            self._tell(loop, functools.partial(self._undo, batch, exc))
            return
        if loop is not None:
            self._tell(loop, functools.partial(self._resolve, batch))

    def _transaction(self, batch: list[_Write]) -> None:
        assert self._db is not None
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for write in batch:
                for sql, params in write.statements:
                    self._db.execute(sql, params)
            self._db.execute("COMMIT")
        except sqlite3.Error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    @staticmethod
    def _tell(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left to answer
            loop.call_soon_threadsafe(callback)

    @staticmethod
    def _resolve(batch: list[_Write]) -> None:
        for write in batch:
            if write.done is not None and not write.done.done():
                write.done.set_result(None)

    def _undo(self, batch: list[_Write], exc: Exception) -> None:
        """On the loop: revert the failed writes and those queued behind them (built on their
        in-memory changes), newest first, and fail their writers."""
        with self._lock:
            failed, self._queued = batch + self._queued, []
            self._failed = False
        for write in reversed(failed):
            if write.undo is not None:
                write.undo()
        error = WriteFailed(
            f"the runner could not save to {self._path}: {exc}; nothing was changed "
            "(free disk space or fix the data dir's permissions, then retry)"
        )
        for write in failed:
            if write.done is not None and not write.done.done():
                write.done.set_exception(error)

    # -- reads -----------------------------------------------------------------------------------

    async def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query, read off the event loop."""
        rows: list[tuple[Any, ...]] = await self._call(self._execute, sql, params)
        return rows

    def record_run(
        self,
        run_id: str,
        session: str,
        notebook: str | None,
        op: str,
        started: float,
        finished: float,
        ok: bool,
        error: str | None,
    ) -> None:
        """Keep the record of one finished request."""
        self.write_later(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, session, notebook, op, started, finished, int(ok), error),
        )

    async def count_runs(self) -> int:
        """How many requests this runner has ever served."""
        rows = await self.query("SELECT count(*) FROM runs")
        count: int = rows[0][0]
        return count

    async def close(self) -> None:
        """Close the database and its thread."""
        if self._db is not None:
            await self._call(self._db.close)
        self._executor.shutdown()


# -- schema versions -----------------------------------------------------------------------------


def user_version(db: sqlite3.Connection) -> int:
    """The schema version a database is at (0: none recorded)."""
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    return version


def migrate(db: sqlite3.Connection, path: Path, migrations: tuple[Migration, ...]) -> None:
    """Apply, in order, the ``migrations`` that ``db`` has not had yet.

    Raises:
        StateError: ``db`` is newer than ``migrations``, is not a runner's, or a migration failed.
    """
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    found, latest = user_version(db), len(migrations)
    if found > latest:
        raise StateError(
            f"{path} is at schema version {found}, but this runner knows versions up to {latest}: "
            "a newer nbremote runner wrote it. Upgrade this runner (pip install -U nbremote), or "
            "start it with another data dir (--data-dir or NBREMOTE_HOME)"
        )
    for migration in migrations[found:]:
        _apply(db, path, migration, migrations[0])


def _apply(db: sqlite3.Connection, path: Path, migration: Migration, first: Migration) -> None:
    """Apply one migration and bump the version in one transaction; all of it, or nothing."""
    db.execute("BEGIN IMMEDIATE")  # other runners sharing the data dir wait; one migrates
    try:
        found = user_version(db)
        if found < migration.version:  # another runner may have applied it meanwhile
            if found == 0:
                _check_unversioned(db, path, first)
            for statement in _statements(migration.sql):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {migration.version:d}")
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        if db.in_transaction:
            db.execute("ROLLBACK")
        before = migration.version - 1
        raise StateError(
            f"could not bring {path} from schema version {before} to {migration.version} "
            f"({migration.summary}): {exc}. It is still at version {before}, unchanged: free "
            "disk space or fix the data dir's permissions and start the runner again"
        ) from exc
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _check_unversioned(db: sqlite3.Connection, path: Path, first: Migration) -> None:
    """A database without a version: empty (new), or made before versioning, whose tables are
    those of the first migration, or some of them (older runners had fewer); else refused."""
    expected = _columns(_made_by(first))
    for table, columns in _columns(db).items():
        if table in expected and columns != expected[table]:
            raise StateError(
                f"{path} has no schema version and its table {table!r} has the columns "
                f"{', '.join(columns)}, not {', '.join(expected[table])}: it was not made by an "
                "nbremote runner. Move it away, or start the runner with another data dir"
            )


def _made_by(migration: Migration) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.executescript(migration.sql)
    return db


def _columns(db: sqlite3.Connection) -> dict[str, list[str]]:
    tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {
        table: [row[1] for row in db.execute(f"PRAGMA table_info({table!r})")]
        for (table,) in tables
    }


def _statements(sql: str) -> list[str]:
    """A script's statements, one by one (``executescript`` would commit the transaction)."""
    statements, pending = [], ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())  # a last one without ';': let SQLite say what is wrong
    return statements
