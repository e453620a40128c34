"""``cpu=`` and ``memory=`` (``--cpu``, ``--memory``) are enforced on the process backend: a real
runner, real workers, the limit seen from inside and a real allocation beyond it."""

from __future__ import annotations

import math
import os

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import nbremote as nr
from nbremote._options import function_options, options_from, settings_of
from nbremote._session import RemoteSession
from nbremote.errors import RemoteError, WorkerDied

app = nr.App("test-resources")
OVER = (RemoteError, WorkerDied)  # a MemoryError under RLIMIT_DATA; an OOM kill in a cgroup


# The cores this process may use: its affinity, or its cgroup's CPU quota if lower (run as a
# cell's code, and by a function).
USABLE_CORES = """
import os
cores = len(os.sched_getaffinity(0))
with open("/proc/self/cgroup") as cgroups:
    path = next((line[3:].strip() for line in cgroups if line.startswith("0::")), "")
try:
    with open(f"/sys/fs/cgroup{path}/cpu.max") as quota:
        limit, period = quota.read().split()
    if limit != "max":
        cores = min(cores, int(limit) / int(period))
except (OSError, ValueError):
    pass
"""


@app.function(memory=300)
def allocate(mib: int) -> int:
    return len(bytearray(mib * 2**20))


@app.function(cpu=1.0, memory=(128, 512))
def cores_seen(code: str) -> float:
    namespace: dict[str, float] = {}
    exec(code, namespace)
    return namespace["cores"]


def remote(shell: InteractiveShell, cell: str, line: str = "") -> None:
    shell.run_cell_magic("remote", line, cell)


def test_a_cell_over_its_memory_fails_naming_the_limit_and_the_next_cell_runs(
    shell: InteractiveShell,
) -> None:
    shell.user_ns["kept"] = "before"
    with pytest.raises(OVER, match=r"ran out of its 300 MiB memory limit \(memory=300\)"):
        remote(shell, "kept = 'after'\nbig = bytearray(600 * 2**20)", line="--memory 300")
    assert shell.user_ns["kept"] == "before"  # the namespace is as it was
    assert "big" not in shell.user_ns
    remote(shell, "small = len(bytearray(50 * 2**20))", line="--memory 300")
    assert shell.user_ns["small"] == 50 * 2**20


def test_a_function_over_its_memory_fails_naming_the_limit(
    remote_session: RemoteSession,
) -> None:
    assert allocate.remote(50) == 50 * 2**20
    with pytest.raises(OVER, match="300 MiB memory limit"):
        allocate.remote(600)
    assert allocate.remote(20) == 20 * 2**20  # the pool serves the next call


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: nothing to limit")
def test_cpu_limits_the_cores_a_worker_may_use(
    remote_session: RemoteSession, shell: InteractiveShell
) -> None:
    assert cores_seen.remote(USABLE_CORES) <= 1.0
    remote(shell, USABLE_CORES, line="--cpu 1")
    assert shell.user_ns["cores"] <= 1.0
    remote(shell, USABLE_CORES)  # no --cpu: every core of the runner's
    assert shell.user_ns["cores"] > 1.0


def test_modal_request_limit_pairs_take_the_limit() -> None:
    @app.function(cpu=(0.5, 2.5), memory=(256, 1024.5))
    def paired() -> None: ...

    assert (paired.options.cpu, paired.options.memory) == (2.5, math.ceil(1024.5))


@pytest.mark.parametrize(
    ("settings", "named"),
    [({"memory": 0}, "memory=0"), ({"cpu": -1}, "cpu=-1"), ({"memory": "1G"}, "memory='1G'")],
)
def test_bad_limits_are_refused_naming_them(settings: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        app.function(**settings)(lambda: None)


@pytest.mark.parametrize("line", ["--memory 0", "--cpu -2"])
def test_bad_limit_flags_are_usage_errors(shell: InteractiveShell, line: str) -> None:
    with pytest.raises(UsageError, match=line.split()[0]):
        remote(shell, "x = 1", line=line)


@app.cls(memory=300)
class Holder:
    @nr.method()
    def allocate(self, mib: int) -> int:
        return len(bytearray(mib * 2**20))


def test_a_class_and_with_options_take_the_limits_too(remote_session: RemoteSession) -> None:
    with pytest.raises(OVER, match="300 MiB memory limit"):
        Holder().allocate.remote(600)
    assert Holder().allocate.remote(10) == 10 * 2**20
    roomier = allocate.with_options(memory=1024)
    assert roomier.remote(600) == 600 * 2**20


def test_limits_and_flags_survive_a_deploy() -> None:
    options = function_options(
        {"cpu": 2, "memory": 512, "block_network": True, "single_use_containers": True},
        "test",
    )
    back = options_from(settings_of(options))
    assert (back.cpu, back.memory, back.block_network, back.single_use_containers) == (
        2.0,
        512,
        True,
        True,
    )
