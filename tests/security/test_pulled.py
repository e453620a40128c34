"""A call's pulled arguments (`nbremote.wire.pulled`), as a worker takes them: entries that
name no empty buffer of the call, bad digests or sizes, and answers that do not bring what was
announced fail the call, saying why; a digest the content does not hash to is never kept, so a
kernel cannot plant content under another's digest in a worker that serves several; and the
runner's batch of several kernels' calls carries none of their digests."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nbremote_runner.batching import BatchGate

from nbremote.wire.held import HeldBuffers, NotHeld, digest
from nbremote.wire.pulled import THRESHOLD, PullFailed, fill, withhold

BIG = bytes(range(256)) * (THRESHOLD // 256)


class Kernel:
    """Answers a worker's ``need`` from what it withheld, counting the asks."""

    def __init__(self, kept: dict[str, Any]) -> None:
        self.kept = kept
        self.asked: list[list[str]] = []

    def __call__(self, hashes: list[str]) -> tuple[dict[str, Any], list[Any]]:
        self.asked.append(hashes)
        items = [{"hash": h, "name": "", "nbuf": 1} for h in hashes]
        return {"op": "blobs", "items": items}, [bytearray(self.kept[h]) for h in hashes]


def received(entries: list[list[Any]], sent: list[Any], held: HeldBuffers, kernel: Kernel) -> Any:
    buffers: list[Any] = [bytearray(b) for b in sent]
    fill(entries, buffers, held, kernel)
    return buffers


def test_a_kept_argument_is_not_asked_for_again_and_each_use_is_private() -> None:
    entries, sent, kept = withhold([b"small", BIG])
    assert sent == [b"small", b""] and entries == [[1, digest(BIG), len(BIG)]]
    held, kernel = HeldBuffers(), Kernel(kept)
    first = received(entries, sent, held, kernel)
    assert bytes(first[1]) == BIG and len(kernel.asked) == 1
    second = received(entries, sent, held, kernel)
    assert bytes(second[1]) == BIG and len(kernel.asked) == 1  # from the worker's copy
    second[1][:4] = b"XXXX"  # a function writing into its argument
    assert bytes(received(entries, sent, held, kernel)[1]) == BIG


def test_content_that_does_not_hash_to_its_digest_is_used_once_and_never_kept() -> None:
    other = bytes(len(BIG))
    entries, sent, _ = withhold([BIG])
    claimed = entries[0][1]
    held, kernel = HeldBuffers(), Kernel({claimed: other})  # the kernel lies about BIG
    assert bytes(received(entries, sent, held, kernel)[0]) == other  # its own call, its bytes
    assert bytes(received(entries, sent, held, kernel)[0]) == other
    assert len(kernel.asked) == 2
    with pytest.raises(NotHeld):  # once checked, the copy is dropped
        held.take(claimed)


@pytest.mark.parametrize(
    ("entries", "why"),
    [
        ("all", "must be a list"),
        ([[5, "0" * 32, THRESHOLD]], "names no buffer"),
        ([[-1, "0" * 32, THRESHOLD]], "names no buffer"),
        ([[0, "0" * 32, THRESHOLD], [0, "1" * 32, THRESHOLD]], "names no buffer"),
        ([[1, "0" * 32, THRESHOLD]], "came whole"),
        ([[0, "../../etc/passwd", THRESHOLD]], "has no digest"),
        ([[0, "0" * 32, 10]], "has no size"),
        ([[0, "0" * 32, "big"]], "has no size"),
        ([[0, "0" * 32]], "names no buffer"),
    ],
)
def test_entries_that_do_not_fit_the_call_fail_it(entries: Any, why: str) -> None:
    kernel = Kernel({})
    with pytest.raises(PullFailed, match=why):
        received(entries, [b"", b"whole"], HeldBuffers(), kernel)
    assert kernel.asked == []


def test_an_answer_without_the_announced_bytes_fails_the_call() -> None:
    entries, sent, kept = withhold([BIG])
    short = Kernel({h: b[:-1] for h, b in kept.items()})
    with pytest.raises(PullFailed, match="lacks"):
        received(entries, sent, HeldBuffers(), short)

    def empty(hashes: list[str]) -> tuple[dict[str, Any], list[Any]]:
        return {"op": "blobs", "items": []}, []

    with pytest.raises(PullFailed, match="lacks"):
        fill(entries, [bytearray()], HeldBuffers(), empty)


def test_a_batch_the_runner_joins_carries_no_callers_digests() -> None:
    """A kernel's ``pulled`` entries in a batched call would make the worker ask the batch's
    first caller (maybe another kernel) for them: the runner's joined call drops them."""
    seen: list[Any] = []

    async def run(header: Any, buffers: Any, forward: Any, deadline: Any) -> Any:
        seen.append(header)
        return {"op": "done", "id": header["id"], "ok": False, "error": {}}, []

    def call(request_id: str) -> tuple[dict[str, Any], list[Any]]:
        header = {"op": "call", "id": request_id, "function": {"name": "f", "nbuf": 0}}
        return header | {"pulled": [[0, "0" * 32, THRESHOLD]]}, [bytearray()]

    async def both() -> None:
        gate = BatchGate(run, max_size=2, wait=60)
        calls = [call("a"), call("b")]
        await asyncio.gather(*(gate.submit(h, b, lambda *_: None) for h, b in calls))

    asyncio.run(both())
    assert len(seen) == 1 and "pulled" not in seen[0]


def test_two_arguments_of_the_same_content_get_their_own_memory() -> None:
    """``f(a, a.copy())``: two buffers of one digest, asked for once; writing into one of them
    must not change the other, as locally."""
    entries, sent, kept = withhold([BIG, bytes(BIG)])
    assert len(kept) == 1 and len(entries) == 2
    first, second = received(entries, sent, HeldBuffers(), Kernel(kept))
    first[:4] = b"XXXX"
    assert bytes(second) == BIG
