"""The runner's part of starting a worker, around its backend: secrets in, volumes checked out.

`ContainerStarter` turns a `WorkerSpec` into the backend's `WorkerRequest`. A spec without
volumes or secrets goes straight to the backend. Otherwise the secrets are resolved first (a
missing one fails the request before any process starts), each volume gets a working copy, and
the backend binds the copies at their mount paths. When the worker stops cleanly its changes are
committed; when it dies they are dropped; either way its copies are removed. Every request
carries the spec's `Limits` (``cpu=``, ``memory=``) for the backend to enforce, and the memory
limit in the worker's environment, so that a ``MemoryError`` there can name it.
"""

from __future__ import annotations

import json

from nbremote.wire.http import WorkerSpec

from .backends import (
    Backend,
    Limits,
    WorkerHandle,
    WorkerRequest,
    WorkerStartError,
    WorkerStats,
)
from .secrets import SecretError, Secrets
from .volumes import Checkout, VolumeError, Volumes

DEVICES_VARIABLE = "CUDA_VISIBLE_DEVICES"  # where the GPU broker pins a worker's devices
# A worker's memory limit, so that its MemoryError can name it (`worker_calls`).
MEMORY_VARIABLE = "NBREMOTE_MEMORY_MIB"


class MountedWorker(WorkerHandle):
    """A backend's worker that has volume working copies to commit or drop when it ends."""

    def __init__(self, inner: WorkerHandle, checkouts: list[Checkout], volumes: Volumes) -> None:
        super().__init__(inner.id, inner.spec, inner.connection, inner.hello)
        self.direct = inner.direct
        self._inner = inner
        self._checkouts = checkouts
        self.checkouts = frozenset(checkout.id for checkout in checkouts)
        self._volumes = volumes
        self._stopping = False

    def interrupt(self) -> None:
        self._inner.interrupt()

    def stats(self) -> WorkerStats:
        return self._inner.stats()

    def leaving(self) -> None:
        self._stopping = True  # its exit is a clean stop: exit_status must not drop the copies

    async def stop(self) -> None:
        self._stopping = True  # the stream closes first: exit_status must not drop the copies
        await self._inner.stop()
        await self._release(await self._inner.exit_status() == "exit code 0")

    async def kill(self) -> None:
        self._stopping = True
        await self._inner.kill()
        await self._release(False)  # killed mid-run: what it wrote is not a state to keep

    async def exit_status(self) -> str:
        status = await self._inner.exit_status()
        if (
            status != "still running" and not self._stopping
        ):  # it died on its own: what it did not commit is lost
            await self._release(False)
        return status

    async def _release(self, commit: bool) -> None:
        checkouts, self._checkouts = self._checkouts, []
        for checkout in checkouts:
            await self._volumes.release(checkout.id, commit)


def devices(spec: WorkerSpec) -> tuple[str, ...]:
    """The GPUs the broker pinned ``spec`` to (UUIDs or indices), from its environment."""
    pinned = spec.env.get(DEVICES_VARIABLE, "")
    return tuple(device for device in pinned.split(",") if device)


class ContainerStarter:
    """Starts workers on a backend with what their spec names (see the module's docstring).

    Args:
        backend: where the workers run.
        volumes: whose working copies are mounted.
        secrets: whose values go in the workers' environment.
    """

    def __init__(self, backend: Backend, volumes: Volumes, secrets: Secrets) -> None:
        self.backend = backend
        self._volumes = volumes
        self._secrets = secrets

    async def start_worker(self, spec: WorkerSpec) -> WorkerHandle:
        """A started worker for ``spec``.

        Raises:
            WorkerStartError: a secret or volume it names does not exist, or the backend could
                not start it.
        """
        limits = Limits.of(spec)
        limit_env = {MEMORY_VARIABLE: str(spec.memory)} if spec.memory is not None else {}
        if not spec.volumes and not spec.secrets:
            request = WorkerRequest(spec, limit_env, devices=devices(spec), limits=limits)
            return await self.backend.start_worker(request)
        try:
            env = self._secrets.environment(spec) | limit_env
            for name in spec.volumes.values():
                self._volumes.get(name)
        except (SecretError, VolumeError) as exc:
            raise WorkerStartError(str(exc)) from None
        checkouts: list[Checkout] = []
        try:
            for _, name in sorted(spec.volumes.items()):
                checkouts.append(await self._volumes.checkout(name))
            mounts = dict(zip(sorted(spec.volumes), checkouts, strict=True))
            if mounts:  # how the worker's Volume.commit() names its copies
                env["NBREMOTE_VOLUMES"] = json.dumps(
                    {path: {"name": c.volume.name, "checkout": c.id} for path, c in mounts.items()}
                )
            request = WorkerRequest(
                spec,
                env=env,
                mounts={path: c.root for path, c in mounts.items()},
                devices=devices(spec),
                limits=limits,
            )
            inner = await self.backend.start_worker(request)
        except BaseException:
            for checkout in checkouts:
                await self._volumes.release(checkout.id, commit=False)
            raise
        return MountedWorker(inner, checkouts, self._volumes) if checkouts else inner
