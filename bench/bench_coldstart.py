"""W5 cold start to first result, nbremote against every peer (issue 6).

Run ``.venv/bin/python bench/bench_coldstart.py`` to measure and write the ``bench_coldstart``
section of ``bench/RESULTS.md``; ``--quick`` takes one sample, skips peers whose environment is
not installed yet, and writes nothing. The exit status is non-zero when a tool fails or gives a
wrong answer.

Each sample is a fresh Python process (``coldstart_child.py``, which imports nothing of this
harness) that starts everything it needs and makes one call of
``inc(1)``: nbremote starts its embedded runner in a fresh ``NBREMOTE_HOME`` and calls
``inc.remote(1)``; ProcessPoolExecutor(2) ``submit``; ipyparallel ``Cluster(n=2)`` and
``apply_sync``; Dask ``LocalCluster(n_workers=2)`` and ``submit``; Ray ``init(num_cpus=2)`` and a
task. The time runs from spawning the process to the moment it prints the checked result
(interpreter start and imports included, teardown excluded). Dask and Ray run in their own
environments under ``bench/.envs`` (made by bench_functions.py).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import CheckFailed, check, checkout, machine, median, progress, write_results
from bench_functions import Unavailable, peer_python

TOOLS = ["nbremote", "processpool", "ipyparallel", "dask", "ray"]
NAMES = {
    "nbremote": "nbremote (embedded runner)",
    "processpool": "ProcessPoolExecutor(2)",
    "ipyparallel": "ipyparallel Cluster(n=2)",
    "dask": "Dask LocalCluster(n_workers=2)",
    "ray": "Ray init(num_cpus=2)",
}
FIRST_RESULT_TIMEOUT = 120.0
HERE = Path(__file__).resolve().parent


def sample(tool: str, python: Path, root: Path) -> float:
    """Seconds from spawning a fresh process of ``tool`` to its first (checked) result."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBREMOTE_")}
    env["NBREMOTE_HOME"] = tempfile.mkdtemp(prefix="home-", dir=root)
    env["IPYTHONDIR"] = str(root / "ipython")
    command = [str(python), str(HERE / "coldstart_child.py"), tool]
    started = time.perf_counter()
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        process_group=0,
    ) as proc:
        assert proc.stdout is not None
        try:
            line = proc.stdout.readline()
            elapsed = time.perf_counter() - started
            _, stderr = proc.communicate(timeout=FIRST_RESULT_TIMEOUT)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    check(line.strip() == "2", f"{tool} answered {line.strip()!r}:\n{stderr[-2000:]}")
    check(proc.returncode == 0, f"{tool} failed:\n{stderr[-2000:]}")
    return elapsed


def compile_bytecode(python: Path) -> None:
    """Compile ``python``'s packages (and nbremote's own code) to bytecode, as pip leaves an
    installation. Without it (uv installs none, and none is written where
    PYTHONDONTWRITEBYTECODE is set, as on the machines these figures come from) every sample
    compiled pydantic, tornado and the rest from source: ~20 % of nbremote's figure, and no cold
    start a user sees. The standard library, all a process pool imports, is compiled already."""
    where = "import site; print('\\n'.join(site.getsitepackages()))"
    packages = subprocess.run(
        [python, "-c", where], capture_output=True, text=True, check=True
    ).stdout.split()
    ours = [str(HERE.parent / "nbremote"), str(HERE.parent / "runner")]
    progress(f"compiling {python}'s packages to bytecode (once; quick when done already)")
    subprocess.run(
        [python, "-m", "compileall", "-q", "-j", "0", *packages, *ours],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,  # a file that does not compile (a test fixture of some package) is no matter
        timeout=1800,
    )


def measure(
    repeats: int, may_install: bool, bytecode: bool = True
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Samples per tool that could run, and why the others could not."""
    samples: dict[str, list[float]] = {}
    unavailable: dict[str, str] = {}
    compiled: set[Path] = set()
    with tempfile.TemporaryDirectory(prefix="nbremote-cold-") as tmp:
        for tool in TOOLS:
            try:
                python = (
                    Path(sys.executable) if tool == "nbremote" else peer_python(tool, may_install)
                )
            except Unavailable as exc:
                unavailable[tool] = str(exc)
                continue
            if bytecode and python not in compiled:
                compile_bytecode(python)
                compiled.add(python)
            progress(f"{tool}: {repeats} cold starts")
            samples[tool] = [sample(tool, python, Path(tmp)) for _ in range(repeats)]
    return samples, unavailable


def report(samples: dict[str, list[float]], unavailable: dict[str, str], repeats: int) -> str:
    """The results section, in markdown."""
    ours = median(samples["nbremote"])
    lines = [
        "## W5 cold start to first result (bench/bench_coldstart.py)",
        "",
        f"- Date: {datetime.date.today().isoformat()}",
        f"- Machine: {machine()}; load average before the run {os.getloadavg()[0]:.2f}",
        f"- Python {platform.python_version()}, checkout {checkout()}",
        "",
        "| Tool | s, median | s, max | nbremote / tool, median |",
        "|---|--:|--:|--:|",
    ]
    for tool, values in samples.items():
        versus = "—" if tool == "nbremote" else f"{ours / median(values):.2f}"
        lines.append(f"| {NAMES[tool]} | {median(values):.2f} | {max(values):.2f} | {versus} |")
    lines += [
        "",
        f"- Median of {repeats} fresh processes per tool, one tool at a time; from spawning the "
        "process to its first checked result (interpreter, imports, runner or cluster start, "
        "the call); teardown not timed. Below 1 in the last column: nbremote starts faster.",
        "- Each tool's environment compiled to bytecode first, as pip leaves an installation "
        "(`compile_bytecode`; the standard library is, always).",
        "- The target (issue 23) is an embedded cold start ≤ 0.5 s (issue 6: ≤ 1.5 s).",
    ]
    lines += [f"- {NAMES[tool]} was not measured: {why}" for tool, why in unavailable.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one sample each; write nothing")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else 5
    try:
        samples, unavailable = measure(repeats, may_install=not args.quick, bytecode=not args.quick)
    except CheckFailed as exc:
        print(f"bench_coldstart: check failed: {exc}", file=sys.stderr)
        return 1
    section = report(samples, unavailable, repeats)
    print(section)
    if not args.quick:
        write_results(section, "bench_coldstart")
    return 0


if __name__ == "__main__":
    sys.exit(main())
