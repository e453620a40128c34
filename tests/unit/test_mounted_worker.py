"""A worker told to stop commits its volume copies, whoever notices its exit first.

The runner tells a worker to stop with a frame; the worker runs its ``@exit`` methods and leaves.
Its connection then closes, and the watcher that reports dead workers may ask how it ended before
the stop itself does: that clean exit must still commit (it once dropped the copies instead).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from nbremote_runner.backends.base import WorkerHandle
from nbremote_runner.containers import MountedWorker

from nbremote.wire.http import WorkerSpec


class ExitedWorker(WorkerHandle):
    """A worker that has already left with exit code 0."""

    def __init__(self) -> None:
        super().__init__("w1", WorkerSpec(), SimpleNamespace(), {})

    def interrupt(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def exit_status(self) -> str:
        return "exit code 0"

    def stats(self) -> Any:
        return None


class Volumes:
    def __init__(self) -> None:
        self.released: list[tuple[str, bool]] = []

    async def release(self, checkout_id: str, commit: bool) -> None:
        self.released.append((checkout_id, commit))


def ended(told_to_stop: bool) -> list[tuple[str, bool]]:
    volumes = Volumes()
    worker = MountedWorker(ExitedWorker(), [SimpleNamespace(id="c1")], volumes)  # type: ignore[list-item, arg-type]

    async def end() -> None:
        if told_to_stop:
            worker.leaving()
        await worker.exit_status()  # the watcher, first
        await worker.stop()

    asyncio.run(end())
    return volumes.released


def test_a_worker_told_to_stop_commits_even_if_its_exit_is_seen_first() -> None:
    assert ended(told_to_stop=True) == [("c1", True)]


def test_a_worker_that_left_on_its_own_drops_its_copies() -> None:
    assert ended(told_to_stop=False) == [("c1", False)]
