"""W3, big arrays to a same-host worker: nbremote's cells and function calls against Ray and Dask.

Usage: ``.venv/bin/python bench/bench_arrays.py [--mib 256] [--repeats 5] [--only TOOLS]
[--write]``.

Each tool sums a float64 array of ``--mib`` MiB on a worker process of this machine and brings
the float back; the answer is checked against the local sum (outside the timing):

first
    the array changed in place before each repeat (``a += 1``: the same object, new content),
    so all of it travels.
again
    the same array, unchanged, right after.

Tools: ``floor`` (one memcpy into a fresh buffer: the least any way of moving it costs);
``nbremote-cell`` (``%%remote`` ``s = float(a.sum())``, an embedded runner);
``nbremote-fn`` (``asum.remote(a)``); ``ray`` (``ray.get(asum.remote(ray.put(a)))`` first, the
same object ref passed again); ``dask`` (``client.submit(asum, client.scatter(a))`` on a
one-process ``LocalCluster``, the same future passed again). Ray and Dask run from their own
virtualenvs (``bench/.envs/<name>``, as `bench_functions` makes them); each tool runs in a
subprocess of its own (this file with ``--tool``). Ray and Dask reuse a handle the user keeps
(the ref, the future); nbremote's ``again`` takes the array itself and finds out that it is
unchanged.

Times are medians; GB/s is decimal (array bytes / seconds, the sum and the call included).
This module imports the standard library, numpy and ``bench/_results.py`` only at its top.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from _results import HERE, check, machine, median, progress, write_results

MIB = 1 << 20
ENVS = HERE / ".envs"
TOOLS = ("floor", "nbremote-cell", "nbremote-fn", "ray", "dask")
OWN_ENVS = ("ray", "dask")  # the others run in this interpreter (each tool in a process of its own)
Samples = dict[str, list[float]]


def asum(x: Any) -> float:
    return float(x.sum())


def twice(run: Callable[[Any, bool], float], a: Any, repeats: int) -> Samples:
    """Seconds of ``run(a, changed)`` with ``a`` changed before each repeat, then unchanged
    (``changed`` is for the peers, whose user would keep a handle of what did not change)."""
    first, again = [], []
    for _ in range(repeats):
        a += 1
        start = time.perf_counter()
        got = run(a, True)
        first.append(time.perf_counter() - start)
        check(bool(np.isclose(got, a.sum())), f"sum {got} != {a.sum()}")
    for _ in range(repeats):
        start = time.perf_counter()
        got = run(a, False)
        again.append(time.perf_counter() - start)
        check(bool(np.isclose(got, a.sum())), f"sum {got} != {a.sum()}")
    return {"first": first, "again": again}


def ray_twice(ray: Any, task: Any, a: Any, repeats: int) -> Samples:
    """`twice` through Ray's ``task`` (a remote sum): ``ray.put`` of each changed array, and
    the same ref passed again (the handle a Ray user keeps)."""
    ray.get(task.remote(np.zeros(4)))  # a warm worker
    refs: list[Any] = []

    def run(array: Any, changed: bool) -> float:
        if changed:
            refs[:] = [ray.put(array)]
        return float(ray.get(task.remote(refs[0])))

    return twice(run, a, repeats)


def floor(a: Any, repeats: int) -> Samples:
    samples = []
    for _ in range(repeats):
        a += 1
        start = time.perf_counter()
        copy = a.copy()
        samples.append(time.perf_counter() - start)
        del copy
    return {"first": samples}


@contextlib.contextmanager
def embedded_home() -> Iterator[None]:
    from nbremote._embedded import stop

    with tempfile.TemporaryDirectory(prefix="bench-arrays-") as home:
        os.environ["NBREMOTE_HOME"] = home
        try:
            yield
        finally:
            stop(Path(home))


def cell_runner(a: Any) -> Callable[[Any, bool], float]:
    """``run(a, changed)`` for `twice`: a ``%%remote`` cell summing ``a`` on the connected
    session's runner (its worker warmed up first)."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "nbremote")
    shell.user_ns["a"] = a
    check(shell.run_cell("%%remote\ns = 0").success, "a warm-up cell failed")

    def run(_: Any, changed: bool) -> float:
        check(shell.run_cell("%%remote\ns = float(a.sum())").success, "the cell failed")
        return float(shell.user_ns["s"])

    return run


def nbremote_cell(a: Any, repeats: int) -> Samples:
    return twice(cell_runner(a), a, repeats)


