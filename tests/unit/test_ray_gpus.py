"""The ray backend's GPU inventory follows the cluster (`RayGpus` over node lists shaped like
``ray.nodes()``), and the GPU broker on it never grants a device of a lost node: pure, no Ray
needed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from nbremote_runner.backends.ray import RayGpus
from nbremote_runner.gpus import GpuBroker, GpuUnavailable
from nbremote_runner.gpus.alloc import Allocator, Grant, Queued
from nbremote_runner.gpus.discovery import Device

from nbremote.gpu import parse
from nbremote.wire.http import WorkerSpec

HEAD, OLD, NEW = "head" + "0" * 52, "a100old" + "0" * 49, "a100new" + "0" * 49


def node(node_id: str, gpus: int = 0, kind: str = "A100", alive: bool = True) -> dict[str, Any]:
    resources: dict[str, float] = {"CPU": 4.0}
    if gpus:
        resources |= {"GPU": float(gpus), f"accelerator_type:{kind}": 1.0}
    return {"NodeID": node_id, "Alive": alive, "Resources": resources}


class Cluster:
    """What ``ray.nodes()`` answers now, and how often it was asked."""

    def __init__(self, *nodes: dict[str, Any]) -> None:
        self.nodes, self.reads = list(nodes), 0

    def __call__(self) -> list[dict[str, Any]]:
        self.reads += 1
        return [dict(n) for n in self.nodes]

    def lose(self, node_id: str) -> None:
        """Ray keeps a dead node in its list, not alive."""
        self.nodes = [n | {"Alive": False} if n["NodeID"] == node_id else n for n in self.nodes]


def listed(inventory: RayGpus) -> list[tuple[int, str]]:
    return [(device.index, device.name) for device in inventory.devices]


def test_a_lost_nodes_gpus_go_and_a_joined_nodes_come_without_shifting_the_others() -> None:
    cluster = Cluster(node(HEAD), node(OLD, 2), node(NEW, 1, "H100", alive=False))
    inventory = RayGpus(cluster, period=0.0)
    assert listed(inventory) == [
        (0, f"A100 (Ray node {OLD[:12]})"),
        (1, f"A100 (Ray node {OLD[:12]})"),
    ]
    cluster.nodes[2]["Alive"] = True  # the H100 node joins
    assert inventory.refresh()
    assert [index for index, _ in listed(inventory)] == [0, 1, 2]
    cluster.lose(OLD)
    assert inventory.refresh()
    assert listed(inventory) == [(2, f"H100 (Ray node {NEW[:12]})")]  # its index kept
    assert inventory.types[2] == "H100"  # what `--gpu` asks Ray for, by index
    cluster.lose(NEW)
    assert inventory.refresh()
    assert inventory.devices == [] and inventory.unavailable is not None
    assert not inventory.refresh()  # nothing changed


def test_the_cluster_is_read_at_most_once_a_period_and_a_failed_read_keeps_the_inventory() -> None:
    now = [100.0]
    cluster = Cluster(node(OLD, 2))
    inventory = RayGpus(cluster, period=2.0, clock=lambda: now[0])
    cluster.lose(OLD)
    assert not inventory.due() and not inventory.refresh() and cluster.reads == 1
    now[0] += 2.0
    assert inventory.due() and inventory.refresh() and inventory.devices == []

    def unreachable() -> list[dict[str, Any]]:
        raise ConnectionError("GCS unreachable")

    failing = RayGpus(Cluster(node(OLD, 2)), period=0.0)
    failing._nodes = unreachable
    assert not failing.refresh() and len(failing.devices) == 2


def test_a_device_that_left_is_never_granted_and_its_holder_keeps_it_until_released() -> None:
    a100 = parse("A100")
    assert a100 is not None
    alloc = Allocator([Device(0, "A100"), Device(1, "A100")])
    assert alloc.request("a", a100) == [Grant("a", (0,))]
    assert alloc.request("b", a100) == [Grant("b", (1,))]
    assert alloc.request("c", a100) == [Queued("c", 1)]
    assert alloc.update([Device(1, "A100"), Device(2, "A100")]) == [Grant("c", (2,))]
    assert alloc.devices_of("a") == (0,)  # its worker still runs (it ends with its node)
    assert alloc.request("d", a100) == [Queued("d", 1)]
    assert alloc.release("a") == []  # device 0 is gone: nothing to give "d"
    assert alloc.release("b") == [Grant("d", (1,))]


class Worker:
    """What the broker asks of a worker: its id, and to hear when it ends."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.id, self.spec = "w", spec
        self.gone: list[Callable[[], None]] = []

    def on_gone(self, callback: Callable[[], None]) -> None:
        self.gone.append(callback)


class Spare:
    async def take(self, spec: WorkerSpec) -> Any:
        return Worker(spec)

    async def close(self) -> None:
        pass


def a100(count: int = 1) -> WorkerSpec:
    return WorkerSpec(gpu=parse(f"A100:{count}"))


def test_the_broker_lists_and_grants_only_live_nodes_gpus() -> None:
    async def scenario() -> None:
        cluster = Cluster(node(HEAD), node(OLD, 1))
        broker = GpuBroker(RayGpus(cluster, period=0.0), Spare())
        first = await broker.take(a100())
        assert first.spec.env["CUDA_VISIBLE_DEVICES"] == "0"
        cluster.lose(OLD)
        cluster.nodes.append(node(NEW, 2))
        names = [gpu.name for gpu in (await broker.describe()).gpus]
        assert names == [f"A100 (Ray node {NEW[:12]})"] * 2
        second = await broker.take(a100(2))  # the old node's device is never offered
        assert second.spec.env["CUDA_VISIBLE_DEVICES"] == "1,2"
        waiting = asyncio.ensure_future(broker.take(a100()))
        await asyncio.sleep(0)
        cluster.lose(NEW)  # the only A100s left: the waiting request can never be served
        with pytest.raises(GpuUnavailable, match="no GPUs"):
            await asyncio.wait_for(waiting, 5)
        for callback in first.gone + second.gone:
            callback()
        assert (await broker.describe()).gpus == []
        await broker.close()

    asyncio.run(scenario())


def test_a_gpu_request_is_served_by_a_node_that_joined_after_the_runner_started() -> None:
    async def scenario() -> None:
        cluster = Cluster(node(HEAD))
        broker = GpuBroker(RayGpus(cluster, period=0.0), Spare())
        assert (await broker.describe()).unavailable is not None
        cluster.nodes.append(node(NEW, 1))
        worker = await broker.take(a100())
        assert worker.spec.env["CUDA_VISIBLE_DEVICES"] == "0"
        await broker.close()

    asyncio.run(scenario())
