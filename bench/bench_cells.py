"""Benchmarks of the core ``%%remote`` cell path, side by side with ipyparallel (issue 3).

Run ``.venv/bin/python bench/bench_cells.py`` to measure and write ``bench/RESULTS.md``, or add
``--quick`` for tiny sizes and few repeats (a smoke test: prints, writes nothing). The exit
status is non-zero when any benchmarked cell gives a wrong answer.

Everything runs against an embedded runner in a temporary ``NBREMOTE_HOME`` and a 2-engine local
ipyparallel cluster, with ``IPYTHONDIR`` pointed at a temporary directory too, so nothing of
the user's is read or written. The workloads:

W5 cold start
    A fresh ``python -c`` process starts an IPython shell, ``%load_ext nbremote`` and runs one
    ``%%remote`` cell ``y = 1 + 1``: the time from just before that cell to its result is the
    embedded runner's start, the worker's start and the cell. The process's own start-up
    (interpreter, imports, shell) is reported apart. Peer: ``Cluster(n=2)``
    ``start_and_connect_sync()`` plus a first ``execute`` and ``pull``, in a fresh process too.
W4 warm trivial cell
    ``%%remote`` over ``y = x + 1`` (``x = 1`` locally) in a real IPython shell, through
    ``shell.run_cell``: p50 and p90 after a warm-up. Peer: blocking ``%%px`` over the same cell
    on the 2-engine cluster. Floor: the same cell run locally by ``shell.run_cell``.
W3 256 MiB array shipped
    ``s = float(a.sum())`` over a 256 MiB float64 array: first with a changed array each repeat
    (``a += 1`` locally, so all of it travels), then unchanged (only its hash travels). Peer:
    ``push`` plus ``execute`` to one engine, which sends the whole array every time.
Memory
    Resident memory of the runner and of the worker when idle after W4, and after W3, with the
    peak each reached, next to the ipyparallel controller and engine and to a bare IPython
    shell process.
Floors
    What this machine gives without either tool: the W4 cell run locally, and one loopback TCP
    hop of the W3 array into a freshly allocated buffer.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from subprocess import PIPE
from typing import Any

import ipyparallel
import numpy as np
import psutil
from _results import (
    RESULTS,
    CheckFailed,
    check,
    checkout,
    machine,
    median,
    percentile,
    progress,
    write_results,
)
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from nbremote import _embedded, _session
from nbremote.wire.http import DescribeRunner

MIB = 1024 * 1024
COLD_TIMEOUT = 120.0

WARM_CELL = "y = x + 1"
SUM_CELL = "s = float(a.sum())"

# W5, nbremote: argv = [start time, NBREMOTE_HOME]; prints its two figures as JSON.
NBREMOTE_COLD = """
import json, os, sys, time
from pathlib import Path
os.environ["NBREMOTE_HOME"] = sys.argv[2]
from IPython.core.interactiveshell import InteractiveShell
from nbremote import _embedded
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "nbremote")
try:
    ready = time.time()
    result = shell.run_cell("%%remote\\ny = 1 + 1")
    done = time.time()
finally:
    _embedded.stop(Path(sys.argv[2]))
if not result.success or shell.user_ns["y"] != 2:
    sys.exit(f"the first cell failed: {result!r}")
print(json.dumps({"startup_s": ready - float(sys.argv[1]), "first_result_s": done - ready}))
"""

# W5, ipyparallel: argv = [start time]; same figures.
IPYPARALLEL_COLD = """
import json, sys, time
import ipyparallel
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
ready = time.time()
cluster = ipyparallel.Cluster(n=2, log_level=40)
try:
    rc = cluster.start_and_connect_sync()
    rc[:].execute("y = 1 + 1", block=True)
    ys = rc[:].pull("y", block=True)
    done = time.time()
finally:
    cluster.stop_cluster_sync()
if ys != [2, 2]:
    sys.exit(f"the first execute gave y = {ys}")
