"""Benchmark of the runner's Dict and Queue writes: throughput and latency of answered writes, in
this tree (answered once on disk, group commit) and at an older revision (answered at once, each
write its own transaction later, in the state thread).

Run ``.venv/bin/python bench/bench_stores.py`` (``--seconds``, ``--clients 1,16,64``,
``--before REV``; ``--quick`` for a smoke test). It prints a markdown table and writes it into
its section of RESULTS.md (not with ``--quick``). The exit status is non-zero when an answer is
not ``ok``.

It drives ``Stores.answer`` in this process on a fresh SQLite file in a temporary folder (of
``TMPDIR``: put it on the disk the runner's data dir is on): no network and no pickling, so
that what is measured is the stores and their writes. C clients (coroutines) each send their
next request as soon as the last is answered:

dict-put
    Dict puts of keys of their own, 1 KB values.
queue-put-get
    A Queue put of one 1 KB value, then a get of one value (timeout 0); one op is the pair.

For each: answered ops/s; p50 and p99 of the time to an answer; and saved ops/s, the ops
divided by the time until the state is closed, every write on disk (for the old code this
includes the writes it had answered but not yet made). Variants: this tree with
``synchronous=FULL`` (what it uses), this tree with ``synchronous=NORMAL`` (a commit survives a
kill -9 but not a power cut), and the old revision (``synchronous=NORMAL``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from _results import check, checkout, machine, percentile, progress, write_results

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "feecc9d"  # the last commit whose stores answered before writing
VALUE = b"v" * 1024


def old_stores(revision: str) -> ModuleType:
    """``runner/stores.py`` (and its ``state.py``) as they were at ``revision``."""
    folder = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    package = folder / "stores_before"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("state.py", "stores.py"):
        source = subprocess.run(
            ["git", "show", f"{revision}:runner/{name}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        # The frame module has moved since; the old stores only need its type alias.
        source = source.replace("from nbremote._protocol import Header", "Header = dict")
        (package / name).write_text(source)
    sys.path.insert(0, str(folder))
    return importlib.import_module("stores_before.stores")


async def ask(stores: Any, header: dict[str, Any], buffers: list[bytes]) -> dict[str, Any]:
    done, _ = await stores.answer(header, buffers)
    check(done["ok"], f"an answer was not ok: {done}")
    result: dict[str, Any] = done
    return result


async def client(stores: Any, workload: str, me: int, until: float, took: list[float]) -> None:
    put = {"op": "dict", "name": "bench", "action": "put", "nkey": 1}
    queue_put = {"op": "queue", "name": "bench", "action": "put", "sizes": [1]}
    queue_get = {"op": "queue", "name": "bench", "action": "get", "n": 1, "timeout": 0}
    n = 0
    while time.perf_counter() < until:
        n += 1
        started = time.perf_counter()
        if workload == "dict-put":
            await ask(stores, put, [f"{me}-{n}".encode(), VALUE])
        else:
            await ask(stores, queue_put, [VALUE])
            await ask(stores, queue_get, [])
        took.append(time.perf_counter() - started)
        await asyncio.sleep(0)  # as between two frames from the network: let others in


async def measure(
    module: ModuleType, workload: str, clients: int, seconds: float, synchronous: str | None
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-stores-") as folder:
        state = module.State(Path(folder) / "state.db")
        await state.open()
        if synchronous is not None:
            await state.query(f"PRAGMA synchronous={synchronous}")
        stores = module.Stores(state, 10**9)
        await ask(stores, {"op": workload.split("-")[0], "name": "bench", "action": "lookup",
                           "create": True}, [])  # fmt: skip
        took: list[float] = []
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(*(client(stores, workload, me, until, took) for me in range(clients)))
        answered = time.perf_counter() - started
        await state.close()
        saved = time.perf_counter() - started
    return {
        "answered": len(took) / answered,
        "saved": len(took) / saved,
        "p50": percentile(took, 50) * 1000,
        "p99": percentile(took, 99) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="of load per measurement")
    parser.add_argument("--clients", default="1,16,64", help="concurrent clients, comma-separated")
    parser.add_argument("--before", default=BEFORE, help="the old revision to compare with")
    parser.add_argument("--quick", action="store_true", help="0.2 s per row, 1 and 4 clients")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.clients = 0.2, "1,4"
    variants = [
        ("this tree, FULL", importlib.import_module("nbremote_runner.stores"), None),
        ("this tree, NORMAL", importlib.import_module("nbremote_runner.stores"), "NORMAL"),
        (f"{args.before} (answer first)", old_stores(args.before), None),
    ]
    lines = [
        "## Durable Dict and Queue writes (bench/bench_stores.py)",
        "",
        f"- Machine: {machine()}; nbremote checkout {checkout()}; {args.seconds:g} s per row",
        "- The runner's stores in-process on a fresh SQLite file (WAL). *Answered*: requests",
        "  answered per second; *saved*: until every write is on disk (the old code answered",
        f"  first and wrote later). Old code: {args.before}, read from git.",
        "",
        "| workload | clients | code | answered ops/s | saved ops/s | p50 ms | p99 ms |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for workload in ("dict-put", "queue-put-get"):
        for clients in map(int, args.clients.split(",")):
            for label, module, synchronous in variants:
                progress(f"{workload}, {clients} clients, {label}")
                got = asyncio.run(measure(module, workload, clients, args.seconds, synchronous))
                lines.append(
                    f"| {workload} | {clients} | {label} | {got['answered']:,.0f} | "
                    f"{got['saved']:,.0f} | {got['p50']:.3f} | {got['p99']:.3f} |"
                )
    section = "\n".join(lines)
    print(section)
    if not args.quick:
        write_results(section, "bench_stores")


if __name__ == "__main__":
    main()
