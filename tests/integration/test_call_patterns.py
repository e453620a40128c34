"""Call patterns beyond ``.remote``/``.map``, with Modal's semantics, against a real runner:
generators streamed with ``remote_gen``, ``for_each``, ``spawn_map``, ``FunctionCall.gather``,
``get_current_stats``, ``@nr.batched`` and a killed function's ``FunctionTimeoutError``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import nbremote as nr
from nbremote._session import RemoteSession
from tests.conftest import RunningRunner

app = nr.App("patterns")
WAIT = 60.0  # the longest a test waits for the runner to catch up (never reached when it works)


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def _eventually(check: Callable[[], Any]) -> Any:
    """``check()``'s first true value, polled until `WAIT` has passed (then the last one)."""
    deadline = time.monotonic() + WAIT
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@app.function
def gated(queue_name: str) -> Iterator[str]:
    yield "first"
    # Blocks until the caller, having the first value, releases it: a collected generator
    # would never send "first", and this would raise queue.Empty after a minute.
    yield nr.Queue.from_name(queue_name).get(timeout=60)
    yield "last"


@app.function
def breaks_after_two() -> Iterator[int]:
    yield 1
    yield 2
    raise ValueError("the source broke after two")


@app.function
def endless(queue_name: str) -> Iterator[int]:
    count = 0
    try:
        while True:
            yield count
            count += 1
            time.sleep(0.05)
    finally:  # runs remotely when the caller closes its iterator
        nr.Queue.from_name(queue_name).put(f"closed after {count}")


@app.function
def square(x: int) -> int:
    return x * x


@app.function
def record(dict_name: str, x: int) -> None:
    if x == 3:
        raise ValueError("three is bad")
    nr.Dict.from_name(dict_name)[x] = x * x


@app.function(max_containers=1)
def waits_for_token(queue_name: str, dict_name: str, x: int) -> int:
    nr.Queue.from_name(queue_name).get(timeout=60)
    nr.Dict.from_name(dict_name)[x] = x * x
    return x


@app.function(max_containers=1)
@nr.batched(max_batch_size=4, wait_ms=60_000)
def doubled(xs: list[int], queue_name: list[str]) -> list[int]:
    nr.Queue.from_name(queue_name[0]).put(len(xs))  # the batch's size, for the test to see
    return [x * 2 for x in xs]


@app.function(max_containers=1)
@nr.batched(max_batch_size=2, wait_ms=60_000)
def drops_one(xs: list[int]) -> list[int]:
    return xs[:-1]


@app.function(max_containers=1)
@nr.batched(max_batch_size=2, wait_ms=60_000)
def filled(sizes: list[int]) -> list[bytes]:
    return [str(size % 10).encode() * size for size in sizes]


@app.cls(max_containers=1)
class Counter:
    @nr.method()
    def count(self, n: int) -> Iterator[int]:
        yield from range(n)

    @nr.batched(max_batch_size=2, wait_ms=60_000)
    def tripled(self, xs: list[int]) -> list[int]:
        return [x * 3 for x in xs]


# -- generators ------------------------------------------------------------------------------


def test_remote_gen_yields_each_value_before_the_generator_ends(
    remote_session: RemoteSession,
) -> None:
    name = _name()
    release = nr.Queue.from_name(name, create_if_missing=True)
    values = gated.remote_gen(name)
    assert next(values) == "first"  # while the generator waits for the release below
    release.put("second")
    assert list(values) == ["second", "last"]


def test_a_generator_is_refused_by_remote_and_map_and_a_function_by_remote_gen(
    remote_session: RemoteSession,
) -> None:
    with pytest.raises(nr.exception.InvalidError, match=r"use \.remote_gen"):
        gated.remote("never")
    with pytest.raises(nr.exception.InvalidError, match=r"with \.map\(\)"):
        list(gated.map(["never"]))
    with pytest.raises(nr.exception.InvalidError, match="not a generator function"):
        square.remote_gen(2)
    assert gated.is_generator and not square.is_generator


def test_a_generator_error_comes_after_the_values_before_it(
    remote_session: RemoteSession,
) -> None:
    seen = []
    with pytest.raises(ValueError, match="the source broke after two"):
        for value in breaks_after_two.remote_gen():
            seen.append(value)
    assert seen == [1, 2]
    assert square.remote(3) == 9  # the session goes on


