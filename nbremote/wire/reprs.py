"""Short reprs of values, made where the values live.

A scheduled job's run record shows the repr of each value the run left, and the runner that keeps
the record never unpickles what a worker sends: the worker makes the reprs of its own values and
sends them as text. Standard library only: the worker imports this.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Mapping
from typing import Any

REPR_LIMIT = 1000
"""The longest repr kept of a value (characters)."""


def short_reprs(namespace: Mapping[str, Any], names: Iterable[str]) -> dict[str, str]:
    """Each name's value as `reprlib` shows it, cut to `REPR_LIMIT` characters (a big list
    costs its first items, not all of them); a repr that raises is named, not raised.

    Example:
        >>> short_reprs({"xs": list(range(100))}, ["xs"])
        {'xs': '[0, 1, 2, 3, 4, 5, ...]'}
    """
    shower = reprlib.Repr()
    shower.maxstring = shower.maxother = REPR_LIMIT
    shown = {}
    for name in names:
        if name not in namespace:
            continue
        try:
            text = shower.repr(namespace[name])
        except Exception as exc:  # the cell's object: its __repr__ may do anything
            text = f"<repr failed: {type(exc).__name__}>"
        shown[name] = text[:REPR_LIMIT]
    return shown
