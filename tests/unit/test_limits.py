"""How the process backend writes a worker's limits: the cgroup files it sets (on a folder
standing in for a cgroup, since CI machines rarely delegate one), how it reads an OOM kill, and
how it spreads pinned workers over the cores. The kernel's side is in
tests/integration/test_resources.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from nbremote_runner.backends import Limits
from nbremote_runner.backends.limits import Enforced, LimitEnforcer, _in_cgroup


def test_a_cgroup_gets_the_memory_and_cpu_quota(tmp_path: Path) -> None:
    folder = tmp_path / "w-1"
    enforced = _in_cgroup(folder, Limits(memory_bytes=300 << 20, cpus=1.5))
    assert (folder / "memory.max").read_text() == str(300 << 20)
    assert (folder / "memory.swap.max").read_text() == "0"
    assert (folder / "cpu.max").read_text() == "150000 100000"
    assert enforced.cgroup == folder and enforced.preexec is not None


def test_an_oom_kill_is_read_from_memory_events(tmp_path: Path) -> None:
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    assert not Enforced(cgroup=tmp_path).oom_killed()
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\n")
    assert Enforced(cgroup=tmp_path).oom_killed()
    assert not Enforced().oom_killed()  # no cgroup: no kill to read


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core")
def test_pinned_workers_take_different_cores_in_turn() -> None:
    enforcer = LimitEnforcer()
    first, second = enforcer._cores(1), enforcer._cores(1)
    assert len(first) == len(second) == 1 and first != second
    assert len(enforcer._cores(1000)) == len(os.sched_getaffinity(0))  # never more than it has


def test_no_limits_cost_nothing() -> None:
    enforced = LimitEnforcer().enforce("w", Limits())
    assert enforced.preexec is None and enforced.cgroup is None
