"""The benchmark suite keeps working: each script runs with tiny sizes (``--quick``).

Not a timed test: the figures are not checked, only that every workload ran, gave the right
answers (a wrong one makes the script exit non-zero) and reported its rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _quick(script: str, tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBREMOTE_")}
    env["NBREMOTE_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.timeout(300)
def test_bench_cells_quick(tmp_path: Path) -> None:
    out = _quick("bench_cells.py", tmp_path)
    for row in ("W4 warm trivial cell, p50", "first ship", "W5 cold start", "RSS worker"):
        assert row in out, out


@pytest.mark.timeout(300)
def test_bench_functions_quick(tmp_path: Path) -> None:
    out = _quick("bench_functions.py", tmp_path)
    assert "`inc.remote(i)`" in out and "ProcessPoolExecutor" in out, out
    assert "`list(inc.map(inputs))`" in out, out


@pytest.mark.timeout(300)
def test_bench_classes_quick(tmp_path: Path) -> None:
    out = _quick("bench_classes.py", tmp_path)
    assert "W6 warm method call, nbremote" in out and "Dict get from a worker" in out, out


@pytest.mark.timeout(300)
def test_bench_coldstart_quick(tmp_path: Path) -> None:
    out = _quick("bench_coldstart.py", tmp_path)
    assert "| nbremote (embedded runner) |" in out and "| ProcessPoolExecutor(2) |" in out, out


@pytest.mark.timeout(300)
def test_bench_images_quick(tmp_path: Path) -> None:
    out = _quick("bench_images.py", tmp_path)
    assert "One-step rebuild" in out and "Cached resolve via the API, p50" in out, out


def test_ratio_plot_reads_every_ratio_of_the_results() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from plot_ratios import ratios
    finally:
        sys.path.remove(str(BENCH))
    labels = dict(ratios((BENCH / "RESULTS.md").read_text()))
    assert any(label.startswith("W1: Ray actor") for label in labels)
    assert any(label.startswith("W4 warm trivial cell, p50") for label in labels)
    assert not any("floor" in label for label in labels)


@pytest.mark.timeout(300)
def test_bench_stores_quick(tmp_path: Path) -> None:
    out = _quick("bench_stores.py", tmp_path)
    assert "| dict-put | 4 | this tree, FULL |" in out, out
    assert "| queue-put-get | 1 | feecc9d (answer first) |" in out, out