print(json.dumps({"startup_s": ready - float(sys.argv[1]), "first_result_s": done - ready}))
"""

BARE_IPYTHON_RSS = """
import os
import IPython
IPython.core.interactiveshell.InteractiveShell.instance()
print(int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
"""


@dataclass(frozen=True)
class Sizes:
    """How much each workload does."""

    warmup: int
    repeats: int
    array_bytes: int
    ship_repeats: int
    cold_repeats: int


FULL = Sizes(warmup=20, repeats=300, array_bytes=256 * MIB, ship_repeats=5, cold_repeats=5)
QUICK = Sizes(warmup=5, repeats=10, array_bytes=1 * MIB, ship_repeats=1, cold_repeats=1)


def mib(nbytes: int) -> float:
    return nbytes / MIB


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


# -- the shell ---------------------------------------------------------------------------------


def make_shell() -> InteractiveShell:
    """The IPython shell the cells run in, keeping its history in memory."""
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "nbremote")
    return shell


def timed_cell(shell: InteractiveShell, source: str) -> float:
    """Seconds ``shell.run_cell(source)`` takes; raises if the cell fails."""
    start = time.perf_counter()
    result = shell.run_cell(source)
    elapsed = time.perf_counter() - start
    error = result.error_before_exec or result.error_in_exec
    check(result.success, f"cell {source!r} failed: {error!r}")
    return elapsed


# -- W4 warm trivial cell ---------------------------------------------------------------------


def warm_cell_ms(
    shell: InteractiveShell,
    source: str,
    sizes: Sizes,
    reset: Callable[[], object],
    results: Callable[[], list[Any]],
) -> list[float]:
    """Milliseconds per run of ``source`` after the warm-up; each run must bind y to 2 anew."""
    samples = []
    for _ in range(sizes.warmup + sizes.repeats):
        reset()
        samples.append(timed_cell(shell, source) * 1e3)
        ys = results()
        check(bool(ys) and all(y == 2 for y in ys), f"{source!r} gave y = {ys}")
    return samples[sizes.warmup :]


def local_warm_cell_ms(shell: InteractiveShell, source: str, sizes: Sizes) -> list[float]:
    """`warm_cell_ms` for a cell whose y lands in the local namespace."""
    shell.run_cell("x = 1")
    return warm_cell_ms(
        shell,
        source,
        sizes,
        reset=lambda: shell.user_ns.update(y=None),
        results=lambda: [shell.user_ns["y"]],
    )


def px_warm_cell_ms(shell: InteractiveShell, dview: Any, sizes: Sizes) -> list[float]:
    """`warm_cell_ms` for blocking ``%%px`` on every engine of ``dview``."""
    dview.push({"x": 1}, block=True)
    return warm_cell_ms(
        shell,
        f"%%px\n{WARM_CELL}",
        sizes,
        reset=lambda: dview.execute("y = None", block=True),
        results=lambda: dview.pull("y", block=True),
    )


# -- W3 array shipped --------------------------------------------------------------------------


def remote_sum_s(shell: InteractiveShell) -> float:
    """Seconds one ``%%remote`` sum over ``a`` takes, checked against the local sum."""
    namespace = shell.user_ns
    namespace["s"] = None
    elapsed = timed_cell(shell, f"%%remote\n{SUM_CELL}")
    check(
        namespace["s"] is not None and bool(np.isclose(namespace["s"], namespace["a"].sum())),
        f"remote sum {namespace['s']} != local sum {namespace['a'].sum()}",
    )
    return elapsed


def ship_nbremote(shell: InteractiveShell, sizes: Sizes) -> tuple[list[float], list[float]]:
    """Seconds for the sum over a changed array each repeat, then over the unchanged one."""
    namespace = shell.user_ns
    namespace["a"] = np.random.rand(sizes.array_bytes // 8)
    first = []
    for _ in range(sizes.ship_repeats):
        namespace["a"] += 1  # in place: same object, new content, so all of it travels
        first.append(remote_sum_s(shell))
    unchanged = [remote_sum_s(shell) for _ in range(sizes.ship_repeats)]
    return first, unchanged


def receive_fresh(sock: socket.socket, nbytes: int) -> None:
    """Receive ``nbytes`` into a newly allocated buffer, as a relay or a worker does."""
    view = memoryview(bytearray(nbytes))
    received = 0
    while received < nbytes:
        received += sock.recv_into(view[received:])


def loopback_hop_s(sizes: Sizes) -> list[float]:
    """Seconds one loopback TCP hop of a changed array takes: this machine's floor for W3."""
    a = np.random.rand(sizes.array_bytes // 8)
    samples = []
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()) as sender,
        server.accept()[0] as receiver,
    ):
        for _ in range(sizes.ship_repeats):
            a += 1
            thread = threading.Thread(target=receive_fresh, args=(receiver, a.nbytes))
            start = time.perf_counter()
            thread.start()
            sender.sendall(a.data)
            thread.join()
            samples.append(time.perf_counter() - start)
    return samples


