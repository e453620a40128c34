"""Fixtures of the Ray backend's tests: one real Ray cluster per run, and a ray runner on it.

`scripts/ray_cluster.py` starts a head and two more nodes on this machine (the last declaring
two A100s: there is no GPU here, and the worker needs none to start), in a temp dir and on ports
of their own, and stops only those processes at the end. Where Ray is not installed, or the
cluster does not start, every test here is skipped, saying why.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from nbremote import _session
from tests.conftest import TOKEN, RunningRunner, clean_shell, session_on, start_runner

HERE = Path(__file__).parent
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ray_cluster.py"
LAST = "test_ray_node_loss.py"
# The test cluster takes no token, and nothing here may write one to ~/.ray/auth_token: Ray then
# turns token auth on for every later cluster of this machine, and their nodes cannot join.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this folder is a ray test (``-m "not ray"`` leaves them out), timed
    without its fixtures: the cluster's start has deadlines of its own (a loaded machine may
    take minutes)."""
    ours = [i for i, item in enumerate(items) if Path(str(item.fspath)).parent == HERE]
    for i in ours:
        items[i].add_marker(pytest.mark.ray)
        items[i].add_marker(pytest.mark.timeout(240, func_only=True))
    # The node-loss test stops a node of the shared cluster for good: last of the folder.
    last = sorted((items[i] for i in ours), key=lambda item: item.path.name == LAST)
    for i, item in zip(ours, last, strict=True):
        items[i] = item


class Cluster:
    """The test cluster: its address and how to stop one of its nodes."""

    def __init__(self, folder: Path, base: int, address: str) -> None:
        self.folder, self.base, self.address = folder, base, address

    def other_nodes(self) -> dict[str, int]:
        """The node ids of the plain node and the GPU node, with the base port of each."""
        bases = (self.base + 10, self.base + 20)  # as `scripts/ray_cluster.py` starts them
        return {str(_script().node_id(self.folder, base)): base for base in bases}

    def stop_node(self, base: int) -> str:
        """Stop the node whose ports start at ``base`` (its raylet and everything under it) at
        once; its id."""
        return str(_script().stop_node(self.folder, base))


def _script() -> Any:
    """scripts/ray_cluster.py as a module (scripts/ is no package)."""
    spec = importlib.util.spec_from_file_location("ray_cluster", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="package")  # gone once the folder's tests are: not under the rest
def ray_cluster() -> Iterator[Cluster]:
    """The three-node Ray cluster of this run's tests/ray (see the module's docstring)."""
    pytest.importorskip("ray", reason="the ray backend's tests need Ray (the dev extra has it)")
    folder = Path(tempfile.mkdtemp(prefix="nbray-"))  # short: Ray's sockets live under it
    base = 20000 + (os.getpid() % 300) * 40  # below the ephemeral range: no chance collision
    try:
        started = subprocess.run(
            [sys.executable, str(SCRIPT), "start", str(folder), str(base)],
            capture_output=True,
            text=True,
            timeout=700,  # three nodes, one after the other, each given 200 s by the script
        )
        if started.returncode != 0:
            pytest.skip(f"the test's Ray cluster did not start: {started.stderr.strip()[-2000:]}")
        yield Cluster(folder, base, started.stdout.strip().splitlines()[-1])
    finally:
        stop = [sys.executable, str(SCRIPT), "stop", str(folder), str(base)]
        subprocess.run(stop, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="package")
def ray_runner(
    ray_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningRunner]:
    """One ray-backend runner on the test cluster, shared by the tests of a run, with a volume
    root in the cluster's folder."""
    data = tmp_path_factory.mktemp("ray-runner")
    volumes = ray_cluster.folder / "volumes"  # every node of this machine sees it
    address = ["--ray-address", ray_cluster.address, "--ray-volume-root", str(volumes)]
    running = start_runner(data, TOKEN, "--backend", "ray", *address)
    yield running
    running.stop()


@pytest.fixture
def ray_session(ray_runner: RunningRunner) -> Iterator[_session.RemoteSession]:
    """This process's session on the ray runner, new for each test."""
    yield from session_on(ray_runner)


@pytest.fixture
def ray_shell(ipython: InteractiveShell, ray_session: _session.RemoteSession) -> InteractiveShell:
    """A clean IPython shell whose ``%%remote`` cells run on Ray actors."""
    return clean_shell(ipython)
