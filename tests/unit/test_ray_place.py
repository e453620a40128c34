"""Where the ray backend puts a new worker's actor (`ray_place.Placement`), on node lists as
``ray.nodes()`` gives them: pure, no Ray needed."""

from __future__ import annotations

from typing import Any

from nbremote_runner.backends.ray_place import Placement

NEEDS = {"CPU": 0.125}


def nodes(*names: str, alive: bool = True) -> list[dict[str, Any]]:
    return [{"NodeID": name, "Alive": alive, "Resources": {"CPU": 1.0}} for name in names]


def test_a_pools_workers_go_to_different_nodes_whatever_other_pools_left() -> None:
    """A map's pool starts its workers, one after the other, while other pools' warm workers
    of the same spec sit unevenly on the nodes (two on a, one on b): the map still gets a, b
    and c."""
    placement = Placement()
    cluster = nodes("a", "b", "c")
    for worker, node in (("w1", "a"), ("w2", "a"), ("w3", "b")):
        placement.place(worker, "spec", f"pool-{worker}", node)
    chosen = []
    for worker in ("m1", "m2", "m3"):
        node = placement.choose(cluster, "spec", "map", NEEDS)
        assert node is not None
        placement.place(worker, "spec", "map", node)
        chosen.append(node)
    assert sorted(chosen) == ["a", "b", "c"]


def test_a_new_worker_goes_where_its_spec_has_fewest_and_never_to_a_lost_node() -> None:
    placement = Placement()
    cluster = nodes("a", "b")
    placement.place("w1", "spec", "", "a")
    assert placement.choose(cluster, "spec", "", NEEDS) == "b"
    placement.place("w2", "spec", "", "b")
    placement.lost("w2")  # b lost its actor: it may be dying, whatever Ray still says
    assert placement.choose(cluster, "spec", "", NEEDS) == "a"
    assert placement.choose(nodes("a", alive=False), "spec", "", NEEDS) is None
    assert placement.choose(cluster, "spec", "", {"GPU": 1.0}) is None  # no node has one
