"""``nr.Queue``: a FIFO queue held by the runner, shared by notebooks and workers."""

from __future__ import annotations

import queue
from collections.abc import Iterable
from typing import Any

from ._stores import RunnerStore
from .wire.ops import Op
from .wire.serialize import dumps, loads


class Queue(RunnerStore):
    """A first-in first-out queue held by the runner; ``get`` can wait for a ``put`` elsewhere.

    Example:
        >>> q = Queue.from_name("jobs", create_if_missing=True)  # doctest: +SKIP
        >>> q.put_many(range(3)); q.get()                         # doctest: +SKIP
        0
    """

    kind = Op.QUEUE

    def put_many(self, values: Iterable[Any]) -> None:
        """Append each value.

        Raises:
            SerializationError: a value cannot be pickled (naming its position).
        """
        sizes, parts = [], []
        for position, value in enumerate(values):
            payload = dumps(f"value #{position} put on Queue {self.name!r}", value)
            sizes.append(len(payload.parts))
            parts.extend(payload.parts)
        self._call("put", parts, sizes=sizes)

    def put(self, value: Any) -> None:
        """Append a value."""
        self.put_many([value])

    def get_many(
        self, n_values: int, block: bool = True, timeout: float | None = None
    ) -> list[Any]:
        """Up to ``n_values`` values: whatever is there, waiting (if ``block``) for at least one."""
        wait = timeout if block else 0
        done, out = self._call("get", n=n_values, timeout=wait)
        values, position = [], 0
        for count in done["sizes"]:
            values.append(
                loads(f"a value of Queue {self.name!r}", out[position : position + count])
            )
            position += count
        return values

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """The next value, waiting up to ``timeout`` seconds if ``block``.

        Raises:
            queue.Empty: nothing came in time.
        """
        values = self.get_many(1, block, timeout)
        if not values:
            raise queue.Empty(f"Queue {self.name!r} is empty")
        return values[0]

    def len(self) -> int:
        """How many values wait in the queue."""
        done, _ = self._call("len")
        return int(done["len"])

    def __len__(self) -> int:
        return self.len()
