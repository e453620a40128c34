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
        placement.place(worker, "spec", f"pool-{worker}", node, NEEDS)
    chosen = []
    for worker in ("m1", "m2", "m3"):
        node = placement.choose(cluster, "spec", "map", NEEDS)
        assert node is not None
        placement.place(worker, "spec", "map", node, NEEDS)
        chosen.append(node)
    assert sorted(chosen) == ["a", "b", "c"]


def test_a_new_worker_goes_where_its_spec_has_fewest_and_never_to_a_lost_node() -> None:
    placement = Placement()
    cluster = nodes("a", "b")
    placement.place("w1", "spec", "", "a", NEEDS)
    assert placement.choose(cluster, "spec", "", NEEDS) == "b"
    placement.place("w2", "spec", "", "b", NEEDS)
    placement.lost("w2")  # b lost its actor: it may be dying, whatever Ray still says
    assert placement.choose(cluster, "spec", "", NEEDS) == "a"
    assert placement.choose(nodes("a", alive=False), "spec", "", NEEDS) is None
    assert placement.choose(cluster, "spec", "", {"GPU": 1.0}) is None  # no node has one


def test_a_node_its_own_actors_filled_is_passed_over() -> None:
    """Eight warm workers of earlier pools fill node a (1 CPU, 1/8 each): a map's workers go to
    b and c, not to a, where Ray would spill them wherever it likes."""
    placement = Placement()
    cluster = nodes("a", "b", "c")
    for i in range(8):
        placement.place(f"w{i}", "spec", f"pool-{i}", "a", NEEDS)
    chosen = []
    for worker in ("m1", "m2", "m3", "m4"):
        node = placement.choose(cluster, "spec", "map", NEEDS)
        assert node is not None
        placement.place(worker, "spec", "map", node, NEEDS)
        chosen.append(node)
    assert sorted(chosen) == ["b", "b", "c", "c"]
    placement.forget("w0")  # one leaves: a has room again
    assert placement.choose(cluster, "spec", "map", NEEDS) == "a"


def test_where_ray_put_an_actor_in_the_end_is_what_counts() -> None:
    placement = Placement()
    cluster = nodes("a", "b")
    placement.place("w1", "spec", "pool", "", NEEDS)  # no node had room: Ray's choice
    placement.settle("w1", "a")
    assert placement.choose(cluster, "spec", "pool", NEEDS) == "b"


def test_the_spare_a_pool_took_counts_as_the_pools() -> None:
    """The runner's spare booted on a before any pool wanted it, and its replacement on b; the
    map's pool took the spare, so the pool's next two workers go to b and c, not to a again."""
    placement = Placement()
    cluster = nodes("a", "b", "c")
    placement.place("spare", "spec", "", "a", NEEDS)
    placement.place("next-spare", "spec", "", "b", NEEDS)
    placement.join("spare", "map")
    chosen = []
    for worker in ("m2", "m3"):
        node = placement.choose(cluster, "spec", "map", NEEDS)
        assert node is not None
        placement.place(worker, "spec", "map", node, NEEDS)
        chosen.append(node)
    assert sorted(chosen) == ["b", "c"]
