"""``python -m tests.fidelity.report [NAME ...]``: the fidelity suite's match rate.

Runs each notebook (the project's own in house/ and all of SOURCES.md's, or those named) locally
and under ``%%remote`` on one runner of its own, then prints per notebook the cells that match out
of its code cells (less the unstable ones of known_differences.toml), the diff of each mismatching
cell (and whether known_differences.toml expects it), and the total.
``--known FILE`` also writes the current mismatches as known_differences.toml entries to FILE,
to start that file from (each entry's item is then to be filled in by hand).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tests.fidelity.harness import (
    NotebookResult,
    compare_all,
    fidelity_runner,
    house_names,
    notebook_names,
    notebooks_folder,
)
from tests.fidelity.known import known_differences, unstable_cells


def _print_notebook(result: NotebookResult, known: dict[int, str], quiet: bool) -> None:
    total = len(result.cells)
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    print(f"== {result.name}: {result.matched}/{total} cells match ({timing})")
    if quiet:
        return
    for cell in result.mismatched:
        status = "known" if cell.index in known else "NEW"
        print(f"-- cell {cell.index} ({status}): {cell.head}")
        print("   " + cell.diff.replace("\n", "\n   "))


def _write_known(results: list[NotebookResult], path: Path) -> None:
    lines = []
    for result in results:
        lines.append(f"\n[{result.name}]")
        for cell in result.mismatched:
            lines.append(f"{cell.index} = {json.dumps('item ?: ' + cell.head[:50])}")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebooks to run (default: all)")
    parser.add_argument("--quiet", action="store_true", help="only the per-notebook rates")
    parser.add_argument("--at-once", type=int, default=2, help="notebooks run side by side")
    parser.add_argument("--known", type=Path, help="write the mismatches as TOML entries here")
    args = parser.parse_args(argv)
    folder = notebooks_folder()
    names = args.names or [*house_names(), *(notebook_names() if folder else [])]
    if folder is None and not set(names) <= set(house_names()):
        print("no fidelity notebooks found: see tests/fidelity/SOURCES.md", file=sys.stderr)
        return 2
    known = known_differences()
    results: list[NotebookResult] = []
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="fidelity-runner-") as scratch,
        fidelity_runner(Path(scratch) / "runner") as runner,
    ):
        for result in compare_all(names, folder, runner, Path(scratch) / "home", args.at_once):
            unstable = unstable_cells().get(result.name, {})
            result.cells = [cell for cell in result.cells if cell.index not in unstable]
            results.append(result)
            _print_notebook(result, known.get(result.name, {}), args.quiet)
    if args.known:
        _write_known(results, args.known)
    matched = sum(r.matched for r in results)
    total = sum(len(r.cells) for r in results)
    print(
        f"\nTOTAL: {matched}/{total} cells match ({100 * matched / max(total, 1):.1f}%) "
        f"in {len(results)} notebooks, {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
