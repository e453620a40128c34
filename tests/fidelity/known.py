"""known_differences.toml: the cells that do not match yet, and the issue-15 item each waits for.

The file is the honest record of what a user would still notice; the tests keep it exact, so it
can only shrink as the differences are fixed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

KNOWN = Path(__file__).parent / "known_differences.toml"


def _cells(table: dict[str, dict[str, str]]) -> dict[str, dict[int, str]]:
    return {
        name: {int(index): str(reason) for index, reason in cells.items()}
        for name, cells in table.items()
    }


def known_differences(path: Path = KNOWN) -> dict[str, dict[int, str]]:
    """{notebook: {cell index: the item it waits for}}."""
    table = tomllib.loads(path.read_text())
    table.pop("unstable", None)
    return _cells(table)


def unstable_cells(path: Path = KNOWN) -> dict[str, dict[int, str]]:
    """{notebook: {cell index: why}}: cells whose output differs between two *local* runs in a
    way no small rule can normalise; they are not compared."""
    return _cells(tomllib.loads(path.read_text()).get("unstable", {}))
