"""Big arrays both ways through shared memory (W3): what a notebook holds after each cell or call.

The sender fills a spare file it keeps allocated, and a cell's worker takes a big input's hash
from the kernel when it pickles to the very bytes that arrived: a user would notice a stale
array (a spare reused with the last content), an in-place change lost, or one sent back for
nothing that overwrote a newer value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from IPython.core.interactiveshell import InteractiveShell

import nbremote as nr
from nbremote._session import RemoteSession

N = 4_000_000  # 32 MB of float64: big enough for shared memory and for a spare file
app = nr.App("big-values")


@app.function
def shifted(x: np.ndarray, by: float) -> np.ndarray:
    return x + by


def remote(shell: InteractiveShell, cell: str) -> Any:
    return shell.run_cell_magic("remote", "", cell)


def test_a_changing_big_input_is_right_each_cell(shell: InteractiveShell) -> None:
    a = np.arange(N, dtype=np.float64)
    shell.user_ns["a"] = a
    for step in range(4):  # the later ones go through the spare file the first one left
        a += step
        remote(shell, "s = float(a.sum()); first = float(a[0])")
        assert (shell.user_ns["s"], shell.user_ns["first"]) == (float(a.sum()), float(a[0]))


def test_a_cell_changing_a_big_input_in_place_changes_the_notebooks(
    shell: InteractiveShell,
) -> None:
    a = np.zeros(N)
    shell.user_ns["a"] = a
    remote(shell, "a[7] = 42.0")
    assert shell.user_ns["a"] is a and a[7] == 42.0
    remote(shell, "a[8] = 43.0")  # held by the worker now: changed there again
    assert a[7] == 42.0 and a[8] == 43.0
    remote(shell, "s = float(a.sum())")  # unchanged: the right content, nothing sent back
    assert shell.user_ns["s"] == 85.0 and a[7] == 42.0


def test_big_results_of_consecutive_calls_are_each_their_own(
    remote_session: RemoteSession,
) -> None:
    x = np.ones(N)
    results = [shifted.remote(x, float(by)) for by in range(3)]
    assert [float(r[0]) for r in results] == [1.0, 2.0, 3.0]
    assert all(r.flags.writeable and r.shape == (N,) for r in results)
