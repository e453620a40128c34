"""Inputs of a map that meet before they go on: each notes itself in a file (every node of the
test cluster is on this machine) and waits for the others. A pool's worker takes seconds to start
on a loaded machine, so without the meeting one warm worker could run a short map alone.

The tests' remote functions call `meet`; this module travels with them by value (it is no
installed package), so the nodes need not import it.
"""

from __future__ import annotations


def meet(x: int, log: str, count: int = 3, wait: float = 150.0) -> str:
    """Write ``x``, this worker's node and pid to ``log``, then wait (at most ``wait``
    seconds) until ``count`` inputs have; this worker's node."""
    import os
    import time
    from pathlib import Path

    node = os.environ["NBREMOTE_RAY_NODE_ID"]
    with open(log, "a") as out:
        out.write(f"{x} {node} {os.getpid()}\n")
    deadline = time.monotonic() + wait
    while len(Path(log).read_text().splitlines()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return node
