"""One W5 cold-start sample: ``python coldstart_child.py TOOL`` (run by bench_coldstart.py).

A script of its own that imports nothing but the tool it samples: before, the sample ran
bench_coldstart.py itself, whose harness imports (bench_functions: multiprocessing,
concurrent.futures, tracemalloc, importlib.metadata) cost every tool's first result ~0.06 s
of CPU that was no part of starting the tool.
"""

from __future__ import annotations

import os
import sys


def inc(x: int) -> int:
    """The call every tool makes (defined here, in ``__main__``, so each ships it by value)."""
    return x + 1


def first_result(tool: str) -> int:
    """In a fresh process: start ``tool``, call ``inc(1)``, print the result, tear down."""
    if tool == "nbremote":
        import nbremote as nr
        from nbremote._embedded import stop

        try:
            print(nr.App("cold").function(inc).remote(1), flush=True)
        finally:
            from pathlib import Path

            stop(Path(os.environ["NBREMOTE_HOME"]))
    elif tool == "processpool":
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(2) as pool:
            print(pool.submit(inc, 1).result(), flush=True)
    elif tool == "ipyparallel":
        import contextlib

        import ipyparallel

        cluster = ipyparallel.Cluster(n=2, log_level=40)
        with contextlib.redirect_stdout(sys.stderr):
            rc = cluster.start_and_connect_sync()
        try:
            print(rc[0].apply_sync(inc, 1), flush=True)
        finally:
            cluster.stop_cluster_sync()
    elif tool == "dask":
        import logging

        from distributed import Client, LocalCluster

        with (
            LocalCluster(n_workers=2, dashboard_address=None, silence_logs=logging.ERROR) as lc,
            Client(lc) as client,
        ):
            print(client.submit(inc, 1, pure=False).result(), flush=True)
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import tempfile

        import ray

        with tempfile.TemporaryDirectory(prefix="ray-") as temp_dir:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp_dir)
            try:
                print(ray.get(ray.remote(inc).remote(1)), flush=True)
            finally:
                ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(first_result(sys.argv[1]))
