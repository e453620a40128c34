"""The runner's batch gate (`nbremote_runner.batching`) and the worker's side of a batch
(`nbremote_runner.worker_patterns`), each caller's part kept apart; a worker's answer that
cannot be read fails every caller instead of the runner."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from nbremote_runner.batching import BatchGate
from nbremote_runner.worker_patterns import call_batched, load_inputs, pack

from nbremote.wire.codec import Buffer, Header
from nbremote.wire.serialize import dumps, loads


def _call(request_id: str, value: int) -> tuple[Header, list[bytearray]]:
    header = {"op": "call", "id": request_id, "function": {"name": "f", "nbuf": 0, "hash": "h"}}
    parts = [bytearray(part) for part in dumps("args", [((value,), {})]).parts]
    return header, parts


def _worker(answer: Any = None, shm: Any = None) -> Any:
    """A pool's ``run`` that serves a batch as a worker would (doubling each input), or with
    ``answer`` as its ``batched`` field, ``shm`` as its shared-memory files."""
    seen: list[Header] = []

    async def run(
        header: Header, buffers: Sequence[Buffer], forward: Any, deadline: float | None
    ) -> tuple[Header, list[Any]]:
        seen.append(header)
        inputs = load_inputs(header, list(buffers))  # type: ignore[arg-type]
        batch = call_batched(lambda xs: [x * 2 for x in xs], inputs, "f", None)
        parts, fields = pack(batch, header)
        if answer is not None:
            fields["batched"] = answer
        if shm is not None:
            fields["shm"] = shm
        return {"op": "done", "id": header["id"], "ok": True, **fields}, parts

    run.seen = seen  # type: ignore[attr-defined]
    return run


async def _submit_all(gate: BatchGate, values: list[int]) -> list[tuple[Header, list[Any]]]:
    calls = [_call(f"r{value}", value) for value in values]
    return await asyncio.gather(*(gate.submit(h, b, lambda *_: None) for h, b in calls))


def test_one_call_for_the_batch_and_each_caller_gets_its_own_result() -> None:
    run = _worker()
    answers = asyncio.run(_submit_all(BatchGate(run, max_size=3, wait=60), [1, 2, 3]))
    assert len(run.seen) == 1 and run.seen[0]["count"] == 3
    assert [done["id"] for done, _ in answers] == ["r1", "r2", "r3"]
    assert [loads("r", parts) for _, parts in answers] == [[2], [4], [6]]


def test_a_full_batch_leaves_and_the_rest_wait_for_the_next() -> None:
    run = _worker()
    answers = asyncio.run(_submit_all(BatchGate(run, max_size=2, wait=0.01), [1, 2, 3]))
    assert [header["count"] for header in run.seen] == [2, 1]
    assert [loads("r", parts) for _, parts in answers] == [[2], [4], [6]]


@pytest.mark.parametrize(
    ("answer", "shm"),
    [
        ("junk", None),
        ([{"nbuf": 1, "errors": {}}], None),
        ([{"nbuf": -1}] * 2, None),
        (None, "junk"),
        (None, [["0", "name"]]),
    ],
)
def test_an_unreadable_answer_fails_every_caller(answer: Any, shm: Any) -> None:
    gate = BatchGate(_worker(answer, shm), max_size=2, wait=60)
    answers = asyncio.run(_submit_all(gate, [1, 2]))
    for request_id, (done, parts) in zip(["r1", "r2"], answers, strict=True):
        assert done["id"] == request_id and not done["ok"] and parts == []
        assert "cannot be read" in done["error"]["evalue"]


def test_a_wrong_length_result_is_every_inputs_error() -> None:
    batch = call_batched(lambda xs: xs[:-1], [((1,), {}), ((2,), {})], "f", None)
    assert set(batch.errors) == {0, 1}
    assert "one result per input" in batch.errors[0]["evalue"]


def test_callers_passing_arguments_differently_are_told() -> None:
    batch = call_batched(lambda xs: xs, [((1,), {}), ((), {"xs": 2})], "f", None)
    assert "the same arguments the same way" in batch.errors[0]["evalue"]
