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

app = nr.App("ray-node-loss")


@app.function(
    max_containers=3,
    retries=nr.Retries(max_retries=2, initial_delay=0.0, backoff_coefficient=1.0),
)
def logged(x: int, log: str) -> tuple[int, str]:
    import os
    import time
    from pathlib import Path

    node = os.environ["NBREMOTE_RAY_NODE_ID"]
    with open(log, "a") as out:  # every node of the test cluster is on this machine
        out.write(f"{x} {node}\n")
    # The first three inputs meet, so that each node runs one: a worker that started first
    # could run the early inputs alone while the plain node's worker still boots.
    deadline = time.monotonic() + 60
    while len(Path(log).read_text().splitlines()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)
    return x * x, node


def test_a_node_lost_mid_map_loses_no_input(
    ray_cluster: Cluster, ray_session: _session.RemoteSession, tmp_path: Path
) -> None:
    log = tmp_path / "started.log"
    log.touch()
    stopped: list[str] = []

    def stop_when_busy() -> None:
        node = ray_cluster.plain_node_id()
        deadline = time.monotonic() + 120
        while node not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        stopped.append(ray_cluster.stop_plain_node())

    stopper = threading.Thread(target=stop_when_busy)
    stopper.start()
    results = list(logged.map(range(9), [str(log)] * 9))
    stopper.join()
    assert [value for value, _ in results] == [x * x for x in range(9)]  # none lost
    lost = {int(line.split()[0]) for line in log.read_text().splitlines() if stopped[0] in line}
    assert lost  # the node was running an input when it stopped
    assert all(results[x][1] != stopped[0] for x in lost)  # each ran again on another node
