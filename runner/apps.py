"""Deployed apps: functions and classes registered under an app's name, callable from anywhere.

``nbremote deploy app.py`` sends each function and class pickled by value; the runner keeps them
(in SQLite, so a restart keeps them too) and serves calls that name them from pools of its own,
shared by every notebook and process: a deployed class's warm container serves them all.
Stopping an app stops its workers (running their ``@nr.exit()`` methods).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from nbremote.wire.codec import Header
from nbremote.wire.http import DeployApp, DescribeApp, DescribeAppObject

from .gpus import GpuBroker, Holder
from .pools import FunctionPool, Pools
from .state import State


@dataclass
class DeployedApp:
    """An app's objects (name -> description and payload), its pools and its log."""

    name: str
    deployed_at: float
    objects: dict[str, tuple[DescribeAppObject, list[bytes]]]
    log_path: Path
    writer: Executor  # one thread: appends stay in order, off the event loop
    pools: Pools
    followers: set[asyncio.Queue[str]] = field(default_factory=set)

    def log(self, text: str) -> None:
        """Keep output of the app's code: in its log file, and for those following it."""
        for follower in self.followers:
            follower.put_nowait(text)
        self.writer.submit(self._append, text)

    def _append(self, text: str) -> None:
        with self.log_path.open("a") as log:
            log.write(text)

    def describe(self) -> DescribeApp:
        """The app as the API shows it."""
        workers = len(self.pools.workers)
        objects = [described for described, _ in self.objects.values()]
        return DescribeApp(
            name=self.name, deployed_at=self.deployed_at, objects=objects, workers=workers
        )

    async def close(self) -> None:
        """Stop every worker of the app."""
        await self.pools.close()


def payload_parts(payload: str, sizes: list[int]) -> list[bytes]:
    """A deployed object's pickle parts, from its base64 payload and the parts' sizes."""
    data, parts, position = base64.b64decode(payload), [], 0
    for size in sizes:
        parts.append(data[position : position + size])
        position += size
    return parts


class DeployedApps:
    """Every deployed app of a runner."""

    def __init__(self, state: State, broker: GpuBroker, log_dir: Path) -> None:
        self._state = state
        self._log_dir = log_dir
        self._log_writer = ThreadPoolExecutor(1, thread_name_prefix="nbremote-app-logs")
        self._broker = broker
        self.apps: dict[str, DeployedApp] = {}
        # Told of each deploy (before it is installed: it may refuse it) and stop (request None):
        # the scheduled functions' jobs (`job_apps.sync_app`).
        self.on_change: Callable[[str, DeployApp | None], Awaitable[None]] | None = None
        # Told of each app deployed, once installed: its endpoints' warm workers start.
        self.on_installed: Callable[[DeployedApp], None] | None = None

    async def load(self) -> None:
        """Read the deployed apps back from SQLite."""
        for name, deployed_at, document in await self._state.query(
            "SELECT name, deployed_at, document FROM apps"
        ):
            self._install(name, DeployApp.model_validate_json(document), deployed_at)

    def _install(self, name: str, request: DeployApp, deployed_at: float) -> DeployedApp:
        objects = {
            obj.name: (
                DescribeAppObject(
                    name=obj.name,
                    kind=obj.kind,
                    methods=obj.methods,
                    settings=obj.settings,
                    hash=obj.hash,
                ),
                payload_parts(obj.payload, obj.sizes),
            )
            for obj in request.objects
        }
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log = self._log_dir / f"{name}.log"
        pools = Pools(self._broker)
        app = DeployedApp(name, deployed_at, objects, log, self._log_writer, pools)
        self.apps[name] = app
        return app

    async def deploy(self, name: str, request: DeployApp) -> tuple[DeployedApp, bool]:
        """Register (or replace) an app; whether it is new. A replaced app's workers stop."""
        if self.on_change is not None:
            await self.on_change(name, request)
        old = self.apps.pop(name, None)
        if old is not None:
            await old.close()
        deployed_at = time.time()
        app = self._install(name, request, deployed_at)
        if self.on_installed is not None:
            self.on_installed(app)
        self._state.write_later(
            "INSERT OR REPLACE INTO apps VALUES (?, ?, ?)",
            (name, deployed_at, request.model_dump_json()),
        )
        return app, old is None

    def missing(self, name: str) -> str:
        """The message for an app that is not deployed, listing those that are."""
        deployed = ", ".join(sorted(self.apps)) or "none"
        return f"no deployed app {name!r} (deployed: {deployed}); try: nbremote deploy FILE.py"

    async def stop(self, name: str) -> None:
        """Stop an app's workers and forget it."""
        app = self.apps.pop(name)
        if self.on_change is not None:
            await self.on_change(name, None)
        await app.close()
        self._state.write_later("DELETE FROM apps WHERE name = ?", (name,))

    def attach(
        self, header: Header, buffers: list[bytearray]
    ) -> tuple[DeployedApp, FunctionPool, list[bytearray]]:
        """For a call naming a deployed object: its app, the app's pool, and the buffers with the
        object's payload put in front (the caller has no copy of it).

        Raises:
            LookupError: the app or the object is not deployed (the message lists what is).
        """
        deployed = header["deployed"]
        app = self.apps.get(deployed["app"])
        if app is None:
            raise LookupError(self.missing(deployed["app"]))
        if deployed["object"] not in app.objects:
            names = ", ".join(sorted(app.objects))
            raise LookupError(f"app {app.name!r} has no {deployed['object']!r} (it has: {names})")
        described, parts = app.objects[deployed["object"]]
        header["function"].update(hash=described.hash, nbuf=len(parts))
        pool = header["pool"]
        holder = Holder("app", name=f"{app.name}.{deployed['object']}", group=pool["key"])
        return app, app.pools.get_or_open(pool, holder), [*parts, *buffers]  # type: ignore[list-item]

    async def scale_down(self) -> None:
        """Scale every app's pools down."""
        for app in list(self.apps.values()):
            await app.pools.scale_down()

    async def close(self) -> None:
        """Stop every app's workers (the apps stay deployed)."""
        for app in self.apps.values():
            await app.close()
        self._log_writer.shutdown()
