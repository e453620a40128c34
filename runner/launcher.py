"""Starting workers with what their spec names: secrets in their environment, volumes mounted.

`Launcher` sits between the warm pools and the backend. A spec without volumes or secrets goes
straight to the backend. Otherwise the secrets are resolved first (a missing one fails the
request before any process starts), each volume gets a working copy, and the backend binds the
copies at their mount paths. When the worker stops cleanly its changes are committed; when it
dies they are dropped; either way its copies are removed.
"""

from __future__ import annotations

import json

from nbremote.wire.http import WorkerSpec

from .backends import Backend, WorkerProcess, WorkerSetup, WorkerStartError
from .secrets import SecretError, Secrets
from .volumes import Checkout, VolumeError, Volumes


class MountedWorker(WorkerProcess):
    """A backend's worker that has volume working copies to commit or drop when it ends."""

    def __init__(self, inner: WorkerProcess, checkouts: list[Checkout], volumes: Volumes) -> None:
        super().__init__(inner.id, inner.spec, inner.connection, inner.hello)
        self._inner = inner
        self._checkouts = checkouts
        self.checkouts = frozenset(checkout.id for checkout in checkouts)
        self._volumes = volumes
        self._stopping = False

    @property
    def pid(self) -> int:
        return self._inner.pid  # on the host: a sandboxed worker's own pid is another

    def interrupt(self) -> None:
        self._inner.interrupt()

    def rss_bytes(self) -> int | None:
        return self._inner.rss_bytes()

    async def stop(self) -> None:
        self._stopping = True  # the stream closes first: exit_status must not drop the copies
        await self._inner.stop()
        await self._release(await self._inner.exit_status() == "exit code 0")

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


class Launcher(Backend):
    """A backend that also resolves secrets and mounts volumes (see the module's docstring)."""

    def __init__(self, backend: Backend, volumes: Volumes, secrets: Secrets) -> None:
        self.backend = backend
        self.name = backend.name
        self._volumes = volumes
        self._secrets = secrets

    @property
    def python_version(self) -> str:
        return self.backend.python_version

    async def start_worker(
        self, spec: WorkerSpec, setup: WorkerSetup | None = None
    ) -> WorkerProcess:
        if not spec.volumes and not spec.secrets:
            return await self.backend.start_worker(spec, setup)
        try:
            env = self._secrets.environment(spec)
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
            setup = WorkerSetup(env, {path: c.root for path, c in mounts.items()})
            inner = await self.backend.start_worker(spec, setup)
        except BaseException:
            for checkout in checkouts:
                await self._volumes.release(checkout.id, commit=False)
            raise
        return MountedWorker(inner, checkouts, self._volumes) if checkouts else inner
