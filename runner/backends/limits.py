"""A process-backend worker's ``cpu=`` and ``memory=``: a cgroup v2 where the runner may make one,
else CPU affinity and ``RLIMIT_DATA``.

With a cgroup (the runner's own cgroup v2 has the ``memory`` and ``cpu`` controllers and the
runner may create children under it: a root cgroupfs, or one delegated to it), each limited
worker gets a cgroup of its own under ``nbremote-<runner pid>``: ``memory.max`` (swap off), so
the kernel kills the whole container when it goes over, and ``cpu.max``, a quota of ``cpu``
cores' time. The exit is then recognised from ``memory.events`` and told as `out_of_memory`.

Without one (cgroup v1, a read-only cgroupfs, a container that delegates nothing) the worker is
pinned to ``ceil(cpu)`` cores (`os.sched_setaffinity`; consecutive workers take different
cores), and its writable private memory is bounded with ``RLIMIT_DATA`` (heap and anonymous
mappings: what numpy and Python allocate). Not ``RLIMIT_AS``: address space is not memory, and
CUDA or a JIT reserve far more of it than they use. Going over raises ``MemoryError`` in the
worker, which says `out_of_memory` there (`nbremote_runner.worker_calls.explain_memory_error`)
and survives; shared memory (the frame buffers) is not counted.

Both are set between fork and exec (``preexec_fn``), before bwrap runs: the sandbox and every
process in it inherit them.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .base import Limits

CGROUP_PERIOD_US = 100_000


def _cgroup2_dir() -> Path | None:
    """This process's cgroup v2 folder, if cgroup v2 is mounted and lists it."""
    mount = None
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split(" - ")
            if len(fields) == 2 and fields[1].split()[0] == "cgroup2":
                mount = fields[0].split()[4]
                break
    if mount is None:
        return None
    with contextlib.suppress(OSError), open("/proc/self/cgroup") as cgroups:
        for line in cgroups:
            if line.startswith("0::"):
                return Path(mount) / line[3:].strip().lstrip("/")
    return None


def _enable(folder: Path, controllers: list[str]) -> None:
    """Give ``folder``'s children ``controllers`` (a no-op where they already have them)."""
    enabled = (folder / "cgroup.subtree_control").read_text().split()
    missing = [name for name in controllers if name not in enabled]
    if missing:
        (folder / "cgroup.subtree_control").write_text(" ".join(f"+{n}" for n in missing))


def make_cgroup_root() -> tuple[Path | None, str]:
    """A cgroup for this runner's workers, or None and why not (said once in the log)."""
    own = _cgroup2_dir()
    if own is None:
        return None, "no cgroup v2 here"
    try:
        available = (own / "cgroup.controllers").read_text().split()
    except OSError as exc:
        return None, f"cgroup v2 is not readable ({exc})"
    wanted = ["cpu", "memory"]
    if not set(wanted) <= set(available):
        return None, f"cgroup v2 at {own} offers only {' '.join(available) or 'no controllers'}"
    root = own / f"nbremote-{os.getpid()}"
    try:
        _enable(own, wanted)
        root.mkdir(exist_ok=True)
        _enable(root, wanted)
    except OSError as exc:
        with contextlib.suppress(OSError):
            root.rmdir()
        return None, f"the runner may not create cgroups under {own} ({exc.strerror or exc})"
    return root, ""


@dataclass
class Enforced:
    """What a worker's limits came to: its ``preexec_fn`` part, and how to read its end.

    Args:
        preexec: run in the child between fork and exec.
        cgroup: its cgroup, if it has one.
    """

    preexec: Callable[[], None] | None = None
    cgroup: Path | None = None

    def oom_killed(self) -> bool:
        """Whether the kernel killed the container for going over its memory limit."""
        if self.cgroup is None:
            return False
        with contextlib.suppress(OSError, ValueError):
            for line in (self.cgroup / "memory.events").read_text().splitlines():
                name, _, count = line.partition(" ")
                if name == "oom_kill":
                    return int(count) > 0
        return False

    def remove(self) -> None:
        """Remove its cgroup (once its processes are gone)."""
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                self.cgroup.rmdir()


class LimitEnforcer:
    """Enforces workers' `Limits` for one process backend (see the module's docstring)."""

    def __init__(self) -> None:
        self._root: Path | None = None
        self._probed = False
        self._next_core = itertools.count()

    def _cgroups(self) -> Path | None:
        if not self._probed:  # asked at the first limited worker: most runners never need it
            self._probed = True
            self._root, reason = make_cgroup_root()
            if self._root is None:
                print(
                    f"nbremote runner: cpu=/memory= are enforced with CPU affinity and "
                    f"RLIMIT_DATA, not cgroups: {reason}",
                    file=sys.stderr,
                    flush=True,
                )
        return self._root

    def enforce(self, worker_id: str, limits: Limits) -> Enforced:
        """Prepare ``limits`` for a worker about to start.

        Raises:
            OSError: its cgroup could not be set up.
        """
        if limits.memory_bytes is None and limits.cpus is None:
            return Enforced()
        root = self._cgroups()
        if root is not None:
            return _in_cgroup(root / f"w-{worker_id}", limits)
        cores = self._cores(limits.cpus) if limits.cpus is not None else None
        return Enforced(_rlimits(limits.memory_bytes, cores))

    def _cores(self, cpus: float) -> list[int]:
        """``ceil(cpus)`` of the runner's cores, a different set for each worker in turn."""
        mine = sorted(os.sched_getaffinity(0))
        count = min(len(mine), math.ceil(cpus))
        start = next(self._next_core) * count
        return [mine[(start + i) % len(mine)] for i in range(count)]

    def close(self) -> None:
        """Remove the runner's cgroup (its workers' are gone)."""
        if self._root is not None:
            for child in self._root.glob("w-*"):
                with contextlib.suppress(OSError):
                    child.rmdir()
            with contextlib.suppress(OSError):
                self._root.rmdir()


def _in_cgroup(folder: Path, limits: Limits) -> Enforced:
    folder.mkdir()
    try:
        if limits.memory_bytes is not None:
            (folder / "memory.max").write_text(str(limits.memory_bytes))
            with contextlib.suppress(OSError):  # no swap accounting: nothing to turn off
                (folder / "memory.swap.max").write_text("0")
        if limits.cpus is not None:
            quota = max(1000, int(limits.cpus * CGROUP_PERIOD_US))
            (folder / "cpu.max").write_text(f"{quota} {CGROUP_PERIOD_US}")
    except OSError:
        folder.rmdir()
        raise
    procs = str(folder / "cgroup.procs")

    def join() -> None:  # in the child: it and all it starts are in the cgroup
        with open(procs, "w") as file:
            file.write(str(os.getpid()))

    return Enforced(join, folder)


def _rlimits(memory: int | None, cores: list[int] | None) -> Callable[[], None]:
    def limit() -> None:  # in the child, before exec
        if cores is not None:
            os.sched_setaffinity(0, cores)
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))

    return limit


def chain(*steps: Callable[[], None] | None) -> Callable[[], None]:
    """One ``preexec_fn`` that runs ``steps`` in order."""

    def run() -> None:
        for step in steps:
            if step is not None:
                step()

    return run
