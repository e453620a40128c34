"""Big inputs (over the shared-memory threshold) to Ray actors' workers, and big results back.

A kernel on the runner's machine would send such buffers as files in the runner's
shared-memory folder, which an actor's worker (maybe on another node) does not map: the ray
runner does not tell kernels of that folder, so the buffers travel inside the frames, and a
call's big argument goes by digest: the worker asks for it only if it does not keep it already
(`nbremote.wire.pulled`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from IPython.core.interactiveshell import InteractiveShell

import nbremote as nr
from nbremote import _session

app = nr.App("ray-big-inputs")
BIG = (4 << 20) // 8  # float64s in 4 MiB: above nbremote.wire.shm.THRESHOLD


@app.function
def total(x: Any) -> float:
    return float(x.sum())


@app.function
def doubled(x: Any) -> Any:
    return x * 2


def test_a_cell_on_a_ray_actor_sums_a_big_array_and_sees_it_change(
    ray_shell: InteractiveShell,
) -> None:
    a = np.arange(BIG, dtype=np.float64)
    ray_shell.user_ns["a"] = a
    ray_shell.run_cell_magic("remote", "", "s = float(a.sum())")
    assert ray_shell.user_ns["s"] == a.sum()
    a += 1  # the same object, changed in place
    ray_shell.run_cell_magic("remote", "", "s = float(a.sum())\nb = a * 2")
    assert ray_shell.user_ns["s"] == a.sum()
    assert np.array_equal(ray_shell.user_ns["b"], a * 2)


def test_a_function_on_a_ray_actor_takes_a_big_array_twice_and_sees_it_change(
    ray_session: _session.RemoteSession, sent: list[int]
) -> None:
    a = np.arange(BIG, dtype=np.float64)
    assert total.remote(a) == a.sum()
    assert total.remote(a) == a.sum()  # the same array again: the worker kept it
    assert sent == [a.nbytes]
    a[0] = -1e9
    assert total.remote(a) == a.sum()
    assert np.array_equal(doubled.remote(a), a * 2)
    assert sent == [a.nbytes] * 3  # changed: sent again; another function's worker lacked it
