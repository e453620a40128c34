"""The runner's durable state: a SQLite file in its data dir, written off the event loop.

It keeps the record of every cell run (who, when, how it ended), the contents of named Dicts
and Queues, and the names of volumes, so that they survive a restart. Writes go through a single
thread: SQLite connections are not shared between threads, and the event loop never waits on the
disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

SCHEMA = """
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


class State:
    """The runner's SQLite database."""

    def __init__(self, path: Path) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbremote-state")
        self._path = path
        self._db: sqlite3.Connection | None = None

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _open(self) -> None:
        self._db = sqlite3.connect(self._path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    async def open(self) -> None:
        """Open (creating if needed) the database file."""
        await self._call(self._open)

    def _execute(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        assert self._db is not None
        with self._db:
            return self._db.execute(sql, params).fetchall()

    def write_later(self, sql: str, params: tuple[Any, ...]) -> None:
        """Queue a write and return at once: callers need not wait for the disk, and closing
        the state still performs every queued write."""
        self._executor.submit(self._execute, sql, params)

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
