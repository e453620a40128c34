"""Benchmarks of the image cache (issue 7) on the process backend.

Run ``.venv/bin/python bench/bench_images.py`` to measure and write the ``bench_images`` section
of ``bench/RESULTS.md``; ``--quick`` uses few repeats and writes nothing. Every build uses uv's
global cache (warm after the first run on a machine), a new runner and a new data dir.

First build
    ``debian_slim().pip_install("six==1.16.0")`` on an empty layer cache: the base venv (the
    worker's own packages) and the pip layer.
One-step rebuild
    The same image plus ``.pip_install("idna==3.7")``: only the new layer is built.
Cached resolve
    Resolving a built image (what a worker start waits for): through the API (``POST
    /images/{id}/build`` on a built image, HTTP included), p50 and p90; and after a runner
    restart (nothing in memory).
First cell on a cached image
    ``%%remote --image img --fresh``-equivalent: a new worker in the image's venv, to the result.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

from _results import check, checkout, machine, median, percentile, write_results

sys.path.insert(0, str(Path(__file__).parents[1]))
import nbremote as nr
from nbremote import _session
from nbremote._cell import CellOptions, run_cell
from tests.conftest import RunningRunner, start_runner

TARGET_RESOLVE_MS = 50


def build(running: RunningRunner, image: nr.Image) -> tuple[float, str]:
    """Register and build an image; seconds taken and the log."""
    with running.client() as client:
        started = time.perf_counter()
        client.request("POST", "/api/v1/images", image.create_request())
        path = f"/api/v1/images/{image.object_id}/build"
        log = b"".join(client.stream(path, method="POST")).decode()
        elapsed = time.perf_counter() - started
    check("result: ok" in log, f"build of {image.object_id}:\n{log}")
    return elapsed, log


def resolve_times(running: RunningRunner, image: nr.Image, repeats: int) -> list[float]:
    samples = []
    with running.client() as client:
        for _ in range(repeats):
            started = time.perf_counter()
            log = b"".join(client.stream(f"/api/v1/images/{image.object_id}/build", "POST"))
            samples.append(time.perf_counter() - started)
            check(b"result: ok" in log and b"Installed" not in log, "a cached resolve built")
    return samples


def first_cell(running: RunningRunner, image: nr.Image) -> float:
    session = _session.connect(running.url, running.token)
    try:
        started = time.perf_counter()
        namespace: dict[str, object] = {}
        code = "import six\nv = six.__version__"
        run_cell(session, code, namespace, CellOptions(image=image), lambda f, b: None)
        check(namespace.get("v") == "1.16.0", "the cell did not run in the image")
        return time.perf_counter() - started
    finally:
        session.reset()
        session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repeats; write nothing")
    args = parser.parse_args()
    repeats = 5 if args.quick else 50
    image = nr.Image.debian_slim().pip_install("six==1.16.0")
    bigger = image.pip_install("idna==3.7")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "runner"
        running = start_runner(data)
        try:
            first_build, _ = build(running, image)
            rebuild, log = build(running, bigger)
            check("step 2/3 cached" in log, "the one-step rebuild rebuilt more than one step")
            warm = resolve_times(running, image, repeats)
            cell = first_cell(running, image)
        finally:
            running.stop()
        running = start_runner(data)
        try:
            after_restart = resolve_times(running, image, 1)[0]
        finally:
            running.stop()
    rows = [
        ("First build (base venv + 1 package), empty layer cache", "s", f"{first_build:.2f}", ""),
        ("One-step rebuild (1 package added)", "s", f"{rebuild:.2f}", ""),
        ("Cached resolve via the API, p50", "ms", f"{median(warm) * 1e3:.1f}", "≤ 50 ms"),
        ("Cached resolve via the API, p90", "ms", f"{percentile(warm, 90) * 1e3:.1f}", ""),
        ("Cached resolve after a runner restart", "ms", f"{after_restart * 1e3:.1f}", "≤ 50 ms"),
        ("First cell on a cached image (new worker)", "s", f"{cell:.2f}", ""),
    ]
    met = median(warm) * 1e3 <= TARGET_RESOLVE_MS and after_restart * 1e3 <= TARGET_RESOLVE_MS
    lines = [
        "## Image cache (bench/bench_images.py)",
        "",
        f"- Date: {datetime.date.today()}",
        f"- Machine: {machine()}",
        f"- nbremote checkout {checkout()}; uv's global cache warm",
        "",
        "| Measure | Unit | nbremote | Target |",
        "|---|---|--:|---|",
        *(f"| {what} | {unit} | {value} | {target} |" for what, unit, value, target in rows),
        "",
        f"- Cached resolve target {'met' if met else 'NOT met'}.",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.quick:
        write_results(section, "bench_images")


if __name__ == "__main__":
    main()
