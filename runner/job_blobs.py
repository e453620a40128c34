"""The job blob store: pickled values of scheduled jobs (inputs and outputs), one file per hash.

Why content-addressed: a job's input snapshot is stored once however many versions and jobs
share it (an unchanged 2 GB array promoted again costs nothing), and a run's outputs that are
inputs left as they were cost nothing either. A value is its pickle stream and out-of-band
buffers (``parts``); a file holds them back to back after a small index of their sizes.

What arrives from a kernel is verified on the way in (``content_hash(parts)`` must be the hash
it claims: a file's name is then a promise about its content), and a hash names a file only
once it is exactly a hash (`CONTENT_HASH`: never a path such as ``../state.db``). Files are
written to a temporary name and renamed, so a crash leaves either the whole value or none of it.
The runner never unpickles what it stores here: it moves bytes.
"""

from __future__ import annotations

import asyncio
import os
import struct
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from nbremote.wire.http import CONTENT_HASH
from nbremote.wire.serialize import content_hash

from .errors import RunnerError

Parts = Sequence[bytes | bytearray | memoryview]
_COUNT = struct.Struct("<I")
_SIZE = struct.Struct("<Q")


class BlobRefused(RunnerError, ValueError):
    """A value whose content is not what its hash says, or a hash that is not one."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="ValueError")


def checked(value: object) -> str:
    """``value`` if it is a content hash (32 lowercase hex digits); else `BlobRefused`."""
    if not isinstance(value, str) or not CONTENT_HASH.match(value):
        raise BlobRefused(f"{str(value)[:80]!r} is not a content hash (32 lowercase hex digits)")
    return value


class BlobStore:
    """Values by content hash, in files under ``root``; file work runs off the event loop."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._executor = ThreadPoolExecutor(2, thread_name_prefix="nbremote-job-blobs")

    def path(self, content: str) -> Path:
        """The file of a value (the hash checked first)."""
        return self.root / checked(content)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- in the store's threads ---------------------------------------------------------------

    def has(self, content: str) -> bool:
        """Whether the store holds this value."""
        return self.path(content).is_file()

    def put_sync(self, content: str, parts: Parts, verify: bool = True) -> None:
        """Store a value under its hash (verified unless the runner computed it itself)."""
        target = self.path(content)
        if verify and content_hash(parts) != content:
            raise BlobRefused(
                f"the value sent for hash {content} does not hash to it "
                f"({content_hash(parts)}): it was corrupted or mislabelled; nothing was stored"
            )
        if target.is_file():
            return  # content-addressed: the same bytes are there already
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{content}.{uuid.uuid4().hex}.tmp"
        try:
            with tmp.open("wb") as file:
                file.write(_COUNT.pack(len(parts)))
                file.write(b"".join(_SIZE.pack(memoryview(part).nbytes) for part in parts))
                for part in parts:
                    file.write(part)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def get_sync(self, content: str) -> list[memoryview]:
        """A value's parts.

        Raises:
            LookupError: the store does not hold it.
        """
        try:
            data = self.path(content).read_bytes()
        except FileNotFoundError:
            raise LookupError(f"the job store holds no value {content}") from None
        view = memoryview(data)
        (count,) = _COUNT.unpack_from(view)
        sizes = [_SIZE.unpack_from(view, _COUNT.size + i * _SIZE.size)[0] for i in range(count)]
        parts, position = [], _COUNT.size + count * _SIZE.size
        for size in sizes:
            parts.append(view[position : position + size])
            position += size
        return parts

    def keep_only(self, wanted: set[str]) -> int:
        """Delete every value not in ``wanted`` (after a job is removed); how many went."""
        removed = 0
        for path in self.root.glob("*"):
            if CONTENT_HASH.match(path.name) and path.name not in wanted:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    # -- from the event loop ------------------------------------------------------------------

    async def missing(self, hashes: Iterable[str]) -> list[str]:
        """Those of ``hashes`` the store lacks, in order, each once (each hash checked)."""
        wanted = list(dict.fromkeys(checked(content) for content in hashes))
        held: list[bool] = await self._run(lambda: [self.has(c) for c in wanted])
        return [content for content, has in zip(wanted, held, strict=True) if not has]

    async def put(self, content: str, parts: Parts, verify: bool = True) -> None:
        """`put_sync`, off the event loop."""
        await self._run(self.put_sync, content, parts, verify)

    async def get(self, content: str) -> list[memoryview]:
        """`get_sync`, off the event loop."""
        parts: list[memoryview] = await self._run(self.get_sync, content)
        return parts

    async def collect(self, wanted: set[str]) -> int:
        """`keep_only`, off the event loop."""
        removed: int = await self._run(self.keep_only, wanted)
        return removed

    def close(self) -> None:
        """Let the store's threads go (after what they are doing)."""
        self._executor.shutdown()
