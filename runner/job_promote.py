"""Promotion: a cell becomes a scheduled job, over the session's frame channel.

Why on the channel: the cell's inputs ship exactly as a cell's do (by hash; the runner asks with
``need`` for those its job blob store lacks, the kernel answers with ``blobs``), so a promotion
costs what a cell costs and an unchanged input is never sent twice. Everything is checked before
anything is stored: the settings, the schedule (its ``ValueError`` names the cron field and
value, or the unknown zone), the hashes, and every blob's content against its hash. A promotion
that fails stores nothing (no version, no blob) and answers an error ``done`` saying why.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from nbremote.wire.codec import Header
from nbremote.wire.jobs import JobSettings
from nbremote.wire.ops import Op
from nbremote.wire.schedule import from_wire
from nbremote.wire.serialize import content_hash

from .errors import RunnerError, error_done
from .job_blobs import BlobRefused, checked

if TYPE_CHECKING:
    from .jobs import Jobs

Ask = Callable[[list[str]], Awaitable[tuple[Header, list[bytearray]]]]
# What a stored cell keeps of the exec request (its id is each run's own).
KEPT = (
    "op",
    "code",
    "inputs",
    "outputs",
    "deletes",
    "spec",
    "sources",
    "inline",
    "discover",
    "star",
    "execution_count",
)


class PromotionRefused(RunnerError, ValueError):
    """The promotion cannot be stored (the message says what to change)."""

    status = 400

    def __init__(self, message: str, kind: str = "ValueError") -> None:
        super().__init__(message, kind=kind)


def settings_of(job: Any) -> JobSettings:
    """The job settings, or `PromotionRefused` naming each bad field and its rule; the schedule
    is read too (a bad cron names its field and value, an unknown zone itself)."""
    try:
        settings = JobSettings.model_validate(job)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'job'}: {error['msg']}"
            for error in exc.errors()[:3]
        )
        raise PromotionRefused(f"job settings: {problems}", "ValidationError") from None
    try:
        from_wire(settings.schedule)
    except (ValueError, TypeError, KeyError) as exc:
        raise PromotionRefused(str(exc)) from None
    return settings


def stored_cell(cell: Header) -> Header:
    """The exec request a run sends (every input by hash, no buffers)."""
    stored = {key: cell[key] for key in KEPT if key in cell}
    inputs = []
    for item in cell["inputs"]:
        if item.get("nbuf"):
            raise PromotionRefused(
                f"input {item['name']!r} came with its bytes: a promote frame sends inputs by "
                "hash (nbuf 0), and the runner asks for those it lacks"
            )
        if "hash" in item and item["hash"] is not None:
            checked(item["hash"])
        inputs.append({k: v for k, v in item.items() if k != "nbuf" and v is not None})
    stored["inputs"] = inputs
    return stored


def verified(missing: list[str], reply: Header, buffers: list[bytearray]) -> dict[str, list[Any]]:
    """The blobs of a ``blobs`` answer, each checked against its hash; all that were asked for.

    Raises:
        BlobRefused: a value does not hash to the hash it came with, or one is missing.
    """
    if reply.get("op") != Op.BLOBS:
        raise BlobRefused(f"expected the inputs ('blobs'), got {reply.get('op')!r}")
    by_hash: dict[str, list[Any]] = {}
    position = 0
    for item in reply.get("items") or ():
        parts = buffers[position : position + item["nbuf"]]
        position += item["nbuf"]
        content = checked(item["hash"])
        if content_hash(parts) != content:
            raise BlobRefused(
                f"the value sent for input {item.get('name') or content!r} does not hash to "
                f"{content}: it was changed or corrupted on the way; nothing was stored"
            )
        by_hash[content] = parts
    absent = [content for content in missing if content not in by_hash]
    if absent:
        raise BlobRefused(f"the inputs with hashes {', '.join(absent)} were asked for, not sent")
    return by_hash


async def promote(jobs: Jobs, header: Header, ask: Ask) -> Header:
    """Answer a ``promote`` frame: the job stored, or why not (as a ``done`` frame)."""
    request_id = header["id"]
    try:
        settings = settings_of(header["job"])
        jobs.check_name(settings.name, app=None)
        cell = stored_cell(header["cell"])
        hashes = [item["hash"] for item in cell["inputs"] if "hash" in item]
        jobs.pinned.update(hashes)  # kept from a removal's collection until the version is stored
        try:
            missing = await jobs.blobs.missing(hashes)
            if missing:
                blobs = verified(missing, *await ask(missing))
                for content, parts in blobs.items():
                    await jobs.blobs.put(content, parts, verify=False)  # all verified above
            described = await jobs.promote(settings, "cell", cell)
        finally:
            jobs.pinned.subtract(hashes)
            jobs.pinned += collections.Counter()  # drops those at zero
    except (RunnerError, ValueError, LookupError) as exc:
        return error_done(request_id, exc, held=[])
    return {
        "op": Op.DONE,
        "id": request_id,
        "ok": True,
        "held": [],
        "job": described.model_dump(mode="json"),
    }
