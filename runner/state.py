"""The runner's durable state: a SQLite file in its data dir, written off the event loop.

Today it keeps the record of every cell run (who, when, how it ended), so that the runner's
history survives a restart. Writes go through a single thread: SQLite connections are not shared
between threads, and the event loop never waits on the disk.
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
        """Keep the record of one finished request. Queued at once and not awaited: the answer
        need not wait for the disk, and closing the state still writes every queued record."""
        self._executor.submit(
            self._execute,
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, session, notebook, op, started, finished, int(ok), error),
        )

    async def count_runs(self) -> int:
        """How many requests this runner has ever served."""
        rows = await self._call(self._execute, "SELECT count(*) FROM runs", ())
        count: int = rows[0][0]
        return count

    async def close(self) -> None:
        """Close the database and its thread."""
        if self._db is not None:
            await self._call(self._db.close)
        self._executor.shutdown()
