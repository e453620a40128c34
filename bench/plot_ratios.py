"""Draw bench/ratios.png: how nbremote compares with each peer, from the tables in RESULTS.md.

Every table column headed ``nbremote / ...`` (and every ``ratio nbremote / ...`` row) holds a
ratio measured pair by pair in one run. The plot turns each into "times faster than the peer"
(peer time / nbremote time, or nbremote throughput / peer throughput), so that right of 1 is a
win for nbremote whatever the unit. Run by ``make bench`` after the suites.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
THROUGHPUT = re.compile(r"/s\b|GB/s|inputs/s")
TIME = re.compile(r"\b(ms|µs|s)$")  # a ratio column named with its unit


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _number(text: str) -> float | None:
    try:
        value = float(text.replace(",", "").replace("*", ""))
    except ValueError:
        return None
    return value if value > 0 and math.isfinite(value) else None


def _table_ratios(
    heading: str, header: list[str], rows: list[list[str]]
) -> list[tuple[str, float]]:
    """(label, times faster) for each row of one table with a ``nbremote / ...`` column."""
    columns = [i for i, name in enumerate(header) if name.startswith("nbremote")]
    columns = [i for i in columns if " / " in header[i]]
    # The first such column (p50 over p90, say), or all whose names end in their unit.
    columns = columns[:1] + [i for i in columns[1:] if TIME.search(header[i])]
    found = []
    for column in columns:
        found += _column_ratios(heading, header, rows, column, several=len(columns) > 1)
    return found


def _column_ratios(
    heading: str, header: list[str], rows: list[list[str]], column: int, several: bool
) -> list[tuple[str, float]]:
    """The ratios of one ``nbremote / ...`` column; a column whose name ends in its unit
    (``..., first ms``) says itself whether it is a time."""
    found: list[tuple[str, float]] = []
    name = header[column]
    for row in rows:
        ratio = _number(row[column]) if column < len(row) else None
        if ratio is None or row[0].startswith("floor"):
            continue  # a floor is no peer: it bounds what any tool can do
        peer = name.split(" / ", 1)[1].split(",")[0]
        if peer == "tool":  # one peer per row: its name is in the first column
            peer = re.sub(r"\s*\(.*?\)|`", "", row[0])
            label = f"{heading}: {peer}"
            if several:  # which of the columns: "..., first ms" -> "(first ms)"
                label += f" ({name.split(',', 1)[-1].strip()})"
            if any(seen.startswith(label) for seen, _ in found):
                label += f" ({row[1].replace('`', '')[:40]})"
        else:
            label = f"{row[0].replace('`', '')} vs {peer}"
        unit = " ".join([heading, *header, *row[:2]])
        is_time = TIME.search(name) is not None or not THROUGHPUT.search(unit)
        found.append((label, 1 / ratio if is_time else ratio))
    return found


def ratios(markdown: str) -> list[tuple[str, float]]:
    """Every ratio in RESULTS.md as (label, times faster than the peer)."""
    found: list[tuple[str, float]] = []
    heading = ""
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            first = line.lstrip("# ").split(" ")[0].rstrip(",:")
            heading = first if re.fullmatch(r"W\d", first) else ""  # "### W1 warm ...", "## W5 ..."
        if line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = _cells(line)
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            found += _table_ratios(heading, header, rows)
            for row in rows:  # bench_classes writes its ratio as a row of its own
                match = re.match(r"ratio nbremote / (.+?) \(p50\)", row[0])
                value = _number(row[1]) if match and len(row) > 1 else None
                if match and value:
                    found.append((f"W6 method call vs {match.group(1)} actor", 1 / value))
            continue
        i += 1
    return found


def plot(points: list[tuple[str, float]], out: Path) -> None:
    """A horizontal bar per ratio, on a log scale, with the break-even line at 1."""
    labels = [label for label, _ in points]
    values = [value for _, value in points]
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(points) + 1.2))
    colors = ["#2a9d8f" if value >= 1 else "#e76f51" for value in values]
    ax.barh(range(len(points)), values, color=colors)
    ax.set_yticks(range(len(points)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_xlabel("times better than the peer: time, throughput or memory\n(right of 1: nbremote)")
    ax.set_title("nbremote vs peers, pair by pair in the same runs")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> int:
    points = ratios((HERE / "RESULTS.md").read_text())
    if not points:
        print("no ratios in bench/RESULTS.md yet: run the suites first", file=sys.stderr)
        return 1
    plot(points, HERE / "ratios.png")
    print(f"wrote bench/ratios.png ({len(points)} ratios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
