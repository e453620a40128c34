"""The SQLite state's schema versions: an old data dir is upgraded, a newer one refused, a failed
migration changes nothing. Each test opens a real file with the real `State`."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from nbremote_runner import state as state_module
from nbremote_runner.state import MIGRATIONS, Migration, State, StateError

# The schema exactly as runners made it before it had a version (runner/state.py's SCHEMA until
# then): a data dir from before versioning is this, with user_version 0.
OLD_SCHEMA = """
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

OLD_ROWS = {
    "runs": [("r1", "s1", "nb.ipynb", "exec", 1.0, 2.0, 1, None)],
    "apps": [("app", 3.0, '{"objects": []}')],
    "stores": [("d", "dict"), ("q", "queue")],
    "store_items": [
        ("dict", "d", b"key", b"value", "[5]"),
        ("queue", "q", (0).to_bytes(8, "big"), b"item", "[4]"),
    ],
    "volumes": [("vol", "0123abcd", 4.0)],
}
LATEST = len(MIGRATIONS)
JOB_TABLES = {"jobs", "job_versions", "job_runs"}  # migration 2: scheduled jobs
ENDPOINT_TABLES = {"endpoints"}  # migration 3: web endpoints


def old_data_dir(path: Path) -> Path:
    """A state.db as a runner from before versioning left it, with a few rows in each table."""
    db = sqlite3.connect(path / "state.db")
    db.executescript(OLD_SCHEMA)
    for table, rows in OLD_ROWS.items():
        marks = ", ".join("?" * len(rows[0]))
        db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    db.commit()
    db.close()
    return path / "state.db"


def version_of(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def tables_of(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        db.close()


async def opened(path: Path) -> State:
    state = State(path)
    try:
        await state.open()
    except BaseException:
        await state.close()
        raise
    return state


def test_migrations_are_numbered_in_order_and_the_first_is_the_old_schema() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))
    assert MIGRATIONS[0].sql == OLD_SCHEMA  # a shipped migration is never edited


def test_a_data_dir_from_before_versioning_keeps_its_rows(tmp_path: Path) -> None:
    path = old_data_dir(tmp_path)

    async def main() -> None:
        state = await opened(path)
        try:
            for table, rows in OLD_ROWS.items():
                assert await state.query(f"SELECT * FROM {table} ORDER BY 1, 2") == rows
            assert await state.count_runs() == 1
            state.record_run("r2", "s1", None, "pull", 5.0, 6.0, False, "NameError")
        finally:
            await state.close()

    asyncio.run(main())
    assert version_of(path) == LATEST
    asyncio.run(_reopen_and_count(path, expected_runs=2))


async def _reopen_and_count(path: Path, expected_runs: int) -> None:
    state = await opened(path)
    try:
        assert await state.count_runs() == expected_runs
    finally:
        await state.close()


def test_an_older_data_dir_with_fewer_tables_gets_the_missing_ones(tmp_path: Path) -> None:
    # Runners before volumes and apps made only these three tables.
    db = sqlite3.connect(tmp_path / "state.db")
    db.executescript(OLD_SCHEMA.split("CREATE TABLE IF NOT EXISTS apps")[0])
    db.execute("INSERT INTO runs VALUES ('r1', 's', NULL, 'exec', 1.0, 2.0, 1, NULL)")
    db.commit()
    db.close()
    asyncio.run(_reopen_and_count(tmp_path / "state.db", expected_runs=1))
    assert tables_of(tmp_path / "state.db") >= set(OLD_ROWS)
    assert version_of(tmp_path / "state.db") == LATEST


def test_a_fresh_data_dir_gets_the_current_version(tmp_path: Path) -> None:
    asyncio.run(_reopen_and_count(tmp_path / "state.db", expected_runs=0))
    assert version_of(tmp_path / "state.db") == LATEST
    assert tables_of(tmp_path / "state.db") == set(OLD_ROWS) | JOB_TABLES | ENDPOINT_TABLES


def test_a_database_newer_than_the_runner_is_refused_untouched(tmp_path: Path) -> None:
    path = old_data_dir(tmp_path)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {LATEST + 1}")
    db.close()
    with pytest.raises(StateError) as refused:
        asyncio.run(opened(path))
    message = str(refused.value)
    assert f"schema version {LATEST + 1}" in message
    assert f"versions up to {LATEST}" in message
    assert "Upgrade" in message and "--data-dir" in message
    assert version_of(path) == LATEST + 1


def test_a_foreign_database_without_a_version_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("CREATE TABLE runs (id TEXT, what TEXT)")
    db.close()
    with pytest.raises(StateError, match="'runs' has the columns id, what"):
        asyncio.run(opened(tmp_path / "state.db"))
    assert version_of(tmp_path / "state.db") == 0


def test_a_failed_migration_leaves_the_database_at_its_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = old_data_dir(tmp_path)
    asyncio.run(_reopen_and_count(path, expected_runs=1))  # now at LATEST
    broken = Migration(
        LATEST + 1,
        "a table, then a statement that fails",
        "CREATE TABLE later (id TEXT PRIMARY KEY);\n"
        "INSERT INTO runs (id) VALUES ('incomplete');\n",  # NOT NULL columns: refused
    )
    monkeypatch.setattr(state_module, "MIGRATIONS", (*MIGRATIONS, broken))
    with pytest.raises(StateError) as failed:
        asyncio.run(opened(path))
    assert f"from schema version {LATEST} to {LATEST + 1}" in str(failed.value)
    assert f"still at version {LATEST}" in str(failed.value)
    assert version_of(path) == LATEST
    assert "later" not in tables_of(path)  # the statement before the failure was rolled back
    monkeypatch.undo()
    asyncio.run(_reopen_and_count(path, expected_runs=1))  # the rows are as they were


def test_migrations_apply_in_order_each_with_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = old_data_dir(tmp_path)
    later = (
        Migration(LATEST + 1, "a table", "CREATE TABLE later (id TEXT PRIMARY KEY);"),
        Migration(LATEST + 2, "a column of it", "ALTER TABLE later ADD COLUMN cron TEXT;"),
    )
    monkeypatch.setattr(state_module, "MIGRATIONS", (*MIGRATIONS, *later))
    asyncio.run(_reopen_and_count(path, expected_runs=1))
    assert version_of(path) == LATEST + 2
    db = sqlite3.connect(path)
    assert [row[1] for row in db.execute("PRAGMA table_info(later)")] == ["id", "cron"]
    db.close()


def test_a_data_dir_of_version_1_gets_the_job_tables_and_keeps_its_rows(tmp_path: Path) -> None:
    path = old_data_dir(tmp_path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 1")  # as a runner before scheduled jobs left it
    db.close()
    asyncio.run(_reopen_and_count(path, expected_runs=1))
    assert version_of(path) == LATEST
    assert tables_of(path) == set(OLD_ROWS) | JOB_TABLES | ENDPOINT_TABLES
