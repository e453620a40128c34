"""A Ray node lost mid-map: its inputs are retried on the other nodes, none lost.

Runs after the other tests of the folder (its conftest puts it last): it stops a node of the
shared cluster for good.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import nbremote as nr
from nbremote import _session

from .conftest import Cluster
from .meeting import meet

app = nr.App("ray-node-loss")


@app.function(
    max_containers=3,
    retries=nr.Retries(max_retries=2, initial_delay=0.0, backoff_coefficient=1.0),
)
def logged(x: int, log: str) -> tuple[int, str]:
    import time

    node = meet(x, log, wait=60)  # each node runs one of the first three inputs
    time.sleep(1.5)  # long enough to be running when its node stops
    return x * x, node


def test_a_node_lost_mid_map_loses_no_input(
    ray_cluster: Cluster, ray_session: _session.RemoteSession, tmp_path: Path
) -> None:
    log = tmp_path / "started.log"
    log.touch()
    stopped: list[str] = []
    others = ray_cluster.other_nodes()  # not the head: the runner's Ray instance is there

    def stop_when_busy() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            busy = [node for node in others if node in log.read_text()]
            if busy:
                stopped.append(ray_cluster.stop_node(others[busy[0]]))
                return
            time.sleep(0.05)

    stopper = threading.Thread(target=stop_when_busy)
    stopper.start()
    results = list(logged.map(range(9), [str(log)] * 9))
    stopper.join()
    started = log.read_text()
    assert stopped, f"no input ran on a node other than the head:\n{started}"
    assert [value for value, _ in results] == [x * x for x in range(9)]  # none lost
    lost = {int(line.split()[0]) for line in started.splitlines() if stopped[0] in line}
    assert all(results[x][1] != stopped[0] for x in lost), started  # each ran again elsewhere
    # `nbremote gpus` follows the cluster: the GPU node's A100s are listed while it lives, and
    # gone once Ray has marked it dead (after its health checks fail) if it was the one stopped.
    gpu_node = next(node for node, base in others.items() if base == ray_cluster.base + 20)
    alive = {gpu_node[:12]} - {stopped[0][:12]}
    deadline = time.monotonic() + 120
    while gpu_nodes_listed(ray_session) != alive and time.monotonic() < deadline:
        time.sleep(0.5)
    assert gpu_nodes_listed(ray_session) == alive, f"stopped {stopped[0]}, GPU node {gpu_node}"


def gpu_nodes_listed(session: _session.RemoteSession) -> set[str]:
    """The (short) ids of the nodes whose GPUs ``GET /api/v1/gpus`` lists."""
    answer = session.client.request("GET", "/api/v1/gpus")
    return {gpu["name"].split("Ray node ")[-1].rstrip(")") for gpu in answer["gpus"]}
