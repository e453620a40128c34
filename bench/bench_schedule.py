"""Benchmark of scheduled jobs (issue 17): how late a fire starts, and what a promotion costs.

Run ``.venv/bin/python bench/bench_schedule.py`` (``--fires N``, default 100; ``--quick`` for a
smoke test that writes nothing). It prints a markdown table and writes it into its section of
RESULTS.md. The exit status is non-zero when a run fails or a figure cannot be read.

Everything runs against an embedded runner in a temporary ``NBREMOTE_HOME``, from a real IPython
shell with ``%load_ext nbremote``:

Fire lateness
    ``%%remote --schedule "every 1s" --name lateness`` over a cell that keeps ``time.time()``
    in ``t``. For each fire: the runner's start of the run minus its scheduled time (the
    scheduler's own lateness), and ``t`` minus the scheduled time (when the cell's code began:
    a fresh worker is started for every run, so this adds a worker's start). p50 and p99 over
    the fires; fires skipped because the previous run was still going are counted.
Promotion
    ``%%remote --schedule "0 2 * * *" --name nightly`` over ``s = float(a.sum())`` with a 256 MiB
    float64 ``a``: first (the array travels and is stored), then again unchanged (its hash
    travels: the runner stores each content once). Beside it, the same cell run as a plain
    ``%%remote`` cell, for scale.

Peers are not run here: neither can fire every second. jupyter-scheduler's task runner wakes
every ``run_interval`` seconds (10 by default) and creates the jobs that became due meanwhile,
so a fire is late by anything up to 10 s (uniform: p50 5 s, p99 9.9 s), and a fire due while
the Jupyter server was down is never made up. cron's finest schedule is one minute.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import CheckFailed, check, checkout, machine, percentile, progress, write_results
from bench_cells import MIB, embedded_runner, make_shell, timed_cell
from IPython.core.interactiveshell import InteractiveShell

import nbremote as nr

LATENESS_CELL = "import time\nt = time.time()"
SUM_CELL = "s = float(a.sum())"
POLLER_S = 10.0  # jupyter-scheduler's default run_interval


def fire_lateness(shell: InteractiveShell, fires: int) -> tuple[list[float], list[float], int]:
    """Seconds late, per fire, of the run's start and of its code; and how many were skipped."""
    timed_cell(shell, f'%%remote --schedule "every 1s" --name lateness\n{LATENESS_CELL}')
    job = nr.Job("lateness")
    progress(f"waiting for {fires} fires of a 1-second period")
    deadline = time.monotonic() + fires * 3 + 60
    while len(_ended(job, fires)) < fires and time.monotonic() < deadline:
        time.sleep(1)
    job.pause()
    runs = job.runs(limit=fires * 3)
    ended = sorted(_ended(job, fires), key=lambda run: run.number)[:fires]
    check(len(ended) == fires, f"only {len(ended)} of {fires} fires ended in time")
    check(all(run.status == "succeeded" for run in ended), f"a run failed: {ended}")
    start_late, code_late = [], []
    for run in ended:
        assert run.scheduled is not None and run.started is not None
        start_late.append((run.started - run.scheduled).total_seconds())
        code_late.append(run.outputs["t"] - run.scheduled.timestamp())
    return start_late, code_late, sum(run.status == "skipped" for run in runs)


def _ended(job: nr.Job, fires: int) -> list[nr.JobRun]:
    """The job's scheduled runs that ended."""
    runs = job.runs(limit=fires * 3)
    return [r for r in runs if r.trigger == "schedule" and r.status in ("succeeded", "failed")]


def promotion_s(shell: InteractiveShell, nbytes: int) -> dict[str, float]:
    """Seconds to promote the sum cell over a new array, then unchanged; and to run it."""
    shell.user_ns["a"] = np.random.rand(nbytes // 8)
    cell = f'%%remote --schedule "0 2 * * *" --name nightly\n{SUM_CELL}'
    figures = {"first_s": timed_cell(shell, cell), "unchanged_s": timed_cell(shell, cell)}
    figures["plain_cell_s"] = timed_cell(shell, f"%%remote\n{SUM_CELL}")
    return figures


def report(
    start_late: list[float],
    code_late: list[float],
    skipped: int,
    promo: dict[str, float],
    nbytes: int,
) -> str:
    ms = 1e3
    lines = [
        "## Scheduled jobs (bench/bench_schedule.py)",
        "",
        f"{machine()}; checkout {checkout()}; {len(start_late)} fires of a 1-second period, "
        f"{skipped} skipped (the previous run still going).",
        "",
        "| Figure | nbremote | jupyter-scheduler (documented) | cron (documented) |",
        "|---|---|---|---|",
        f"| fire lateness p50 | {percentile(start_late, 50) * ms:.1f} ms | "
        f"{POLLER_S / 2 * 1e3:.0f} ms | minute schedules only |",
        f"| fire lateness p99 | {percentile(start_late, 99) * ms:.1f} ms | "
        f"{POLLER_S * 0.99 * 1e3:.0f} ms | minute schedules only |",
        f"| cell code starts, p50 (fresh worker) | {percentile(code_late, 50) * ms:.0f} ms | | |",
        f"| cell code starts, p99 (fresh worker) | {percentile(code_late, 99) * ms:.0f} ms | | |",
        f"| promote, {nbytes // MIB} MiB input, first | {promo['first_s']:.2f} s | | |",
        f"| promote, same input again | {promo['unchanged_s'] * ms:.0f} ms | | |",
        f"| the same cell run once (`%%remote`) | {promo['plain_cell_s']:.2f} s | | |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fires", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="5 fires, 1 MiB; writes nothing")
    args = parser.parse_args(argv)
    fires, nbytes = (5, MIB) if args.quick else (args.fires, 256 * MIB)
    shell = make_shell()
    try:
        with tempfile.TemporaryDirectory() as home, embedded_runner(Path(home)):
            start_late, code_late, skipped = fire_lateness(shell, fires)
            progress("promotion")
            promo = promotion_s(shell, nbytes)
    except CheckFailed as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    section = report(start_late, code_late, skipped, promo, nbytes)
    print(section)
    if not args.quick:
        write_results(section, "bench_schedule")
    return 0


if __name__ == "__main__":
    sys.exit(main())
