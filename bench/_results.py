"""What every benchmark of the suite shares: statistics, the machine's description, and the
writing of its own section of RESULTS.md. Standard library only (peers' environments import it).
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"


class CheckFailed(Exception):
    """A benchmarked tool failed or gave a wrong answer."""


def check(ok: bool, what: str) -> None:
    """Raise `CheckFailed` saying ``what`` unless ``ok``."""
    if not ok:
        raise CheckFailed(what)


def progress(message: str) -> None:
    """Say what runs now (stderr, so stdout carries only the results)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def median(samples: list[float]) -> float:
    """The median."""
    return float(statistics.median(samples))


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile, interpolated linearly (as numpy's default)."""
    if len(samples) == 1:
        return samples[0]
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ms(values: list[float], q: float = 50) -> str:
    """The ``q`` percentile of ``values`` (seconds) in milliseconds, two decimals."""
    return f"{percentile(values, q) * 1e3:.2f}"


def machine() -> str:
    """CPU count and model, and RAM, of this machine."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            (line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line),
            model,
        )
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return f"{os.cpu_count()} cores, {model}, {ram:.0f} GiB RAM"


def checkout() -> str:
    """The commit this checkout is at, ``-dirty`` if it has changes."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=HERE,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    return "unknown"


def write_results(section: str, name: str) -> None:
    """Put ``section`` into RESULTS.md between the markers of ``name``, keeping the rest."""
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    block = f"{begin}\n{section}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if begin in text and end in text:
        before, _, rest = text.partition(begin)
        _, _, after = rest.partition(end)
        text = f"{before}{block}{after}"
    else:
        text = f"{text.rstrip()}\n\n{block}\n"
    RESULTS.write_text(text)
