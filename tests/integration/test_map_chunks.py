"""Maps of many inputs, sent in chunks of up to thousands per request (issue 23, W2), against a
real runner and real workers: results in order across chunk boundaries, and failures still
handled input by input (an input's own error, retries of that input only, a worker that dies
mid-chunk losing no input and re-running none beyond the retries)."""

from __future__ import annotations

import collections
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nbremote as nr
from nbremote._session import RemoteSession
from nbremote.errors import WorkerDied

app = nr.App("tests-chunks")
INPUTS = 6000  # more than one chunk even at the largest chunk size (4096)


def warmed(function: nr.Function[Any], *args: Any) -> nr.Function[Any]:
    """``function`` after a map that let it learn its chunk size: the next map sends its
    inputs thousands to a chunk from the start (its first map starts one input a request)."""
    assert len(list(function.map(*args))) == len(args[0])
    return function


def runs(log: Path) -> collections.Counter[int]:
    """How often each input ran, from the lines the function appended to ``log``."""
    return collections.Counter(int(line) for line in log.read_text().split())


@app.function
def add(x: int, y: int = 0) -> int:
    return x + y


def test_results_come_in_order_across_chunks(remote_session: RemoteSession) -> None:
    warmed(add, range(INPUTS))
    assert list(add.map(range(INPUTS))) == list(range(INPUTS))
    assert list(add.map(range(INPUTS), range(0, 2 * INPUTS, 2))) == [3 * x for x in range(INPUTS)]
    assert list(add.map(range(5), [10] * 3)) == [10, 11, 12]  # zipped: the shortest ends it
    assert list(add.starmap((x, 1) for x in range(INPUTS))) == list(range(1, INPUTS + 1))
    unordered = add.map((x for x in range(INPUTS)), order_outputs=False)
    assert sorted(unordered) == list(range(INPUTS))


def test_a_map_of_an_endless_iterator_reads_ahead_boundedly(
    remote_session: RemoteSession,
) -> None:
    pulled = 0

    def numbers() -> Iterator[int]:
        nonlocal pulled
        while True:
            pulled += 1
            yield pulled

    results = warmed(add, range(INPUTS)).map(numbers())  # chunks of thousands from the start
    assert list(itertools.islice(results, 10)) == list(range(1, 11))
    assert pulled <= 20_000  # not every input of the iterator: a few chunks' worth
    results.close()  # type: ignore[attr-defined]


def test_an_input_that_raises_mid_chunk_gets_its_own_error(remote_session: RemoteSession) -> None:
    @app.function
    def picky(x: int) -> int:
        if x in (2500, 2501, 5000):
            raise ValueError(f"no {x}")
        return -x

    warmed(picky, range(2000))
    outcomes = list(picky.map(range(INPUTS), return_exceptions=True))
    bad = {i: outcome for i, outcome in enumerate(outcomes) if isinstance(outcome, Exception)}
    assert sorted(bad) == [2500, 2501, 5000]
    assert all(outcomes[i] == -i for i in range(INPUTS) if i not in bad)
    assert all(isinstance(error, ValueError) for error in bad.values())
    assert "no 2501" in str(bad[2501]) and "input #2501" in str(bad[2501].__notes__)
    shown = "".join(bad[5000]._render_traceback_())  # type: ignore[attr-defined]
    assert "raise ValueError" in shown and "nbremote_runner" not in shown  # the user's lines only
    with pytest.raises(ValueError, match="no 2500") as caught:
        list(picky.map(range(INPUTS)))
    assert "input #2500" in str(caught.value.__notes__)


def test_retries_rerun_only_the_failed_inputs(
    remote_session: RemoteSession, tmp_path: Path
) -> None:
    log = tmp_path / "runs"

    @app.function(retries=nr.Retries(max_retries=2, initial_delay=0.0, backoff_coefficient=1.0))
    def flaky(x: int) -> int:
        with open(log, "a") as out:
            out.write(f"{x}\n")
        if x in (1234, 4321) and runs(log)[x] < 3:  # fails twice, then works
            raise ConnectionError("try again")
        return x * 2

    warmed(flaky, range(-3000, 0))
    log.write_text("")
    assert list(flaky.map(range(INPUTS))) == [x * 2 for x in range(INPUTS)]
    counts = runs(log)
    assert counts[1234] == counts[4321] == 3
    assert {x for x, n in counts.items() if n != 1} == {1234, 4321}
    assert sorted(counts) == list(range(INPUTS))


def _dies_once(log: Path, mark: Path) -> nr.Function[Any]:
    @app.function
    def fragile(x: int) -> int:
        with open(log, "a") as out:
            out.write(f"{x}\n")
        if x == 3000 and not mark.exists():
            mark.touch()
            os._exit(3)  # the worker dies in the middle of its chunk
        return x + 1

    return fragile


def test_a_worker_that_dies_mid_chunk_loses_no_input_and_reruns_none(
    remote_session: RemoteSession, tmp_path: Path
) -> None:
    log, mark = tmp_path / "runs", tmp_path / "died"
    fragile = warmed(_dies_once(log, mark), range(-3000, 0))
    log.write_text("")
    outcomes = list(fragile.map(range(INPUTS), return_exceptions=True))
    assert len(outcomes) == INPUTS and mark.exists()
    died = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, WorkerDied)]
    assert 3000 in died and "worker died" in str(outcomes[3000].__notes__)
    assert all(outcomes[i] == i + 1 for i in range(INPUTS) if i not in died)
    assert max(runs(log).values()) == 1  # no retries: nothing ran twice
    assert fragile.remote(7) == 8  # a new worker serves the next call


def test_a_worker_that_dies_mid_chunk_is_retried_within_the_retries(
    remote_session: RemoteSession, tmp_path: Path
) -> None:
    log, mark = tmp_path / "runs", tmp_path / "died"
    fragile = _dies_once(log, mark).with_options(retries=1)
    warmed(fragile, range(-3000, 0))
    log.write_text("")
    assert list(fragile.map(range(INPUTS))) == [x + 1 for x in range(INPUTS)]
    counts = runs(log)
    assert mark.exists() and counts[3000] == 2
    assert max(counts.values()) == 2 and sorted(counts) == list(range(INPUTS))


async def halve(x: int) -> float:
    return x / 2


def gives_generator(x: int) -> Any:
    return (y for y in [x])  # not a generator function: the client cannot tell


def test_an_async_function_maps_and_a_generator_function_is_refused_per_input(
    remote_session: RemoteSession,
) -> None:
    asynchronous = warmed(app.function(halve), range(3000))
    assert list(asynchronous.map(range(INPUTS))) == [x / 2 for x in range(INPUTS)]
    outcomes = list(app.function(gives_generator).map(range(3), return_exceptions=True))
    assert all(isinstance(outcome, TypeError) for outcome in outcomes) and len(outcomes) == 3
    assert "call it with .remote_gen()" in str(outcomes[1])
