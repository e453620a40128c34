"""The ray backend beside the process backend and plain Ray (issue 22).

Run ``.venv/bin/python bench/bench_ray.py`` to measure and write the ``bench_ray`` section of
``bench/RESULTS.md``; ``--quick`` takes few samples and writes nothing. It starts its own
three-node Ray cluster on this machine (``scripts/ray_cluster.py``) and stops it at the end.

W1 warm call
    ``inc.remote(1)`` on a warm worker: p50 and p90, on a process runner, on a ray runner
    joined to the cluster, and plain Ray (``ray.get(inc.remote(1))`` on a ``@ray.remote``
    function, from a driver on the same cluster).
W2 map of trivial inputs
    ``inc.map(range(N))`` with warm workers (three at most: one per node), in inputs per second;
    plain Ray: ``ray.get([inc.remote(x) for x in range(N)])``.
W3 big array
    a 256 MiB float64 array summed by a ``%%remote`` cell and by ``asum.remote(a)``: ``first``
    after an in-place change (all of it travels), ``again`` unchanged right after (medians of
    3, as bench/bench_arrays.py does); plain Ray: ``ray.put(a)`` then ``asum.remote(ref)``, the
    same ref passed again. The cluster's nodes get an object store that holds the array.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _results import check, checkout, machine, median, percentile, write_results
from bench_arrays import cell_runner, ray_twice, twice

sys.path.insert(0, str(Path(__file__).parents[1]))
import numpy as np

import nbremote as nr
from nbremote import _session
from tests.conftest import RunningRunner, start_runner

ROOT = Path(__file__).resolve().parents[1]
app = nr.App("bench-ray")


@app.function(max_containers=3)
def inc(x: int) -> int:
    return x + 1


def array_sum(x: Any) -> float:
    return float(x.sum())


asum = app.function(array_sum)


MIB = 1 << 20
ARRAY_MIB = 256
STORE = 800_000_000  # per node: plasma holds the array (the tests' clusters keep 80 MB)
Timings = dict[str, list[float]]  # W1 samples, the W2 rate, W3 first and again


def array_numbers(a: Any, repeats: int) -> Timings:
    """W3 through a cell and through a function, on the connected session's runner."""
    cell = cell_runner(a)
    asum.remote(np.zeros(4))  # a warm worker
    cells = twice(cell, a, repeats)
    calls = twice(lambda array, changed: asum.remote(array), a, repeats)
    return {f"cell {k}": v for k, v in cells.items()} | {f"fn {k}": v for k, v in calls.items()}


def samples(fn: Callable[[], object], count: int) -> list[float]:
    """Seconds each of ``count`` calls takes, after a few warm-up calls."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def rate(fn: Callable[[], object], inputs: int, rounds: int) -> float:
    """Inputs per second of the best of ``rounds`` maps (after one to warm the workers)."""
    fn()
    best = min(timed(fn) for _ in range(rounds))
    return inputs / best


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def nbremote_numbers(running: RunningRunner, count: int, inputs: int, a: Any) -> Timings:
    session = _session.connect(running.url, running.token)
    try:
        calls = samples(lambda: check(inc.remote(1) == 2, "inc.remote"), count)
        mapped = rate(lambda: check(sum(inc.map(range(inputs))) == sum(range(1, inputs + 1)),
                                    "inc.map"), inputs, 3)  # fmt: skip
        return {"W1": calls, "W2": [mapped]} | array_numbers(a, 3)
    finally:
        session.reset()
        session.close()
        _session._current = None


def plain_ray(address: str, count: int, inputs: int, a: Any) -> Timings:
    import ray

    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:

        @ray.remote
        def plain_inc(x: int) -> int:
            return x + 1

        calls = samples(lambda: check(ray.get(plain_inc.remote(1)) == 2, "ray"), count)
        mapped = rate(lambda: ray.get([plain_inc.remote(x) for x in range(inputs)]), inputs, 3)
        arrays = ray_twice(ray, ray.remote(array_sum), a, 3)
        return {"W1": calls, "W2": [mapped]} | {f"fn {k}": v for k, v in arrays.items()}
    finally:
        ray.shutdown()


def cluster_script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "ray_cluster", ROOT / "scripts" / "ray_cluster.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ms(values: list[float], q: float = 50) -> str:
    return f"{percentile(values, q) * 1e3:.2f}"


def w3_rows(results: dict[str, Timings]) -> list[tuple[str, ...]]:
    """W3's rows: ms (medians) and GB/s of the first ship, for the cell and the function."""
    nbytes = ARRAY_MIB * MIB

    def cell(key: str, row: str) -> str:
        if row not in results[key]:
            return "-"
        seconds = median(results[key][row])
        speed = f" ({nbytes / seconds / 1e9:.2f} GB/s)" if row.endswith("first") else ""
        return f"{seconds * 1e3:.1f}{speed}"

    names = {
        "cell first": "W3 cell, first",
        "cell again": "W3 cell, again",
        "fn first": "W3 `asum.remote(a)`, first",
        "fn again": "W3 `asum.remote(a)`, again",
    }
    return [(f"{label} ({ARRAY_MIB} MiB)", "ms", *(cell(k, row) for k in KEYS))
            for row, label in names.items()]  # fmt: skip


