"""Named Dicts and Queues held by the runner: shared by notebooks and workers, kept across restarts.

Values (and Dict keys) arrive pickled, as frame buffers, and are stored as the caller sent them:
the runner never unpickles anything. Everything lives in memory for speed and is written through
to SQLite off the event loop. Each Dict or Queue holds at most ``limit`` items.

An answer means durable: a request that changes anything (a put, a get that takes from a Queue,
a pop, a clear, a delete, a create) changes memory at once, so that the next request sees it,
and is answered only once its transaction is on disk (`State.write`, group commit). Should that
transaction fail, the state undoes the change in memory and the caller gets an error, never an
``ok``. Reads answer from memory at once.

Requests (``op`` "dict" or "queue", from a kernel's channel or from a worker while it runs code):
  dict   lookup {create} · put {nkey} + key and value parts · get/contains/pop {} + key parts
         · len · clear · delete · keys (answer: one buffer per key) · items (answer: each key's
         buffer then its value's parts, ``sizes`` the value parts per item)
  queue  lookup {create} · put {sizes: parts per value} + parts · get {n, timeout} · len · delete
Every answer is a ``done`` frame: ``ok`` with its fields and buffers, or an ``error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from nbremote.wire.codec import Header
from nbremote.wire.ops import Op

from .errors import Refusal, error_done
from .state import State, Statement, WriteFailed

Blob = tuple[bytes, list[int]]  # a pickled value's parts, back to back, and their lengths


class StoreError(Refusal):
    """A request the stores refuse (unknown name, over the limit, unknown action)."""


def _blob(parts: Sequence[Any]) -> Blob:
    return b"".join(bytes(part) for part in parts), [memoryview(part).nbytes for part in parts]


def _parts(blob: Blob) -> list[memoryview]:
    data, sizes = blob
    view, out, position = memoryview(data), [], 0
    for size in sizes:
        out.append(view[position : position + size])
        position += size
    return out


class Stores:
    """All Dicts and Queues of a runner."""

    def __init__(self, state: State, limit: int) -> None:
        self._state = state
        self.limit = limit
        self.dicts: dict[str, dict[bytes, Blob]] = {}
        self.queues: dict[str, deque[tuple[int, Blob]]] = {}
        self._next_seq: dict[str, int] = {}
        self._arrived = asyncio.Condition()

    async def load(self) -> None:
        """Read every Dict and Queue back from SQLite."""
        for kind, name in await self._state.query("SELECT kind, name FROM stores"):
            if kind == "dict":
                self.dicts[name] = {}
            else:
                self.queues[name] = deque()
        rows = await self._state.query(
            "SELECT kind, name, key, value, sizes FROM store_items ORDER BY kind, name, key"
        )
        for kind, name, key, value, sizes in rows:
            blob = (value, json.loads(sizes))
            if kind == "dict":
                self.dicts[name][key] = blob
            else:
                seq = int.from_bytes(key, "big")
                self.queues[name].append((seq, blob))
                self._next_seq[name] = seq + 1

    async def _save(self, statements: list[Statement], undo: Callable[[], None]) -> None:
        """Wait until ``statements`` are on disk; ``undo`` reverts the memory change made just
        before (no await in between: the state undoes failed writes newest first)."""
        await self._saved(self._state.write(statements, undo))

    @staticmethod
    async def _saved(write: asyncio.Future[None]) -> None:
        try:
            await write
        except WriteFailed as exc:
            raise StoreError("WriteFailed", str(exc)) from exc

    # -- bookkeeping ---------------------------------------------------------------------------

    async def _lookup(self, kind: str, name: str, create: bool) -> None:
        held: dict[str, Any] = self.dicts if kind == "dict" else self.queues
        if name in held:
            return
        if not create:
            names = ", ".join(sorted(held)) or "none"
            raise StoreError(
                "NotFound",
                f"no {kind.title()} named {name!r} (there are: {names}); "
                f"use {kind.title()}.from_name({name!r}, create_if_missing=True)",
            )
        held[name] = {} if kind == "dict" else deque()
        await self._save(
            [("INSERT OR IGNORE INTO stores VALUES (?, ?)", (name, kind))],
            lambda: held.pop(name, None),
        )

    def _check_room(self, kind: str, name: str, size: int, adding: int) -> None:
        if size + adding > self.limit:
            raise StoreError(
                "LimitExceeded",
                f"{kind.title()} {name!r} would hold {size + adding} items, over "
                f"the runner's limit of {self.limit} (nbremote runner --store-limit N)",
            )

    async def _delete(self, kind: str, name: str) -> None:
        held: dict[str, Any] = self.dicts if kind == "dict" else self.queues
        gone = held.pop(name)

        def undo() -> None:
            held[name] = gone

        await self._save(
            [
                ("DELETE FROM stores WHERE kind = ? AND name = ?", (kind, name)),
                ("DELETE FROM store_items WHERE kind = ? AND name = ?", (kind, name)),
            ],
            undo,
        )

    # -- requests --------------------------------------------------------------------------------

    async def answer(self, header: Header, buffers: list[Any]) -> tuple[Header, list[Any]]:
        """The ``done`` frame answering a request, its errors included."""
        try:
            fields, out = await self.handle(header, buffers)
        except StoreError as exc:
            return error_done(header.get("id"), exc), []
        return {"op": Op.DONE, "id": header.get("id"), "ok": True, **fields}, out

    async def handle(self, header: Header, buffers: list[Any]) -> tuple[Header, list[Any]]:
        """Serve one request; its answer (fields and buffers)."""
        kind, name, action = header["op"], header["name"], header["action"]
        await self._lookup(kind, name, bool(header.get("create")) and action == "lookup")
        if action == "lookup":
            return {}, []
        if action == "delete":
            await self._delete(kind, name)
            return {}, []
        if kind == Op.DICT:
            return await self._dict(name, action, header, buffers)
        return await self._queue(name, action, header, buffers)

    async def _dict(
        self, name: str, action: str, header: Header, buffers: list[Any]
    ) -> tuple[Header, list[Any]]:
        items = self.dicts[name]
        if action == "len":
            return {"len": len(items)}, []
        if action == "clear":
            await self._dict_clear(name, items)
            return {}, []
        if action in ("keys", "items"):
            return _listing(items, with_values=action == "items")
        nkey = header.get("nkey", len(buffers))
        key, _ = _blob(buffers[:nkey])
        if action == "put":
            await self._dict_put(name, items, key, _blob(buffers[nkey:]))
            return {}, []
        if action == "contains":
            return {"found": key in items}, []
        if action not in ("get", "pop"):
            raise StoreError("BadRequest", f"unknown Dict action {action!r}")
        blob = items.pop(key, None) if action == "pop" else items.get(key)
        if blob is None:
            return {"found": False}, []
        if action == "pop":
            await self._save(
                [(_DELETE_ITEM, ("dict", name, key))], lambda: items.__setitem__(key, blob)
            )
        return {"found": True}, _parts(blob)

    async def _dict_put(self, name: str, items: dict[bytes, Blob], key: bytes, value: Blob) -> None:
        before = items.get(key)
        if before is None:
            self._check_room("dict", name, len(items), 1)
        items[key] = value

        def undo() -> None:
            if before is None:
                items.pop(key, None)
            else:
                items[key] = before

        await self._save(
            [
                (
                    "INSERT OR REPLACE INTO store_items VALUES ('dict', ?, ?, ?, ?)",
                    (name, key, value[0], json.dumps(value[1])),
                )
            ],
            undo,
        )

    async def _dict_clear(self, name: str, items: dict[bytes, Blob]) -> None:
        before = dict(items)
        items.clear()
        await self._save(
            [("DELETE FROM store_items WHERE kind = 'dict' AND name = ?", (name,))],
            lambda: items.update(before),
        )

    async def _queue(
        self, name: str, action: str, header: Header, buffers: list[Any]
    ) -> tuple[Header, list[Any]]:
        items = self.queues[name]
        if action == "len":
            return {"len": len(items)}, []
        if action == "put":
            await self._queue_put(name, items, header["sizes"], buffers)
            return {}, []
        if action != "get":
            raise StoreError("BadRequest", f"unknown Queue action {action!r}")
        timeout = header.get("timeout")
        if not items and timeout != 0:
            async with self._arrived:
                with contextlib.suppress(TimeoutError):  # then the answer is "nothing came"
                    await asyncio.wait_for(
                        self._arrived.wait_for(lambda: bool(self.queues.get(name))), timeout
                    )
        taken = await self._queue_take(name, header.get("n", 1))
        out: list[Any] = []
        for blob in taken:
            out.extend(_parts(blob))
        return {"sizes": [len(blob[1]) for blob in taken]}, out

    async def _queue_put(
        self, name: str, items: deque[tuple[int, Blob]], sizes: list[int], buffers: list[Any]
    ) -> None:
        self._check_room("queue", name, len(items), len(sizes))
        first = self._next_seq.get(name, 0)
        self._next_seq[name] = first + len(sizes)
        statements, position = [], 0
        for seq, count in enumerate(sizes, first):
            blob = _blob(buffers[position : position + count])
            position += count
            items.append((seq, blob))
            statements.append((_INSERT_ITEM, ("queue", name, _seq_key(seq), *_row(blob))))

        def undo() -> None:  # newest first: these are the last items of the deque
            for _ in sizes:
                items.pop()

        saving = self._state.write(statements, undo)  # queued before any await
        async with self._arrived:
            self._arrived.notify_all()
        await self._saved(saving)

    async def _queue_take(self, name: str, n: int) -> list[Blob]:
        items = self.queues.get(name)
        if not items:
            return []  # nothing came (or the Queue was deleted while waiting)
        taken = [items.popleft() for _ in range(min(n, len(items)))]

        def undo() -> None:
            items.extendleft(reversed(taken))

        await self._save([(_DELETE_ITEM, ("queue", name, _seq_key(seq))) for seq, _ in taken], undo)
        return [blob for _, blob in taken]


_INSERT_ITEM = "INSERT INTO store_items VALUES (?, ?, ?, ?, ?)"
_DELETE_ITEM = "DELETE FROM store_items WHERE kind = ? AND name = ? AND key = ?"


def _listing(items: dict[bytes, Blob], with_values: bool) -> tuple[Header, list[Any]]:
    """A Dict's contents now: its keys (a key is stored as one buffer), and with ``with_values``
    each key followed by its value's parts."""
    if not with_values:
        return {}, list(items)
    out: list[Any] = []
    for key, blob in items.items():
        out.append(key)
        out.extend(_parts(blob))
    return {"sizes": [len(blob[1]) for blob in items.values()]}, out


def _seq_key(seq: int) -> bytes:
    return seq.to_bytes(8, "big")


def _row(blob: Blob) -> tuple[bytes, str]:
    return blob[0], json.dumps(blob[1])
