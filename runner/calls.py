"""Spawned calls: running apart from the channel that spawned them, their results kept a while.

``FunctionCall.from_id(id).get()`` may come from another cell, kernel or process, so a spawned
call belongs to the runner, not to a channel. Finished results are kept for `KEEP_SECONDS` (and
at most `KEEP_COUNT` of them), then forgotten.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from .frames import Frame

KEEP_SECONDS = 3600.0
KEEP_COUNT = 10_000


class CallRegistry:
    """Spawned calls by id."""

    def __init__(self) -> None:
        self._calls: OrderedDict[str, tuple[asyncio.Task[Frame], float]] = OrderedDict()

    def start(self, call_id: str, work: Coroutine[Any, Any, Frame]) -> None:
        """Run ``work`` as the call ``call_id``."""
        self._forget_old()
        self._calls[call_id] = (asyncio.create_task(work), time.monotonic())

    def _forget_old(self) -> None:
        now = time.monotonic()
        while self._calls:
            task, started = next(iter(self._calls.values()))
            old = task.done() and now - started > KEEP_SECONDS
            if not old and len(self._calls) < KEEP_COUNT:
                return
            self._calls.popitem(last=False)

    async def get(self, call_id: str, timeout: float | None) -> Frame | None:
        """The call's ``done`` frame; None if it is still running after ``timeout`` seconds.

        Raises:
            KeyError: no such call (never spawned here, or forgotten).
        """
        task, _ = self._calls[call_id]
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            return None

    def cancel(self, call_id: str) -> bool:
        """Cancel a spawned call; False if there is none by that id."""
        entry = self._calls.get(call_id)
        if entry is None:
            return False
        entry[0].cancel()
        return True