KEYS = ("process", "ray", "plain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few samples; write nothing")
    args = parser.parse_args()
    count, inputs = (20, 30) if args.quick else (200, 300)
    script = cluster_script()
    script.STORE = STORE
    folder = Path(tempfile.mkdtemp(prefix="nbray-"))
    results: dict[str, Timings] = {}
    a = np.random.rand(ARRAY_MIB * MIB // 8)
    try:
        address = script.start(folder, 20000 + (os.getpid() % 300) * 40)
        with tempfile.TemporaryDirectory() as tmp:
            for backend in ("process", "ray"):
                extra = ("--backend", "ray", "--ray-address", address) if backend == "ray" else ()
                running = start_runner(Path(tmp) / backend, "bench-token", *extra)
                try:
                    results[backend] = nbremote_numbers(running, count, inputs, a)
                finally:
                    running.stop()
        results["plain"] = plain_ray(address, count, inputs, a)
    finally:
        script.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)
    import ray

    rows = [
        ("W1 warm call, p50 / p90", "ms", *(f"{ms(results[k]['W1'])} / {ms(results[k]['W1'], 90)}"
                                            for k in KEYS)),
        (f"W2 map of {inputs} trivial inputs", "inputs/s",
         *(f"{results[k]['W2'][0]:.0f}" for k in KEYS)),
        *w3_rows(results),
    ]  # fmt: skip
    lines = [
        "## Ray backend beside the process backend and plain Ray (bench/bench_ray.py)",
        "",
        f"- Date: {datetime.date.today()}",
        f"- Machine: {machine()}; Ray {ray.__version__}: a head and two nodes on this machine "
        f"(scripts/ray_cluster.py), one CPU and a {STORE / 1e6:.0f} MB object store declared each",
        f"- nbremote checkout {checkout()}; {count} warm samples, maps: best of 3; W3: medians "
        "of 3, GB/s decimal (array bytes / seconds, the sum and the call included)",
        "",
        "| Measure | Unit | process runner | ray runner | plain Ray |",
        "|---|---|--:|--:|--:|",
        *(f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows),
        "",
        "- On the ray runner a call goes kernel -> runner -> the actor's worker over TCP and "
        "back; Ray itself is not on the call path once the actor is placed (the frames go "
        "straight to the worker), so W1 is the process backend's unleased path plus TCP.",
        "- The process runner's W1 is a leased worker (the kernel talks to it directly); a "
        "Ray actor's worker is never leased.",
        "- Plain Ray: a task per call through Ray's scheduler and object store, from a driver "
        "on the head node; W3 ``first`` is ``ray.put(a)`` plus the task, ``again`` passes the "
        "same ref (the user keeps the handle). nbremote's ``again`` takes the array itself.",
        "- W3 on the ray runner: a big input travels inside the frames over both TCP hops "
        "(kernel -> runner -> actor's worker), not through shared memory or Ray's object store; "
        "an unchanged input is not sent again: a cell's by content hash, a function's argument "
        "by digest (the worker asks for what it does not keep, `nbremote.wire.pulled`).",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.quick:
        write_results(section, "bench_ray")


if __name__ == "__main__":
    main()
