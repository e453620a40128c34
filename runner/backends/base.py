"""The contract between the runner and a place where workers run (a backend).

A backend owns the whole container: given a `WorkerRequest` it prepares the image for its kind
(a venv for the process backend; a container image, a Ray runtime env for the others), starts the
worker program (``python -P -m nbremote_runner.worker``) with the request's environment, mounts,
devices and limits, waits for its ``hello`` and hands back a `WorkerHandle`. Everything the
runner knows of a running worker goes through that handle: its frame stream, interrupt, stop,
exit status, stats, and whether a same-host client may reach it directly.

What the runner does around a backend (`nbremote_runner.containers`): it resolves the spec's
secrets into the request's environment, checks out each volume and names the working copies in
the request's mounts, and commits or drops them when the worker ends. The GPU broker chooses the
devices. Nothing outside the backends reads a worker's host pid or signals it.

A backend must:

- raise `WorkerStartError` (saying why: exit status, the log) when a worker does not start, and
  leave nothing behind (no process, no scratch folder);
- keep what the runner itself holds (its data dir, its token) out of the worker's reach, and none
  of the runner's ``NBREMOTE_*`` settings in its environment;
- stop its workers when the runner goes, however it goes;
- enforce the request's `Limits` and the spec's ``block_network`` (only a loopback of its own),
  or refuse to start the worker, saying why: a flag it cannot honour is never dropped silently.
"""

from __future__ import annotations

import abc
import contextvars
from dataclasses import dataclass, field
from pathlib import Path

from nbremote.wire.codec import Header
from nbremote.wire.http import WorkerSpec

from ..errors import RunnerError
from ..frames import FrameConnection


class WorkerStartError(RunnerError):
    """A worker could not be started; the message says why (exit status, log tail)."""


START_GROUP: contextvars.ContextVar[str] = contextvars.ContextVar("start_group", default="")
"""The pool a worker is being started for (its key, set by the pool's start): a backend that
places workers on several nodes spreads each pool's workers over them (`ray_place`)."""

POOL_HAS_OTHERS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "pool_has_others", default=False
)
"""Whether that pool has other workers already, live or starting (set with `START_GROUP`): on a
backend that spreads a pool's workers (`Backend.spreads_pools`), such a start does not take the
runner's spare, which was placed before any pool wanted it."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of a worker, from its spec's ``memory=`` (MiB) and ``cpu=`` (cores).
    Every backend enforces them; going over memory ends the call with
    `nbremote_runner.worker_calls.out_of_memory`."""

    memory_bytes: int | None = None
    cpus: float | None = None

    @classmethod
    def of(cls, spec: WorkerSpec) -> Limits:
        """The limits ``spec`` asks for."""
        memory = spec.memory * 2**20 if spec.memory is not None else None
        return cls(memory_bytes=memory, cpus=spec.cpu)


@dataclass(frozen=True)
class WorkerRequest:
    """Everything a backend needs to start one worker.

    Args:
        spec: the worker's spec as the client asked for it.
        env: environment variables beyond the spec's own (its secrets: never logged or shown).
        mounts: mount path -> host folder to bind there (volumes' working copies).
        devices: the GPUs it may use (UUIDs where NVML gave them, else indices), already named in
            its environment as ``CUDA_VISIBLE_DEVICES``.
        limits: its resource limits (`Limits.of` its spec).
    """

    spec: WorkerSpec
    env: dict[str, str] = field(default_factory=dict, repr=False)
    mounts: dict[str, Path] = field(default_factory=dict)
    devices: tuple[str, ...] = ()
    limits: Limits = Limits()

    @property
    def image(self) -> str | None:
        """The image (id or name in the runner's registry) the backend prepares, if any."""
        return self.spec.image


@dataclass(frozen=True)
class WorkerStats:
    """What the runner shows and measures of a running worker.

    Args:
        pid: the worker's process id as the API shows it (on the backend's host).
        rss_bytes: its resident memory, if known.
        gpu_pids: the host pids NVML lists for its GPU use (to tell its memory from others').
    """

    pid: int
    rss_bytes: int | None = None
    gpu_pids: frozenset[int] = frozenset()


class WorkerHandle(abc.ABC):
    """A running worker: its frame stream, its hello, and the controls the runner needs.

    Attributes:
        direct: whether a same-host client can reach the worker's own (abstract Unix) socket,
            so that the runner may lease it (`nbremote_runner.worker_lease`); a backend whose
            worker lives in another network namespace or host says False.
        checkouts: ids of the volume working copies this worker may commit (set by the runner).
    """

    direct: bool = False

    def __init__(
        self, worker_id: str, spec: WorkerSpec, connection: FrameConnection, hello: Header
    ) -> None:
        self.id = worker_id
        self.spec = spec
        self.connection = connection
        self.hello = hello
        self.checkouts: frozenset[str] = frozenset()

    @abc.abstractmethod
    def interrupt(self) -> None:
        """Interrupt the running cell (like Ctrl-C); the worker survives."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop the worker for good and free what it held."""

    async def kill(self) -> None:
        """Stop the worker now, whatever it is running (it ignored an interrupt); what it did
        not commit is lost. A backend that cannot kill at once stops it instead."""
        await self.stop()

    def joined(self, group: str) -> None:  # noqa: B027 (a no-op where placement is not ours)
        """The spare worker was taken by the pool ``group`` (`START_GROUP`): it counts as that
        pool's from now on, wherever the backend spreads a pool's workers."""

    def leaving(self) -> None:  # noqa: B027 (a no-op for a worker with nothing to keep)
        """The runner has told the worker to stop (a ``stop`` frame): the exit that follows is
        the end it asked for, not a death, whoever notices it first."""

    @abc.abstractmethod
    async def exit_status(self) -> str:
        """After the stream closed: how the worker ended ("exit code 1", "killed by signal
        SIGKILL"); "still running" if it has not ended."""

    @abc.abstractmethod
    def stats(self) -> WorkerStats:
        """Its pid, memory and GPU pids now."""


class Backend(abc.ABC):
    """Prepares images and starts workers (see the module's docstring)."""

    name: str
    # Where volumes' working copies go for this backend's workers to see them (a folder every
    # node of a cluster sees); None: the runner's data dir.
    checkouts: Path | None = None
    # Whether every worker maps the runner's shared-memory folder (`nbremote.wire.shm`): if not,
    # kernels are not told of it, and big buffers travel inside the frames.
    shares_shm: bool = True
    # Whether it spreads a pool's workers over nodes (`START_GROUP`).
    spreads_pools: bool = False

    @abc.abstractmethod
    async def prepare_image(self, ref: str) -> str:
        """Make the image ``ref`` ready for this backend's workers (its build log to
        `nbremote_runner.images.BUILD_LOG`); its id.

        Raises:
            LookupError: no such image. ImageBuildError: it could not be made.
        """

    @abc.abstractmethod
    async def start_worker(self, request: WorkerRequest) -> WorkerHandle:
        """Start a worker for ``request`` (its image prepared first) and wait for its hello.

        Raises:
            WorkerStartError: the worker exited or did not answer in time, its image could not
                be made, or its mounts cannot be made.
        """

    @property
    @abc.abstractmethod
    def python_version(self) -> str:
        """The Python version of the default worker environment."""

    async def close(self) -> None:  # noqa: B027 (a backend with nothing to close keeps this)
        """Stop what the backend does in the background (image builds)."""
