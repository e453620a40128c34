"""Cells, functions, GPUs and maps on the ray backend: workers as actors of a real Ray cluster."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import nbremote as nr
from nbremote import _session
from nbremote.errors import RemoteError
from tests.conftest import RunningRunner

from .meeting import meet

app = nr.App("ray-tests")


def remote(shell: InteractiveShell, cell: str, line: str = "") -> Any:
    return shell.run_cell_magic("remote", line, cell)


@app.function
def node_of(x: int) -> dict[str, Any]:
    import os

    return {"double": 2 * x, "node": os.environ["NBREMOTE_RAY_NODE_ID"], "pid": os.getpid()}


@app.function(max_containers=3)
def met(x: int, log: str) -> str:
    """Its node, once three inputs have met (`meeting.meet`)."""
    return meet(x, log)


def test_a_cell_runs_on_a_ray_actor_keeps_its_namespace_and_streams(
    ray_shell: InteractiveShell,
) -> None:
    ray_shell.user_ns.update(x=20, data=[1, 2, 3])
    with capture_output() as captured:
        remote(ray_shell, "import os\ntotal = x + sum(data)\nprint('hi from a ray actor')")
    assert ray_shell.user_ns["total"] == 26
    assert captured.stdout.strip() == "hi from a ray actor"
    remote(ray_shell, "import os\nnode = os.environ['NBREMOTE_RAY_NODE_ID']\nseen = total + 1")
    assert ray_shell.user_ns["seen"] == 27  # the same warm actor's worker kept its namespace
    assert len(ray_shell.user_ns["node"]) == 56  # a Ray node id


def test_interrupting_a_cell_on_ray_stops_it_and_the_worker_survives(
    ray_shell: InteractiveShell,
) -> None:
    remote(ray_shell, "state = 'kept'")
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(RemoteError) as caught:
        remote(ray_shell, "import time\ntime.sleep(60)")
    assert caught.value.ename == "KeyboardInterrupt"
    remote(ray_shell, "after = state")
    assert ray_shell.user_ns["after"] == "kept"


def test_a_function_call_runs_on_ray(ray_session: _session.RemoteSession) -> None:
    answer = node_of.remote(21)
    assert answer["double"] == 42 and len(answer["node"]) == 56
    assert answer["pid"] != os.getpid()


def test_a_gpu_cell_lands_on_the_node_that_has_the_a100s(
    ray_runner: RunningRunner, ray_shell: InteractiveShell
) -> None:
    listed = ray_runner.cli("gpus", "--json")
    assert listed.returncode == 0, listed.stderr
    gpus = json.loads(listed.stdout)
    assert gpus["source"] == "ray"
    names = [gpu["name"] for gpu in gpus["gpus"]]
    assert len(names) == 2 and all(name.startswith("A100 (Ray node ") for name in names)
    a100_node = names[0].removeprefix("A100 (Ray node ").rstrip(")")
    remote(
        ray_shell,
        "import os\ngpu_node = os.environ['NBREMOTE_RAY_NODE_ID']\n"
        "visible = os.environ.get('CUDA_VISIBLE_DEVICES')",
        "--gpu A100",
    )
    assert ray_shell.user_ns["gpu_node"].startswith(a100_node)
    assert ray_shell.user_ns["visible"] is not None  # Ray gave the actor one of the node's GPUs


def test_a_map_uses_every_node(ray_session: _session.RemoteSession, tmp_path: Path) -> None:
    log = tmp_path / "met.log"
    nodes = list(met.map(range(3), [str(log)] * 3))
    assert len(log.read_text().splitlines()) == 3  # three workers ran the inputs together
    assert len(set(nodes)) == 3, log.read_text()  # the head, the plain node and the GPU node