def memcpy_s(sizes: Sizes) -> list[float]:
    """Seconds one in-memory copy of a changed array into a fresh buffer takes: the floor of
    any way of moving it, shared memory included."""
    a = np.random.rand(sizes.array_bytes // 8)
    samples = []
    for _ in range(sizes.ship_repeats):
        a += 1
        start = time.perf_counter()
        copy = a.copy()
        samples.append(time.perf_counter() - start)
        del copy
    return samples


def ship_ipyparallel(engine: Any, sizes: Sizes) -> list[float]:
    """Seconds for ``push`` of a changed array plus the sum, on one engine."""
    a = np.random.rand(sizes.array_bytes // 8)
    samples = []
    for _ in range(sizes.ship_repeats):
        a += 1
        start = time.perf_counter()
        engine.push({"a": a}, block=True)
        engine.execute(SUM_CELL, block=True)
        samples.append(time.perf_counter() - start)
        s = engine.pull("s", block=True)
        check(bool(np.isclose(s, a.sum())), f"ipyparallel sum {s} != local sum {a.sum()}")
    return samples


# -- memory ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    """Resident bytes, now and at peak, of the server (runner, controller) and of the worker."""

    server: int
    worker: int
    server_peak: int
    worker_peak: int


def peak_rss(pid: int) -> int:
    """The most resident memory the process has ever had (Linux's VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise CheckFailed(f"no VmHWM in /proc/{pid}/status")


def nbremote_memory() -> Memory:
    """The runner's memory, and the worker's as the runner describes it."""
    session = _session.current_session()
    runner_pid = session.client.call("GET", "/api/v1/runner", response=DescribeRunner).pid
    workers = session.describe().workers
    check(len(workers) == 1, f"expected one worker, the runner describes {len(workers)}")
    worker_rss = workers[0].rss_bytes
    check(worker_rss is not None, "the runner does not know its worker's memory")
    return Memory(rss(runner_pid), worker_rss, peak_rss(runner_pid), peak_rss(workers[0].pid))


def ipyparallel_memory(cluster: Any, engine: Any) -> Memory:
    """The controller's memory and one engine's."""
    controller_pid, engine_pid = cluster.controller.pid, engine.apply_sync(os.getpid)
    return Memory(
        rss(controller_pid), rss(engine_pid), peak_rss(controller_pid), peak_rss(engine_pid)
    )


def bare_ipython_rss() -> int:
    """Resident bytes of a fresh process holding nothing but an IPython shell."""
    out = subprocess.run(
        [sys.executable, "-c", BARE_IPYTHON_RSS], capture_output=True, text=True, check=False
    )
    check(out.returncode == 0, f"bare IPython process failed:\n{out.stderr[-2000:]}")
    return int(out.stdout.split()[-1])


# -- W5 cold start -----------------------------------------------------------------------------


def cold_start(script: str, *args: str) -> dict[str, float]:
    """Run a W5 script in a fresh process: its start-up and first-result seconds."""
    command = [sys.executable, "-c", script, str(time.time()), *args]
    with subprocess.Popen(command, stdout=PIPE, stderr=PIPE, text=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=COLD_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # its `finally` stops what it started
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=30)
            proc.kill()
            raise CheckFailed(f"a cold start took over {COLD_TIMEOUT} s") from None
    check(proc.returncode == 0, f"cold-start process failed:\n{stderr[-2000:]}")
    figures: dict[str, float] = json.loads(stdout.splitlines()[-1])
    return figures


def cold_starts(root: Path, sizes: Sizes) -> dict[str, list[dict[str, float]]]:
    """W5 for nbremote (a new NBREMOTE_HOME each time) and ipyparallel, one after the other."""
    runs: dict[str, list[dict[str, float]]] = {"nbremote": [], "ipyparallel": []}
    for repeat in range(sizes.cold_repeats):
        home = root / f"cold-{repeat}"
        try:
            runs["nbremote"].append(cold_start(NBREMOTE_COLD, str(home)))
        finally:
            _embedded.stop(home)  # in case the process died before stopping it
        runs["ipyparallel"].append(cold_start(IPYPARALLEL_COLD))
    return runs


# -- the suite ---------------------------------------------------------------------------------


@contextlib.contextmanager
def embedded_runner(home: Path) -> Iterator[None]:
    """Make ``home`` this process's NBREMOTE_HOME; stop its embedded runner on the way out."""
    os.environ["NBREMOTE_HOME"] = str(home)
    try:
        yield
    finally:
        _embedded.stop(home)


@contextlib.contextmanager
def ipyparallel_cluster(engines: int) -> Iterator[tuple[Any, Any]]:
    """A started local cluster and a client connected to it; stopped on the way out."""
    cluster = ipyparallel.Cluster(n=engines, log_level=40)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its progress bar
            rc = cluster.start_and_connect_sync()
        yield cluster, rc
    finally:
        cluster.stop_cluster_sync()


def run_nbremote(shell: InteractiveShell, home: Path, sizes: Sizes) -> dict[str, Any]:
    """W4, W3 and memory figures of nbremote."""
    figures: dict[str, Any] = {}
    with embedded_runner(home):
        progress(f"nbremote W4: {sizes.warmup} + {sizes.repeats} warm cells")
        figures["warm_ms"] = local_warm_cell_ms(shell, f"%%remote\n{WARM_CELL}", sizes)
        figures["memory_idle"] = nbremote_memory()
        progress(f"nbremote W3: {sizes.array_bytes // MIB} MiB array, {sizes.ship_repeats}x2")
        figures["ship_first_s"], figures["ship_unchanged_s"] = ship_nbremote(shell, sizes)
        figures["memory_after_ship"] = nbremote_memory()
    shell.user_ns.pop("a")
    return figures


def run_ipyparallel(shell: InteractiveShell, sizes: Sizes) -> dict[str, Any]:
    """W4, W3 and memory figures of ipyparallel."""
    figures: dict[str, Any] = {}
    progress("ipyparallel: starting a 2-engine cluster")
    with ipyparallel_cluster(engines=2) as (cluster, rc):
        dview = rc[:]
        dview.block = True
        dview.activate()  # registers %%px on the shell
        progress(f"ipyparallel W4: {sizes.warmup} + {sizes.repeats} warm %%px cells")
        figures["warm_ms"] = px_warm_cell_ms(shell, dview, sizes)
        figures["memory_idle"] = ipyparallel_memory(cluster, rc[0])
        progress(f"ipyparallel W3: {sizes.array_bytes // MIB} MiB array, {sizes.ship_repeats}x")
        figures["ship_first_s"] = ship_ipyparallel(rc[0], sizes)
        figures["memory_after_ship"] = ipyparallel_memory(cluster, rc[0])
    return figures


def run_suite(sizes: Sizes) -> dict[str, Any]:
    """Every workload, cold starts first (on an otherwise idle machine)."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="nbremote-bench-") as tmp:
        root = Path(tmp)
        os.environ["IPYTHONDIR"] = str(root / "ipython")
        progress(f"W5 cold starts: {sizes.cold_repeats}x nbremote and ipyparallel")
        cold = cold_starts(root, sizes)
        shell = make_shell()
        progress("floors: W4 locally, W3 over one loopback hop and as one memcpy")
        floor = {
            "warm_ms": local_warm_cell_ms(shell, WARM_CELL, sizes),
            "hop_s": loopback_hop_s(sizes),
            "memcpy_s": memcpy_s(sizes),
        }
        nbremote_figures = run_nbremote(shell, root / "home", sizes)
        ipyparallel_figures = run_ipyparallel(shell, sizes)
        bare_rss = bare_ipython_rss()
    return {
        "load_before": load_before,
        "cold": cold,
        "floor": floor,
        "nbremote": nbremote_figures,
        "ipyparallel": ipyparallel_figures,
        "bare_ipython_rss": bare_rss,
    }


# -- the report --------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table, with the issue's target where it sets one."""

    measure: str
    unit: str
    nbremote: float
    peer: float | None = None
    target: float | None = None  # a minimum for GB/s, a maximum otherwise

    @property
    def higher_is_better(self) -> bool:
        return self.unit == "GB/s"

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.higher_is_better:
            return self.nbremote >= self.target
        return self.nbremote <= self.target

    def target_text(self) -> str:
        if self.target is None:
            return ""
        return f"{'≥' if self.higher_is_better else '≤'} {self.target:g} {self.unit}"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if unit in ("GB/s", "s") else f"{value:.1f}"


def gb_per_s(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e9


def cold_median(cold: dict[str, list[dict[str, float]]], tool: str, key: str) -> float:
    return median([run[key] for run in cold[tool]])


def percentiles(
    ours: dict[str, Any], peer: dict[str, Any], key: str, q: float
) -> tuple[float, float]:
    """The q-th percentile of a sample list of nbremote and of ipyparallel."""
    return percentile(ours[key], q), percentile(peer[key], q)


def mib_pair(
    ours: dict[str, Any], peer: dict[str, Any], when: str, what: str
) -> tuple[float, float]:
    """One `Memory` figure in MiB, for both tools, ``when`` idle or after_ship."""
    return mib(getattr(ours[f"memory_{when}"], what)), mib(getattr(peer[f"memory_{when}"], what))


def rows(figures: dict[str, Any], sizes: Sizes) -> list[Row]:
    """The table: each figure next to its peer."""
    ours, peer, cold = figures["nbremote"], figures["ipyparallel"], figures["cold"]
    nbytes = sizes.array_bytes
    size = f"{nbytes // MIB} MiB"
    first_s, peer_first_s = median(ours["ship_first_s"]), median(peer["ship_first_s"])
    floor = figures["floor"]
    hop_s = median(floor["hop_s"])
    return [
        Row("W4 warm trivial cell, p50", "ms", *percentiles(ours, peer, "warm_ms", 50), target=5),
        Row("W4 warm trivial cell, p90", "ms", *percentiles(ours, peer, "warm_ms", 90)),
        Row("W4 floor: local `run_cell`, p50", "ms", percentile(floor["warm_ms"], 50)),
        Row("W4 floor: local `run_cell`, p90", "ms", percentile(floor["warm_ms"], 90)),
        Row(
            f"W3 {size} first ship, effective",
            "GB/s",
            gb_per_s(nbytes, first_s),
            gb_per_s(nbytes, peer_first_s),
            target=1,
        ),
        Row(f"W3 {size} first ship, time", "ms", first_s * 1e3, peer_first_s * 1e3),
        Row(f"W3 floor: one loopback TCP hop of {size}", "GB/s", gb_per_s(nbytes, hop_s)),
        Row(
            f"W3 floor: one memcpy of {size}",
            "GB/s",
            gb_per_s(nbytes, median(floor["memcpy_s"])),
        ),
        Row(
            f"W3 {size} unchanged re-run",
            "ms",
            median(ours["ship_unchanged_s"]) * 1e3,
            target=50,
        ),
        Row(
            "W5 cold start to first result",
            "s",
            cold_median(cold, "nbremote", "first_result_s"),
            cold_median(cold, "ipyparallel", "first_result_s"),
            target=1.5,
        ),
        Row(
            "W5 process start incl. imports",
            "s",
            cold_median(cold, "nbremote", "startup_s"),
            cold_median(cold, "ipyparallel", "startup_s"),
        ),
        Row("RSS runner / controller, idle", "MiB", *mib_pair(ours, peer, "idle", "server")),
        Row("RSS worker / engine, idle", "MiB", *mib_pair(ours, peer, "idle", "worker")),
        Row(
            "RSS runner / controller, after W3",
            "MiB",
            *mib_pair(ours, peer, "after_ship", "server"),
        ),
        Row("RSS worker / engine, after W3", "MiB", *mib_pair(ours, peer, "after_ship", "worker")),
        Row(
            "Peak RSS runner / controller, through W3",
            "MiB",
            *mib_pair(ours, peer, "after_ship", "server_peak"),
        ),
        Row(
            "Peak RSS worker / engine, through W3",
            "MiB",
            *mib_pair(ours, peer, "after_ship", "worker_peak"),
        ),
        Row("RSS bare IPython shell process", "MiB", mib(figures["bare_ipython_rss"])),
    ]


def table(table_rows: list[Row]) -> list[str]:
    lines = [
        "| Measure | Unit | nbremote | ipyparallel | nbremote / ipyparallel | Target | Met |",
        "|---|---|--:|--:|--:|---|---|",
    ]
    for row in table_rows:
        ratio = f"{row.nbremote / row.peer:.2f}" if row.peer else "—"
        met = {None: "", True: "yes", False: "**no**"}[row.met]
        lines.append(
            f"| {row.measure} | {row.unit} | {fmt(row.nbremote, row.unit)} | "
            f"{fmt(row.peer, row.unit)} | {ratio} | {row.target_text()} | {met} |"
        )
    return lines


def notes(table_rows: list[Row], sizes: Sizes) -> list[str]:
    missed = [row.measure for row in table_rows if row.met is False]
    verdict = (
        "nbremote misses: " + "; ".join(missed) + "." if missed else "nbremote meets every target."
    )
    return [
        f"- {verdict}",
        f"- W4: {sizes.repeats} cells after {sizes.warmup} warm-up ones, each through "
        "`shell.run_cell` in a real IPython shell (so IPython's own per-cell cost, the floor "
        "row, is in every figure). ipyparallel runs blocking `%%px` on 2 engines.",
        f"- W3: median of {sizes.ship_repeats}. The first ship changes the array in place "
        "before each repeat, so its whole content travels; GB/s is decimal (array bytes / "
        "seconds / 1e9) and includes serializing, hashing, the transfer, the sum and the "
        "result coming back. ipyparallel has no content cache: it pushes the whole array every "
        "time, so the unchanged row has no peer. The hop floor sends the same bytes over one "
        "loopback TCP connection into a fresh buffer, with neither tool; the memcpy floor "
        "copies them once in memory (numpy `a.copy()`). nbremote beats the hop "
        "floor because kernel, runner and worker share this machine: buffers of 1 MiB and more "
        "go through a file in /dev/shm that the worker maps copy-on-write (one copy, and the "
        "runner never holds the data); a remote kernel would use the two socket hops instead.",
        f"- W5: median of {sizes.cold_repeats}, each in a fresh process with a fresh "
        'NBREMOTE_HOME; "process start" is from before spawning the process to just before '
        "the first cell (interpreter, imports, IPython shell, `%load_ext`).",
        "- RSS idle is after W4 (the worker holds x and y); after W3 the worker also holds the "
        "array. ipyparallel's engine figure is the engine that received it. Peak RSS is Linux's "
        "VmHWM: the most the process has held since it started.",
        "- ratio nbremote / ipyparallel: below 1 is better for times, above 1 for GB/s.",
    ]


def report(figures: dict[str, Any], sizes: Sizes) -> str:
    """The results section, in markdown."""
    table_rows = rows(figures, sizes)
    today = datetime.date.today().isoformat()
    header = [
        "## Core cell path (bench/bench_cells.py)",
        "",
        f"- Date: {today}",
        f"- Machine: {machine()}; load average before the run {figures['load_before']:.2f}",
        f"- Python {platform.python_version()}, nbremote {version('nbremote')} "
        f"(checkout {checkout()}), ipyparallel "
        f"{ipyparallel.__version__}, IPython {version('ipython')}, numpy {np.__version__}",
        "",
    ]
    return "\n".join([*header, *table(table_rows), "", *notes(table_rows, sizes)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, few repeats; does not write RESULTS.md"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    try:
        figures = run_suite(sizes)
    except CheckFailed as exc:
        print(f"bench_cells: check failed: {exc}", file=sys.stderr)
        return 1
    section = report(figures, sizes)
    print(section)
    if not args.quick:
        write_results(section, "bench_cells")
        progress(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
