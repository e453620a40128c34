"""Where the ray backend puts each new worker's actor: the alive node with the fewest of its kind.

Ray's ``SPREAD`` strategy is best effort: on a loaded machine its view of the nodes' load lags,
and it put all three workers of a map on one node in one run of four. So the runner counts its
own actors per node and names the node of each new one: among the alive nodes whose resources
fit the actor, the one with the fewest workers of the same pool (`START_GROUP`: a map's workers
go to different nodes, whatever other pools' warm workers left where), then of the same spec,
then of all. A start in progress counts at once, so workers started together spread too.

The affinity is soft and may spill: a node that died or filled up since leaves the choice to
Ray. The alive nodes are read again at every placement, and a node where an actor was lost gets
no new one for a while (Ray may list a dead node as alive for some seconds), so the inputs of a
lost node are retried elsewhere.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

SUSPECT_SECONDS = 60.0  # how long a node that lost an actor gets no new one (Ray's view lags)


def fits(node: dict[str, Any], needs: dict[str, float]) -> bool:
    """Whether ``node`` (as ``ray.nodes()`` lists it) is alive and has, in all, what ``needs``
    asks for (Ray's resource names: ``CPU``, ``GPU``, ``memory``, custom ones)."""
    total = node.get("Resources", {})
    return bool(node.get("Alive")) and all(total.get(k, 0.0) >= v for k, v in needs.items())


class Placement:
    """The runner's actors by node, and the choice of a node for the next one."""

    def __init__(self) -> None:
        # worker id -> (spec key, pool, node id)
        self._actors: dict[str, tuple[str, str, str]] = {}
        self._suspect: dict[str, float] = {}  # node id -> when it lost an actor

    def choose(
        self, nodes: list[dict[str, Any]], kind: str, group: str, needs: dict[str, float]
    ) -> str | None:
        """The node for a new actor of spec ``kind`` for pool ``group`` ('': unknown) needing
        ``needs``; None: no node fits (Ray then says why it cannot place the actor)."""
        now = time.monotonic()
        candidates = [
            str(node["NodeID"])
            for node in nodes
            if fits(node, needs)
            and now - self._suspect.get(str(node["NodeID"]), -1e9) > SUSPECT_SECONDS
        ]
        if not candidates:
            return None
        pool = Counter(node for _, g, node in self._actors.values() if group and g == group)
        same = Counter(node for key, _, node in self._actors.values() if key == kind)
        every = Counter(node for _, _, node in self._actors.values())
        return min(candidates, key=lambda node: (pool[node], same[node], every[node]))

    def place(self, worker_id: str, kind: str, group: str, node: str) -> None:
        """Count ``worker_id``'s actor on ``node`` (chosen, or where Ray put it in the end)."""
        self._actors[worker_id] = (kind, group, node)

    def forget(self, worker_id: str) -> None:
        """``worker_id``'s actor is gone (or never started)."""
        self._actors.pop(worker_id, None)

    def lost(self, worker_id: str) -> None:
        """``worker_id``'s actor was lost with its node, as far as the runner can tell. One the
        runner is stopping was forgotten already: its end is no sign of a lost node."""
        placed = self._actors.pop(worker_id, None)
        if placed is not None:
            self._suspect[placed[2]] = time.monotonic()