def test_closing_the_iterator_stops_the_remote_generator(remote_session: RemoteSession) -> None:
    name = _name()
    told = nr.Queue.from_name(name, create_if_missing=True)
    values = endless.remote_gen(name)
    assert [next(values) for _ in range(3)] == [0, 1, 2]
    values.close()  # type: ignore[attr-defined]
    assert told.get(timeout=WAIT).startswith("closed after")
    assert next(endless.remote_gen(name)) == 0  # its worker serves again


@app.function(max_containers=1)
def flood(queue_name: str) -> Iterator[object]:
    try:
        while True:  # no pause: a cancel most likely comes while a value is being sent
            yield os.getpid(), b"x" * (256 << 10)
    finally:
        nr.Queue.from_name(queue_name).put("closed")


def test_closing_a_flooding_generator_leaves_its_worker_serving(
    remote_session: RemoteSession,
) -> None:
    name = _name()
    told = nr.Queue.from_name(name, create_if_missing=True)
    pids = set()
    for _ in range(3):
        values = flood.remote_gen(name)
        pids.add(next(values)[0])
        values.close()  # type: ignore[attr-defined]
        assert told.get(timeout=WAIT) == "closed"
    assert len(pids) == 1  # the same worker each time: no cancel broke its frames


def test_a_class_method_generator_streams_too(remote_session: RemoteSession) -> None:
    assert list(Counter().count.remote_gen(4)) == [0, 1, 2, 3]


@app.function
def big_values(size: int) -> Iterator[bytes]:
    yield b"a" * size
    yield b"b" * size


def test_big_values_stream_as_the_rest_do(remote_session: RemoteSession) -> None:
    size = 8 << 20  # through shared memory where the runner offers it
    assert [(len(v), v[:1]) for v in big_values.remote_gen(size)] == [(size, b"a"), (size, b"b")]


@app.function
async def ticks(n: int) -> AsyncIterator[int]:
    for tick in range(n):
        await asyncio.sleep(0)
        yield tick


def test_an_async_generator_streams_too(remote_session: RemoteSession) -> None:
    assert list(ticks.remote_gen(3)) == [0, 1, 2]


# -- for_each, spawn_map, gather, stats ------------------------------------------------------


def test_for_each_runs_every_input_and_returns_none(remote_session: RemoteSession) -> None:
    name = _name()
    results = nr.Dict.from_name(name, create_if_missing=True)
    assert record.for_each([name] * 3, [0, 1, 2]) is None
    assert dict(results.items()) == {0: 0, 1: 1, 2: 4}
    with pytest.raises(ValueError, match="three is bad"):
        record.for_each([name] * 5, range(5))
    assert record.for_each([name] * 6, range(6), ignore_exceptions=True) is None
    assert sorted(results.keys()) == [0, 1, 2, 4, 5]


def test_spawn_map_returns_before_the_calls_run(remote_session: RemoteSession) -> None:
    name = _name()
    tokens = nr.Queue.from_name(name, create_if_missing=True)
    results = nr.Dict.from_name(name, create_if_missing=True)
    # Each call waits for a token: spawn_map returning at all shows it did not wait for them.
    assert waits_for_token.spawn_map([name] * 3, [name] * 3, [1, 2, 3]) is None
    assert results.len() == 0
    tokens.put_many(["go"] * 3)
    assert _eventually(lambda: results.len() == 3)
    assert dict(results.items()) == {1: 1, 2: 4, 3: 9}


def test_gather_returns_results_in_order_and_raises_the_first_error(
    remote_session: RemoteSession,
) -> None:
    calls = [square.spawn(x) for x in range(5)]
    assert nr.FunctionCall.gather(*calls) == [0, 1, 4, 9, 16]
    name = _name()
    nr.Dict.from_name(name, create_if_missing=True)
    failing = [record.spawn(name, 1), record.spawn(name, 3)]
    with pytest.raises(ValueError, match="three is bad"):
        nr.FunctionCall.gather(*failing)
    assert nr.FunctionCall.gather() == []


def test_current_stats_count_the_backlog_and_the_runners(remote_session: RemoteSession) -> None:
    name = _name()
    tokens = nr.Queue.from_name(name, create_if_missing=True)
    nr.Dict.from_name(name, create_if_missing=True)
    idle = waits_for_token.get_current_stats()
    assert (idle.backlog, idle.num_total_runners) == (0, 0)
    calls = [waits_for_token.spawn(name, name, x) for x in range(3)]
    # One worker (max_containers=1) holds the first call; the two others wait for it.
    assert _eventually(lambda: waits_for_token.get_current_stats().backlog == 2)
    assert waits_for_token.get_current_stats().num_total_runners == 1
    tokens.put_many(["go"] * 3)
    assert nr.FunctionCall.gather(*calls) == [0, 1, 2]
    assert waits_for_token.get_current_stats().backlog == 0


