"""The Ray backend: each warm worker is a Ray actor, on whichever node of a Ray cluster fits it.

``nbremote runner --backend ray [--ray-address ADDR]`` joins the cluster at ADDR (or starts a
local Ray instance). A worker is an actor (`ray_actor.WorkerKeeper`) asking Ray for what its
spec asks: ``cpu=`` as ``num_cpus`` (1/8 when not given), ``memory=`` as Ray's ``memory``
resource, ``--gpu A100:2`` as ``num_gpus=2`` plus Ray's ``accelerator_type:A100`` resource.
Each actor goes to the alive node with the fewest of the runner's actors of its spec
(`ray_place`), so a map's workers use every node that fits.

The actor starts the worker as its child process, connected straight to the runner's frame port
(`ray_listen.FramePort`: TCP, a one-time token per worker): cells stream their output as on the
process backend, the namespace persists in that process, Ctrl-C is the actor's SIGINT to it. A
lost node ends its workers' connections, so the runner retries their inputs (``retries=``)
elsewhere, as for any worker that dies.

Volumes need storage every node sees at the same path (``--ray-volume-root``, e.g. a shared
filesystem's mount): their working copies are made there, and the actor binds each at its mount
path in a bubblewrap sandbox of its node; without that folder a volume mount is refused.

An image is built as on the process backend (a venv in the runner's image cache), and the actor
starts the worker with that venv's Python, the image's env and its files: every node must see
the runner's image cache at the same path (nodes of one machine, or a shared data dir). Ray's
own ``runtime_env`` is not used: its ``pip`` needs the network on every node, and the worker is
the actor's child, not the actor, so it needs no Ray interpreter of its own.

What Ray cannot honour is refused, saying why: ``block_network``, and volumes without a volume
root. Ray's
``memory`` is a scheduling resource: its memory monitor, not a cgroup, ends a worker that goes
far over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbremote.wire.http import WorkerSpec

from ..frames import ConnectionClosed, FrameConnection, connect
from ..gpus.discovery import Device, Discovery, Reading
from ..image_types import ImageBuildError, Ready
from ..images import Images
from .base import START_GROUP, Backend, WorkerHandle, WorkerRequest, WorkerStartError, WorkerStats
from .ray_actor import WorkerKeeper
from .ray_listen import FramePort
from .ray_place import Placement
from .venvs import VenvBuilder

START_TIMEOUT = 120.0  # placement (a node may have to free room) plus the worker's start
STOP_GRACE = 5.0
# What a worker without ``cpu=`` reserves: a warm worker mostly waits, and one that reserved a
# whole core would keep a map's workers off a node that has cores to spare (Modal's default).
DEFAULT_CPUS = 0.125
DEVICES_VARIABLE = "CUDA_VISIBLE_DEVICES"  # Ray sets it for the actor's own GPUs
INVENTORY_PERIOD = 2.0  # seconds: how stale `nbremote gpus` and a GPU grant may see the cluster
NO_GPUS = "the Ray cluster has no GPU resources"


class RayGpus(Discovery):
    """The cluster's GPUs as the runner's inventory (`nbremote gpus`): one device per GPU
    resource of each live node, named by its accelerator type and node. Ray does the placing;
    the runner's broker only counts them.

    It follows the cluster: asked again (`refresh`, by the broker before a GPU request, while
    requests wait, and for `nbremote gpus`), it reads ``nodes()`` again if ``period`` seconds
    have passed, so a lost node's GPUs go and a joined node's come. A device is keyed by its
    node and its number there: it keeps its index while its node lives, and the index of a
    lost one is never given to another (a worker pinned to it names it until it ends).

    Args:
        nodes: the cluster's nodes as ``ray.nodes()`` lists them.
        period: the fewest seconds between two reads of ``nodes()``.
    """

    source = "ray"

    def __init__(
        self,
        nodes: Callable[[], list[dict[str, Any]]],
        period: float = INVENTORY_PERIOD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nodes, self._period, self._clock = nodes, period, clock
        self._indices: dict[tuple[str, int], int] = {}  # (node id, its GPU number) -> index
        self.types: list[str] = []  # by index, every device ever listed: its accelerator type
        super().__init__(self._list(nodes()), NO_GPUS)
        self._read_at = clock()

    def _list(self, nodes: list[dict[str, Any]]) -> list[Device]:
        devices: list[Device] = []
        for node in nodes:
            if not node.get("Alive"):
                continue
            resources = node.get("Resources", {})
            kinds = [k.split(":", 1)[1] for k in resources if k.startswith("accelerator_type:")]
            kind = kinds[0] if kinds else "GPU"
            for number in range(int(resources.get("GPU", 0))):
                key = (str(node["NodeID"]), number)
                if key not in self._indices:
                    self._indices[key] = len(self.types)
                    self.types.append(kind)
                name = f"{kind} (Ray node {node['NodeID'][:12]})"
                devices.append(Device(self._indices[key], name, uuid=None))
        return sorted(devices, key=lambda device: device.index)

    def due(self) -> bool:
        return self._clock() - self._read_at >= self._period

    def refresh(self) -> bool:
        if not self.due():  # another caller looked meanwhile
            return False
        self._read_at = self._clock()
        try:
            devices = self._list(self._nodes())
        except Exception:  # the GCS is unreachable for now: keep what was known
            return False
        if devices == self.devices:
            return False
        self.devices = devices
        self.unavailable = None if devices else NO_GPUS
        return True

    def read(self, index: int) -> Reading:
        return Reading()


class RayWorker(WorkerHandle):
    """A worker kept by a Ray actor (see the module's docstring); never leased (`direct`)."""

    direct = False

    def __init__(
        self,
        worker_id: str,
        spec: WorkerSpec,
        connection: FrameConnection,
        hello: dict[str, object],
        actor: Any,
        placed: dict[str, Any],
        placement: Placement,
    ) -> None:
        super().__init__(worker_id, spec, connection, hello)
        self._actor = actor
        self._placement = placement
        self.node_id = str(placed["node_id"])
        self._pid = int(placed["pid"])
        self._status: str | None = None

    def interrupt(self) -> None:
        if self._status is None:
            self._actor.interrupt.remote()  # fire and forget: the cell's output says the rest

    def joined(self, group: str) -> None:
        self._placement.join(self.id, group)

    async def stop(self) -> None:
        self._placement.forget(self.id)  # leaving: the next actor of its spec goes elsewhere
        self.connection.close()  # the worker leaves (running @nr.exit methods on its way)
        await self._end(STOP_GRACE)

    async def kill(self) -> None:
        self._placement.forget(self.id)
        self.connection.close()
        await self._end(0.0)

    async def _end(self, grace: float) -> None:
        """Wait ``grace`` seconds for the worker to leave, kill it if it has not, and let its
        actor go (it holds Ray resources until then)."""
        import ray

        try:
            code = await self._actor.wait.remote(grace) if grace else None
            if code is None:
                code = await self._actor.kill.remote()
        except ray.exceptions.RayError:
            code = None
        if self._status is None:
            self._status = _describe(code) if code is not None else "its Ray actor was lost"
        ray.kill(self._actor, no_restart=True)

    async def exit_status(self) -> str:
        import ray

        if self._status is not None:
            return self._status
        try:
            code = await self._actor.wait.remote(1.0)
        except ray.exceptions.RayError as exc:  # the actor or its node is gone
            self._placement.lost(self.id)
            self._status = f"its Ray actor was lost ({type(exc).__name__})"
            return self._status
        if code is None:
            return "still running"
        self._status = _describe(code)
        self._placement.forget(self.id)
        ray.kill(self._actor, no_restart=True)  # its worker ended on its own: free its resources
        return self._status

    def stats(self) -> WorkerStats:
        return WorkerStats(self._pid)  # a pid on its node: no memory reading from here


def _describe(code: int) -> str:
    import signal

    if code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exit code {code}"


class RayBackend(Backend):
    """Workers as Ray actors (see the module's docstring).

    Args:
        address: the Ray cluster (``ray.init(address=...)``); None: a local Ray instance.
        listen: the address the runner's frame port listens on (every node must reach it);
            None: this node's address as Ray knows it.
        volume_root: a folder every node sees at this same path, for volumes' working copies;
            None: volumes are refused.
        images: the image registry, whose images are built as venvs (None: images refused).
    """

    name = "ray"
    # An actor's worker may be on another machine, and gets no NBREMOTE_SHM_DIR: a kernel
    # told of the runner's folder would send big inputs as files the worker refuses.
    shares_shm = False
    spreads_pools = True

    def __init__(
        self,
        address: str | None = None,
        listen: str | None = None,
        volume_root: Path | None = None,
        images: Images | None = None,
    ) -> None:
        self._venvs = VenvBuilder(images) if images is not None else None
        if volume_root is not None:
            self.checkouts = volume_root.resolve() / "checkouts"
        try:
            import ray
        except ImportError:
            raise ValueError("the ray backend needs Ray: pip install 'nbremote[ray]'") from None
        try:
            ray.init(
                address=address or "local",  # None would join a cluster it finds on this host
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                namespace="nbremote",
            )
        except (ConnectionError, RuntimeError) as exc:
            what = f"--ray-address {address}: cannot join" if address else "cannot start"
            raise ValueError(f"{what} a Ray cluster: {exc}") from None
        self._port = FramePort(listen or ray.util.get_node_ip_address())
        self._keeper: Any = ray.remote(WorkerKeeper)
        self._inventory: RayGpus | None = None
        self._placement = Placement()

    @property
    def python_version(self) -> str:
        return platform.python_version()

    def gpus(self) -> RayGpus:
        """The cluster's GPUs, following its nodes (the broker's inventory: its device indices
        are this one's)."""
        import ray

        if self._inventory is None:
            self._inventory = RayGpus(ray.nodes)
        return self._inventory

    async def prepare_image(self, ref: str) -> str:
        return (await self.image_environment(ref)).id

    async def image_environment(self, ref: str) -> Ready:
        """The image ``ref``'s venv, built if need be.

        Raises:
            WorkerStartError: the runner has no image cache. LookupError, ImageBuildError.
        """
        if self._venvs is None:
            raise WorkerStartError("this runner has no image cache")
        return await self._venvs.ensure(ref)

    def _refusal(self, request: WorkerRequest) -> str | None:
        """Why this backend cannot start ``request`` as asked; None if it can."""
        if request.spec.block_network:
            return "block_network=True: the ray backend cannot cut a worker's network"
        if request.mounts and self.checkouts is None:
            return (
                f"volumes ({', '.join(sorted(request.mounts))}) on the ray backend need storage "
                "every node sees: start the runner with --ray-volume-root PATH (a folder every "
                "node sees at that path), or use them on a process or docker runner"
            )
        return None

    def _options(self, request: WorkerRequest) -> dict[str, Any]:
        """The actor's resources (see the module's docstring); Ray places it (`_place`)."""
        options: dict[str, Any] = {
            "num_cpus": request.limits.cpus or DEFAULT_CPUS,
            "max_restarts": 0,
            "max_concurrency": 4,  # an interrupt is not queued behind a wait
        }
        if request.limits.memory_bytes is not None:
            options["memory"] = request.limits.memory_bytes
        if request.spec.gpu is not None and request.devices:
            options["num_gpus"] = len(request.devices)
            kind = self._gpu_kind(request)
            if kind is not None:
                options["resources"] = {f"accelerator_type:{kind}": 0.001}
        return options

    async def _place(self, worker_id: str, request: WorkerRequest) -> dict[str, Any]:
        """The actor's options with the node `ray_place` chose for it (soft: Ray places it
        elsewhere if that node died or filled up since); that node is counted at once."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options = self._options(request)
        needs = {"CPU": options["num_cpus"], "GPU": options.get("num_gpus", 0)}
        needs |= {"memory": options.get("memory", 0)} | options.get("resources", {})
        nodes = await asyncio.to_thread(ray.nodes)
        kind, group = request.spec.key(), START_GROUP.get()
        node = self._placement.choose(nodes, kind, group, needs)
        self._placement.place(worker_id, kind, group, node or "", needs)  # "": Ray's choice
        if node is None:  # no node has room: Ray queues it, or its answer says why not
            return options | {"scheduling_strategy": "SPREAD"}
        strategy = NodeAffinitySchedulingStrategy(node, soft=True, _spill_on_unavailable=True)
        return options | {"scheduling_strategy": strategy}

    def _gpu_kind(self, request: WorkerRequest) -> str | None:
        """The accelerator type of the GPUs the broker counted for ``request``."""
        inventory = self.gpus()
        kinds = {
            inventory.types[int(device)]
            for device in request.devices
            if device.isdigit() and int(device) < len(inventory.types)
        }
        kind = next(iter(kinds), None)
        return kind if kind not in (None, "GPU") else None

    async def start_worker(self, request: WorkerRequest) -> WorkerHandle:
        why = self._refusal(request)
        if why is not None:
            raise WorkerStartError(why)
        worker_id = uuid.uuid4().hex[:12]
        env = {k: v for k, v in request.spec.env.items() if k != DEVICES_VARIABLE}
        image: dict[str, str] = {}
        if request.image is not None:
            try:
                ready = await self.image_environment(request.image)
            except (LookupError, ImageBuildError) as exc:
                raise WorkerStartError(str(exc)) from None
            image = {"python": str(ready.python), "files": str(ready.files)}
            env = ready.env | env
        env |= request.env | {"NBREMOTE_TASK_ID": worker_id}
        options = await self._place(worker_id, request)
        token, arrived = self._port.expect()
        actor: Any = self._keeper.options(**options).remote()
        try:
            async with asyncio.timeout(START_TIMEOUT):
                mounts = {path: str(folder) for path, folder in request.mounts.items()}
                placed = await actor.start.remote(self._port.address, token, env, mounts, image)
                node = str(placed["node_id"])  # where Ray put it in the end
                self._placement.settle(worker_id, node)
                connection = await connect(await arrived)
                hello, _ = await connection.receive()
        except BaseException as exc:
            if arrived.done() and not arrived.cancelled() and arrived.exception() is None:
                arrived.result().close()  # it connected, then failed to start its worker
            arrived.cancel()
            self._placement.forget(worker_id)
            import ray

            ray.kill(actor, no_restart=True)
            if not isinstance(exc, TimeoutError | ConnectionClosed | ray.exceptions.RayError):
                raise
            reason = (
                f"Ray placed no actor with {self._options(request)} within {START_TIMEOUT:.0f}s "
                "(no node has those resources free)"
                if isinstance(exc, TimeoutError)
                else str(exc).strip().splitlines()[-1]
            )
            raise WorkerStartError(f"the worker's Ray actor did not start: {reason}") from exc
        return RayWorker(worker_id, request.spec, connection, hello, actor, placed, self._placement)

    async def close(self) -> None:
        import ray

        if self._venvs is not None:
            await self._venvs.close()

        self._port.close()
        with contextlib.suppress(Exception):
            ray.shutdown()
