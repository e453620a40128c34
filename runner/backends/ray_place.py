"""Where the ray backend puts each new worker's actor: the alive node with the fewest of its kind.

Ray's ``SPREAD`` strategy is best effort: on a loaded machine its view of the nodes' load lags,
and it put all three workers of a map on one node in one run of four. So the runner counts its
own actors per node and names the node of each new one: among the alive nodes whose resources
fit the actor, the one with the fewest workers of the same pool (`START_GROUP`: a map's workers
go to different nodes, whatever other pools' warm workers left where), then of the same spec,
then of all. A start in progress counts at once, so workers started together spread too. A
node that the runner's own actors filled is passed over: Ray's soft affinity would spill such an
actor to a node of its own choosing, wherever its lagging view of the load says.

The affinity is soft and may spill: a node that died or filled up since leaves the choice to
Ray. The alive nodes are read again at every placement, and a node where an actor was lost gets
no new one for a while (Ray may list a dead node as alive for some seconds), so the inputs of a
lost node are retried elsewhere.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

SUSPECT_SECONDS = 60.0  # how long a node that lost an actor gets no new one (Ray's view lags)


def fits(node: dict[str, Any], needs: dict[str, float], used: Counter[str] | None = None) -> bool:
    """Whether ``node`` (as ``ray.nodes()`` lists it) is alive and has what ``needs`` asks for
    (Ray's resource names: ``CPU``, ``GPU``, ``memory``, custom ones) beyond what ``used``
    already takes of it."""
    total = node.get("Resources", {})
    used = used or Counter()
    return bool(node.get("Alive")) and all(
        total.get(k, 0.0) - used[k] >= v - 1e-9 for k, v in needs.items()
    )


@dataclass
class _Actor:
    kind: str  # its spec's key
    group: str  # its pool ('': unknown)
    node: str
    needs: dict[str, float]


class Placement:
    """The runner's actors by node, and the choice of a node for the next one."""

    def __init__(self) -> None:
        self._actors: dict[str, _Actor] = {}  # worker id -> its actor
        self._suspect: dict[str, float] = {}  # node id -> when it lost an actor

    def choose(
        self, nodes: list[dict[str, Any]], kind: str, group: str, needs: dict[str, float]
    ) -> str | None:
        """The node for a new actor of spec ``kind`` for pool ``group`` ('': unknown) needing
        ``needs``; None: no node has room (Ray then queues it, or says why it cannot)."""
        now = time.monotonic()
        candidates = [
            str(node["NodeID"])
            for node in nodes
            if fits(node, needs, self._used(str(node["NodeID"])))
            and now - self._suspect.get(str(node["NodeID"]), -1e9) > SUSPECT_SECONDS
        ]
        if not candidates:
            return None
        actors = self._actors.values()
        pool = Counter(a.node for a in actors if group and a.group == group)
        same = Counter(a.node for a in actors if a.kind == kind)
        every = Counter(a.node for a in actors)
        return min(candidates, key=lambda node: (pool[node], same[node], every[node]))

    def _used(self, node: str) -> Counter[str]:
        """What the runner's own actors take of ``node``."""
        used: Counter[str] = Counter()
        for actor in self._actors.values():
            if actor.node == node:
                used.update(actor.needs)
        return used

    def place(
        self, worker_id: str, kind: str, group: str, node: str, needs: dict[str, float]
    ) -> None:
        """Count ``worker_id``'s actor, needing ``needs``, on ``node`` (chosen for it)."""
        self._actors[worker_id] = _Actor(kind, group, node, needs)

    def settle(self, worker_id: str, node: str) -> None:
        """``worker_id``'s actor runs on ``node``: where Ray put it in the end."""
        actor = self._actors.get(worker_id)
        if actor is not None:
            actor.node = node

    def join(self, worker_id: str, group: str) -> None:
        """``worker_id`` (the runner's spare) now belongs to pool ``group``."""
        actor = self._actors.get(worker_id)
        if actor is not None:
            actor.group = group

    def forget(self, worker_id: str) -> None:
        """``worker_id``'s actor is gone (or never started)."""
        self._actors.pop(worker_id, None)

    def lost(self, worker_id: str) -> None:
        """``worker_id``'s actor was lost with its node, as far as the runner can tell. One the
        runner is stopping was forgotten already: its end is no sign of a lost node."""
        actor = self._actors.pop(worker_id, None)
        if actor is not None:
            self._suspect[actor.node] = time.monotonic()