# -- batching --------------------------------------------------------------------------------


def test_concurrent_callers_share_a_batch_and_each_gets_its_element(
    remote_session: RemoteSession,
) -> None:
    name = _name()
    sizes = nr.Queue.from_name(name, create_if_missing=True)
    # Three spawned callers wait in a batch that would wait a minute more; the fourth caller
    # fills it, so the batch leaves at once, with everyone in it.
    spawned = [doubled.spawn(x, name) for x in (1, 2, 3)]
    assert _eventually(lambda: doubled.get_current_stats().backlog == 3)
    assert doubled.remote(4, name) == 8
    assert nr.FunctionCall.gather(*spawned) == [2, 4, 6]
    assert sizes.get_many(10, timeout=1) == [4]


def test_a_map_over_a_batched_function_keeps_order(remote_session: RemoteSession) -> None:
    name = _name()
    sizes = nr.Queue.from_name(name, create_if_missing=True)
    assert list(doubled.map(range(8), [name] * 8)) == [x * 2 for x in range(8)]
    batches = sizes.get_many(10, timeout=1)
    assert sum(batches) == 8 and max(batches) > 1  # inputs of one map did share batches


def test_big_results_of_a_batch_reach_each_caller(remote_session: RemoteSession) -> None:
    other = filled.spawn((8 << 20) + 1)  # big enough for shared memory, were it offered
    assert filled.remote(8 << 20) == b"8" * (8 << 20)
    assert other.get(timeout=WAIT) == b"9" * ((8 << 20) + 1)
    sizes = [(4 << 20) + 3, (4 << 20) + 4]  # one map, the batch's callers all allowed it
    assert list(filled.map(sizes)) == [b"7" * sizes[0], b"8" * sizes[1]]


def test_a_wrong_length_batch_fails_every_caller_of_it(remote_session: RemoteSession) -> None:
    other = drops_one.spawn(1)
    with pytest.raises(ValueError, match=r"one result per input.*batch of 2 inputs.*1 results"):
        drops_one.remote(2)
    with pytest.raises(ValueError, match="one result per input"):
        other.get(timeout=WAIT)


def test_a_batched_method_groups_its_callers(remote_session: RemoteSession) -> None:
    counter = Counter()
    other = counter.tripled.spawn(1)
    assert counter.tripled.remote(2) == 6
    assert other.get(timeout=WAIT) == 3


def test_batched_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch_size=0"):
        nr.batched(max_batch_size=0, wait_ms=10)
    with pytest.raises(ValueError, match="wait_ms=-1"):
        nr.batched(max_batch_size=2, wait_ms=-1)


# -- timeouts --------------------------------------------------------------------------------


@app.function(timeout=1)
def stubborn() -> None:
    while True:  # swallows the timeout's exception and the interrupt: it must be killed
        with contextlib.suppress(BaseException):
            time.sleep(30)


def test_a_function_killed_for_its_timeout_raises_function_timeout_error(
    remote_session: RemoteSession,
) -> None:
    with pytest.raises(nr.exception.FunctionTimeoutError, match=r"stubborn.*timeout of 1 s"):
        stubborn.remote()
    assert square.remote(5) == 25


# -- Modal's own examples, as scripts --------------------------------------------------------

MODAL_SCRIPT = """
import nbremote as modal

app = modal.App()


@app.function()
def f(i):
    for j in range(i):
        yield j


@app.function()
@modal.batched(max_batch_size=2, wait_ms=1000)
async def batch_add(xs: list[int], ys: list[int]) -> list[int]:
    return [x + y for x, y in zip(xs, ys)]


@app.local_entrypoint()
def main():
    print("generated", list(f.remote_gen(4)))
    assert batch_add.remote(1, 2) == 3
    print("batched", list(batch_add.map([1, 2, 3], [4, 5, 6])))
"""


def test_modal_guide_examples_run_as_a_script(runner: RunningRunner, tmp_path: Path) -> None:
    script = tmp_path / "patterns_app.py"
    script.write_text(textwrap.dedent(MODAL_SCRIPT))
    env = {**os.environ, "NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": str(runner.token)}
    result = subprocess.run(
        [sys.executable, "-m", "nbremote", "run", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "generated [0, 1, 2, 3]" in result.stdout
    assert "batched [5, 7, 9]" in result.stdout