def nbremote_fn(a: Any, repeats: int) -> Samples:
    import nbremote as nr

    remote_sum = nr.App("bench-arrays").function(asum)
    remote_sum.remote(np.zeros(4))  # a warm worker
    return twice(lambda array, changed: remote_sum.remote(array), a, repeats)


def ray_peer(a: Any, repeats: int) -> Samples:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    with tempfile.TemporaryDirectory(prefix="ray-") as temp_dir:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp_dir)
        try:
            return ray_twice(ray, ray.remote(asum), a, repeats)
        finally:
            ray.shutdown()


def dask_peer(a: Any, repeats: int) -> Samples:
    import logging

    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR
        ) as cluster,
        Client(cluster) as client,
    ):
        client.submit(asum, np.zeros(4)).result()
        futures: list[Any] = []

        def run(array: Any, changed: bool) -> float:
            if changed:
                futures[:] = [client.scatter(array, hash=False)]
            return float(client.submit(asum, futures[0], pure=False).result())

        return twice(run, a, repeats)


RUN: dict[str, Callable[[Any, int], Samples]] = {
    "floor": floor,
    "nbremote-cell": nbremote_cell,
    "nbremote-fn": nbremote_fn,
    "ray": ray_peer,
    "dask": dask_peer,
}


def measure(tool: str, nbytes: int, repeats: int) -> Samples:
    """``tool``'s samples, from a process of its own (of its own virtualenv, for a peer)."""
    python = ENVS / tool / "bin" / "python" if tool in OWN_ENVS else Path(sys.executable)
    check(python.exists(), f"{tool} is not installed in {python.parent.parent} (bench_functions)")
    command = [str(python), __file__, "--tool", tool, "--mib", str(nbytes // MIB)]
    done = subprocess.run(
        [*command, "--repeats", str(repeats)], capture_output=True, text=True, timeout=900
    )
    check(done.returncode == 0, f"{tool} failed:\n{done.stderr[-3000:]}")
    samples: Samples = json.loads(done.stdout.strip().splitlines()[-1])
    return samples


def report(figures: dict[str, Samples], nbytes: int, load: float) -> str:
    size = f"{nbytes // MIB} MiB"
    ours = figures.get("nbremote-fn")
    lines = [
        "## W3, big arrays (bench/bench_arrays.py)",
        "",
        f"- Date: {datetime.date.today().isoformat()}",
        f"- Machine: {machine()}; load average before the run {load:.2f}",
        f"- {size} float64, summed on a worker of this machine; medians of each tool's repeats",
        "",
        "| Tool | first: ms | first: GB/s | again: ms | nbremote fn / tool, first ms"
        " | nbremote fn / tool, again ms |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for tool, samples in figures.items():
        first = median(samples["first"])
        again = median(samples["again"]) if "again" in samples else None
        ratios = ["", ""]
        if ours is not None and tool in ("ray", "dask"):
            ratios = [f"{median(ours[k]) / median(samples[k]):.2f}" for k in ("first", "again")]
        lines.append(
            f"| {tool} | {first * 1e3:.1f} | {nbytes / first / 1e9:.2f} | "
            f"{'-' if again is None else f'{again * 1e3:.1f}'} | {ratios[0]} | {ratios[1]} |"
        )
    lines += [
        "",
        "- first: the array changed in place before each repeat, so all of it travels; again:"
        " the same array unchanged (nbremote finds that out from the array itself, Ray and Dask"
        " are handed the ref or future the user kept). floor: one memcpy into a fresh buffer.",
        "- Ratios: nbremote's function call over the peer's time; below 1 nbremote is faster.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default=",".join(TOOLS), help="comma-separated tools")
    parser.add_argument("--write", action="store_true", help="write its RESULTS.md section")
    parser.add_argument("--tool", choices=TOOLS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    nbytes = args.mib * MIB
    if args.tool:  # in the tool's own process
        a = np.random.rand(nbytes // 8)
        with embedded_home() if args.tool.startswith("nbremote") else contextlib.nullcontext():
            print(json.dumps(RUN[args.tool](a, args.repeats)))
        return 0
    load = os.getloadavg()[0]
    figures = {}
    for tool in args.only.split(","):
        progress(f"{tool}: {args.mib} MiB, {args.repeats} x 2")
        figures[tool] = measure(tool, nbytes, args.repeats)
    section = report(figures, nbytes, load)
    print(section)
    print(json.dumps(figures), file=sys.stderr)
    if args.write:
        write_results(section, "bench_arrays")
    return 0


if __name__ == "__main__":
    sys.exit(main())
