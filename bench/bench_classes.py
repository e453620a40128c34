"""Benchmarks of remote classes and runner-held state (issue 5), next to a Ray actor.

Run ``.venv/bin/python bench/bench_classes.py`` to measure and write the ``bench_classes``
section of ``bench/RESULTS.md``; ``--quick`` uses few repeats and writes nothing. The exit
status is non-zero when a call gives a wrong answer.

W6 warm method call
    ``Model().predict.remote(x)`` on an ``@app.cls`` whose ``@nr.enter`` loaded state, warm:
    p50 and p90. Peer: a method call on a Ray actor (``ray.get(actor.predict.remote(x))``), run
    in Ray's own environment under ``bench/.envs/ray`` when it exists (bench_functions.py
    installs it).
Dict from a worker
    Inside a remote function, ``d[k] = v`` then ``d[k]`` on an ``nr.Dict``, timed there, one
    pair at a time: p50 and p90 of each operation.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _results import checkout, machine, median, percentile, write_results

import nbremote as nr
from nbremote._embedded import stop

RAY_PYTHON = Path(__file__).parent / ".envs" / "ray" / "bin" / "python"
TARGET_METHOD_US = 300
TARGET_DICT_US = 200

app = nr.App("bench-classes")


@app.cls(max_containers=1)
class Model:
    @nr.enter()
    def load(self) -> None:
        self.weights = list(range(100))

    @nr.method()
    def predict(self, x: int) -> int:
        return self.weights[x % 100] + x


@app.function()
def dict_ops(repeats: int) -> dict[str, list[float]]:
    import time

    shared = nr.Dict.from_name("bench-classes", create_if_missing=True)
    puts, gets = [], []
    for i in range(repeats):
        started = time.perf_counter()
        shared[i % 10] = i
        between = time.perf_counter()
        value = shared[i % 10]
        gets.append((time.perf_counter() - between) * 1e6)
        puts.append((between - started) * 1e6)
        assert value == i
    return {"put": puts, "get": gets}


def method_calls_us(repeats: int) -> list[float]:
    import time

    model = Model()
    for x in range(50):
        assert model.predict.remote(x) == 2 * x
    samples = []
    for x in range(repeats):
        started = time.perf_counter()
        result = model.predict.remote(x)
        samples.append((time.perf_counter() - started) * 1e6)
        if result != x % 100 + x:
            raise SystemExit(f"wrong answer from Model.predict({x}): {result}")
    return samples


RAY_ACTOR = textwrap.dedent(
    """
    import json, sys, time
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    @ray.remote
    class Model:
        def __init__(self):
            self.weights = list(range(100))
        def predict(self, x):
            return self.weights[x % 100] + x
    model = Model.remote()
    for x in range(50):
        assert ray.get(model.predict.remote(x)) == 2 * x
    samples = []
    for x in range(int(sys.argv[1])):
        started = time.perf_counter()
        assert ray.get(model.predict.remote(x)) == x % 100 + x
        samples.append((time.perf_counter() - started) * 1e6)
    ray.shutdown()
    print(json.dumps(samples))
    """
)


def ray_actor_us(repeats: int) -> list[float] | None:
    if not RAY_PYTHON.exists():
        return None
    result = subprocess.run(
        [str(RAY_PYTHON), "-c", RAY_ACTOR, str(repeats)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise SystemExit(f"the Ray actor benchmark failed:\n{result.stderr[-2000:]}")
    samples: list[float] = json.loads(result.stdout.strip().splitlines()[-1])
    return samples


def row(name: str, samples: list[float], target: str, met: bool | None) -> str:
    verdict = "" if met is None else ("yes" if met else "**no**")
    p50, p90 = median(samples), percentile(samples, 90)
    return f"| {name} | {p50:.0f} | {p90:.0f} | {target} | {verdict} |"


def report(method: list[float], ops: dict[str, list[float]], ray: list[float] | None) -> str:
    ray_version = "not installed" if ray is None else "installed in bench/.envs/ray"
    lines = [
        "## Classes and runner-held state (bench/bench_classes.py)",
        "",
        f"- Date: {datetime.date.today().isoformat()}",
        f"- Machine: {machine()}",
        f"- Python {sys.version.split()[0]}, nbremote {version('nbremote')} "
        f"(checkout {checkout()}), Ray: {ray_version}",
        "",
        "| Measure (µs) | p50 | p90 | Target | Met |",
        "|---|--:|--:|---|---|",
        row(
            "W6 warm method call, nbremote `@app.cls`",
            method,
            f"≤ {TARGET_METHOD_US}",
            median(method) <= TARGET_METHOD_US,
        ),
    ]
    if ray is not None:
        lines.append(row("W6 warm method call, Ray actor", ray, "", None))
        lines.append(f"| ratio nbremote / Ray (p50) | {median(method) / median(ray):.2f} | | | |")
    for op in ("put", "get"):
        samples = ops[op]
        lines.append(
            row(
                f"Dict {op} from a worker",
                samples,
                f"≤ {TARGET_DICT_US}",
                median(samples) <= TARGET_DICT_US,
            )
        )
    lines += [
        "",
        "- A method call goes kernel → worker directly (the runner leases the worker to the",
        "  kernel: see nbremote/_direct.py); the Dict operations go worker → runner → worker.",
        "  Measured after 50 warm-up calls; times in microseconds.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repeats; write nothing")
    args = parser.parse_args(argv)
    repeats = 100 if args.quick else 2000
    home = Path(tempfile.mkdtemp(prefix="nbremote-bench-"))
    os.environ["NBREMOTE_HOME"] = str(home)
    os.environ.pop("NBREMOTE_URL", None)
    try:
        method = method_calls_us(repeats)
        ops: dict[str, Any] = dict_ops.remote(repeats)
    finally:
        stop(home)
    ray = None if args.quick else ray_actor_us(repeats)
    section = report(method, ops, ray)
    print(section)
    if not args.quick:
        write_results(section, "bench_classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
