"""What every CLI command shares: one table-or-JSON printer, one byte formatter, one parser each
for durations and sizes, and the dates in listings.

Only the standard library is imported at the top: the kernel's ``%remote status`` formats bytes
with `format_bytes` too, and must not pay for click or rich (imported when a table is drawn).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any, TextIO

# A pipe gets lines this wide at most: wide enough that no cell is ever wrapped, so what a script
# or a test reads does not depend on the terminal it was started from.
PLAIN_WIDTH = 10_000

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
_SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def format_bytes(nbytes: float | None) -> str:
    """A byte count for people: ``512 B``, ``1.5 KiB`` ... ``2.0 TiB``; ``?`` when unknown.

    Example:
        >>> format_bytes(3 * 2**29)
        '1.5 GiB'
    """
    if nbytes is None:
        return "?"
    size = float(nbytes)
    for unit in _BYTE_UNITS:
        if abs(size) < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def parse_size(text: str | int) -> int:
    """Bytes from ``1048576``, ``500M``, ``20G``, ``1.5T`` (binary units).

    Raises:
        ValueError: not a size, or negative (the message shows the expected form).
    """
    if isinstance(text, int) and not isinstance(text, bool):
        size = text
    else:
        value = str(text).strip()
        scale = _SIZE_UNITS.get(value[-1:].upper())
        try:
            size = int(float(value[:-1] if scale else value) * (scale or 1))
        except (ValueError, OverflowError):
            size = -1
    if size < 0:
        raise ValueError(f"{text!r}: expected a size like 500M or 20G")
    return size


def parse_duration(text: str) -> float:
    """Seconds from ``30``, ``90s``, ``15m``, ``12h``, ``7d``.

    Raises:
        ValueError: not a duration (the message shows the expected forms).
    """
    value = text.strip()
    scale = _DURATION_UNITS.get(value[-1:])
    try:
        return float(value[:-1]) * scale if scale else float(value)
    except ValueError:
        raise ValueError(f"{text!r}: expected a duration: 90s, 15m, 12h, 7d") from None


def format_ago(when: float | None, now: float | None = None) -> str:
    """How long ago a timestamp was: ``5 s ago``, ``3 min ago``, ``2 d ago``; ``never``."""
    if when is None:
        return "never"
    seconds = (time.time() if now is None else now) - when
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def format_when(timestamp: float) -> str:
    """A timestamp as local ``YYYY-MM-DD HH:MM``."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def render_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    right: Collection[str] = (),
    terminal: bool = False,
    width: int = PLAIN_WIDTH,
) -> str:
    """A table with a header row, columns aligned (those named in ``right`` to the right).

    Cells are shown as they are: no markup, emoji codes or highlighting is read into them. With
    ``terminal`` the header is bold; else the text is plain, with no trailing spaces.

    Example:
        >>> print(render_table(["NAME", "SIZE"], [["a", "1 B"]], right={"SIZE"}))
        NAME  SIZE
        a      1 B
    """
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold" if terminal else "")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        force_terminal=terminal,
        color_system="auto" if terminal else None,
        highlight=False,
        markup=False,
        emoji=False,
    )
    console.print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def display_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    document: Any,
    as_json: bool,
    *,
    empty: str | None,
    right: Collection[str] = (),
    file: TextIO | None = None,
) -> None:
    """Print a listing: ``document`` as one JSON document with ``--json``, else a table.

    Args:
        columns: the header row.
        rows: one sequence of cells per row, in the order of ``columns``.
        document: what ``--json`` prints (the runner's own answer, so scripts get every field).
        as_json: print ``document`` rather than the table.
        empty: the line printed instead of a table without rows ("no volumes"); None: nothing.
        right: columns aligned to the right (numbers, sizes).
        file: where to print (stdout).
    """
    out = file or sys.stdout
    if as_json:
        print(json.dumps(document, indent=2), file=out)
        return
    rows = list(rows)
    if not rows:
        if empty is not None:
            print(empty, file=out)
        return
    terminal = out.isatty()
    width = shutil.get_terminal_size().columns if terminal else PLAIN_WIDTH
    print(render_table(columns, rows, right=right, terminal=terminal, width=width), file=out)
