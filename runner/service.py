"""The runner service: configuration, start-up, idle shutdown, stop.

`Runner.start` listens with the HTTP application it is given (`nbremote_runner.server` builds it
from the route table and runs a runner in the foreground): handlers use the runner, so the runner
does not import them. An embedded runner announces itself in a runtime file, ``runner.json`` in
its data dir, which clients read to find it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import json
import os
import shutil
import socket
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornado.netutil import bind_sockets
from tornado.web import Application

from nbremote import __version__
from nbremote.wire.codec import FrameLimits, Header
from nbremote.wire.http import DescribeRunner, DescribeSession
from nbremote.wire.ops import Op
from nbremote.wire.shm import create_dir

from .apps import DeployedApps
from .backends import Backend
from .backends.kinds import make_backend
from .calls import CallRegistry
from .containers import ContainerStarter
from .data_dir import prepare, scratch_root
from .dispatch import Dispatcher
from .endpoint_apps import keep_warm, on_change
from .endpoint_http import FrontServer
from .endpoints import Endpoints
from .frames import Frame
from .gpus import GpuBroker, discover
from .images import Images
from .jobs import Jobs
from .pools import SparePool
from .sandboxes import Sandboxes
from .secrets import Secrets
from .sessions import Session, SessionRegistry
from .state import State
from .stores import Stores
from .tls import server_context
from .volumes import Volumes

RUNTIME_FILE = "runner.json"


@dataclass
class RunnerConfig:
    """How a runner is started.

    Args:
        data_dir: where the runner keeps its state (SQLite file, scratch dirs, runtime file).
        host: address to listen on; anything but loopback requires a token.
        port: port to listen on; 0 picks a free one.
        backend: where workers run (``process`` or ``docker``).
        docker_host: the docker backend's daemon (None: ``DOCKER_HOST``, else docker's default).
        docker_network: its containers' network: ``none`` or ``host``.
        ray_address: the ray backend's cluster (None: a local Ray instance).
        ray_volume_root: the ray backend's folder for volumes' working copies, which every node
            sees at that path (None: it refuses volumes).
        token: bearer token every API call must carry (health excepted); None on loopback only.
        token_file: where the token was read from (hidden from workers, like the data dir).
        idle_timeout: exit after this many seconds with no client connected; None: never.
        embedded: write the runtime file so that kernels of this user find the runner.
        session_grace: seconds a session outlives its kernel when that one went away without
            a goodbye (a crash), so that ``%remote attach`` can take it over; a clean exit
            ends it at once (`nbremote_runner.sessions`).
        spare_worker: keep a booted worker ready for the next new notebook.
        store_limit: the most items one Dict or Queue may hold.
        gpus: the declared GPU inventory (``"A100-80GB:2,H100"``); None: as NVML finds them.
        certfile: PEM certificate (chain) to serve HTTPS with; needs ``keyfile``.
        keyfile: the certificate's PEM private key.
        frame_limits: the biggest frame a kernel's channel takes (header, buffer, frame bytes);
            a bigger one is answered with an error and its connection closed.
        max_body_bytes: the largest JSON request body (413 beyond; volume uploads stream).
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8765
    backend: str = "process"
    docker_host: str | None = None
    docker_network: str = "none"
    ray_address: str | None = None
    ray_volume_root: Path | None = None
    token: str | None = None
    token_file: Path | None = None
    idle_timeout: float | None = None
    embedded: bool = False
    session_grace: float = 300.0
    spare_worker: bool = True
    store_limit: int = 100_000
    gpus: str | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    frame_limits: FrameLimits = field(default_factory=FrameLimits)
    max_body_bytes: int = 128 << 20  # an image's local files (64 MiB) base64-encoded fit

    def check(self) -> None:
        """Refuse an unsafe or impossible configuration, saying what to change."""
        if not self.token and not _is_loopback(self.host):
            raise ValueError(
                f"listening on {self.host} runs pickled code for anyone who can connect: "
                "set NBREMOTE_TOKEN or pass --token-file F (or listen on 127.0.0.1)"
            )
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("TLS needs both --certfile and --keyfile")
        if self.certfile is not None and self.keyfile is not None:
            server_context(self.certfile, self.keyfile)  # unreadable or mismatched: say so now
        elif not _is_loopback(self.host):
            print(
                f"WARNING: listening on {self.host} without TLS: the token and every pickle "
                "cross the network in clear text. Pass --certfile and --keyfile.",
                file=sys.stderr,
                flush=True,
            )

    def tls(self) -> ssl.SSLContext | None:
        """The server TLS context, if the runner serves HTTPS."""
        if self.certfile is None or self.keyfile is None:
            return None
        return server_context(self.certfile, self.keyfile)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Runner:
    """A running runner: HTTP API, sessions and their workers, state."""

    def __init__(self, config: RunnerConfig) -> None:
        config.check()
        self.discovery = discover(config.gpus)  # a bad --gpus fails here, before anything starts
        self.config = config
        self.started_at = time.time()
        prepare(config.data_dir)  # before anything is written there
        self.state = State(config.data_dir / "state.db")
        self.shm_dir = create_dir(str(os.getpid()))
        self.images = Images(config.data_dir / "images")
        self.images.in_use = self._images_in_use
        private = [config.token_file] if config.token_file else []
        self.backend: Backend = make_backend(
            config.backend,
            str(config.data_dir),
            self.shm_dir,
            self.images,
            private,
            embedded=config.embedded,
            docker_host=config.docker_host,
            docker_network=config.docker_network,
            ray_address=config.ray_address,
            ray_volume_root=config.ray_volume_root,
        )
        if config.gpus is None and hasattr(self.backend, "gpus"):  # a cluster's, as it lists them
            self.discovery = self.backend.gpus()
        self.stopped = asyncio.Event()
        self.calls = CallRegistry()
        self.port = config.port
        self._last_touch = time.monotonic()
        self._server: FrontServer | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        """Where clients reach the runner."""
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        scheme = "https" if self.config.certfile else "http"
        return f"{scheme}://{host}:{self.port}"

    def _url(self) -> str:
        return self.url

    async def start(self, app: Application) -> None:
        """Open the state, boot the spare worker, listen with ``app``, and announce the runner."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        await self.state.open()
        await self.images.load()
        self.stores = Stores(self.state, self.config.store_limit)
        await self.stores.load()
        volumes = self.config.data_dir / "volumes"
        self.volumes = Volumes(self.state, volumes, self.backend.checkouts)
        await self.volumes.load()
        self.secrets = Secrets(self.config.data_dir / "secrets.json")
        self.secrets.load()
        starter = ContainerStarter(self.backend, self.volumes, self.secrets)
        root = scratch_root(self.config.data_dir)
        self.sandboxes = Sandboxes(self.backend, root, self.volumes, self.secrets)
        spreads = self.backend.spreads_pools
        spare = SparePool(starter, self.serve_worker, self.config.spare_worker, spreads)
        self.gpus = GpuBroker(self.discovery, spare)
        self.sessions = SessionRegistry(self.gpus, self.config.session_grace)
        self.apps = DeployedApps(self.state, self.gpus, self.config.data_dir / "logs")
        await self.apps.load()
        self.dispatcher = Dispatcher(self.state, self.gpus, self.apps, self.calls)
        self.jobs = Jobs.create(self.state, self.config.data_dir, self.dispatcher, self.gpus)
        await self.jobs.start()
        self.endpoints = Endpoints(self.state, self.config.data_dir / "endpoint-logs", self._url)
        await self.endpoints.load(self.apps.apps)
        self.apps.on_change = on_change(self.jobs, self.endpoints)
        self.apps.on_installed = keep_warm(self.endpoints)
        for deployed in self.apps.apps.values():  # deployed before a restart: warm again
            self.apps.on_installed(deployed)
        self.jobs.held_elsewhere = self._endpoint_named
        sockets = bind_sockets(
            self.config.port,
            address=self.config.host,
            family=socket.AF_INET if "." in self.config.host else socket.AF_UNSPEC,
        )
        self.port = sockets[0].getsockname()[1]
        self._server = FrontServer(app, ssl_options=self.config.tls())
        self._server.add_sockets(sockets)
        self._tasks.append(asyncio.create_task(self._maintain()))
        if self.config.embedded:
            self._write_runtime_file()

    def _endpoint_named(self, name: str) -> str | None:
        """Whose a job's name is, when an endpoint has it (a job and an endpoint share names)."""
        if name not in self.endpoints.endpoints:
            return None
        return f"the endpoint {name!r} (nbremote endpoints rm {name} frees it)"

    def _write_runtime_file(self) -> None:
        path = self.config.data_dir / RUNTIME_FILE
        tmp = path.with_suffix(".tmp")
        document = {
            "url": self.url,
            "token": self.config.token,
            "pid": os.getpid(),
            "version": __version__,
        }
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the token
        with os.fdopen(fd, "w") as file:
            json.dump(document, file)
        os.replace(tmp, path)

    def _remove_runtime_file(self) -> None:
        path = self.config.data_dir / RUNTIME_FILE
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass

    async def serve_worker(self, header: Header, buffers: list[Any]) -> Frame:
        """Answer what a worker asks the runner itself: Dict, Queue and volume requests."""
        if header["op"] == Op.VOLUME:
            return await self.volumes.answer(header, buffers)
        return await self.stores.answer(header, buffers)

    def describe_session(self, session: Session) -> DescribeSession:
        """A session as the API shows it."""
        shm_dir = self.shm_dir if self.backend.shares_shm else None
        return session.describe(self.backend.python_version, shm_dir, self.sessions.grace)

    def _images_in_use(self) -> collections.Counter[str]:
        """How many live workers run on each image (by id)."""
        workers = [w for session in self.sessions for w in session.workers]
        pools = [pool for app in self.apps.apps.values() for pool in app.pools.values()]
        workers += [worker for pool in pools for worker in pool.workers]
        counts: collections.Counter[str] = collections.Counter()
        for worker in workers:
            ref = worker.process.spec.image
            if ref is not None and worker.alive:
                with contextlib.suppress(LookupError):
                    counts[self.images.lookup(ref).id] += 1
        return counts

    def touch(self) -> None:
        """Note client activity (it postpones the idle shutdown)."""
        self._last_touch = time.monotonic()

    def idle(self) -> bool:
        """Whether nobody is connected, nothing runs and no job is scheduled (an embedded runner
        stays up for its jobs)."""
        return not self.jobs.scheduled and all(
            session.channels == 0 and not any(worker.busy for worker in session.workers)
            for session in self.sessions
        )

    async def _maintain(self) -> None:
        timeout = self.config.idle_timeout
        period = min(1.0, timeout / 4) if timeout else 1.0  # cheap: a few comparisons
        while True:
            await asyncio.sleep(period)
            await self.sessions.reap()
            await self.apps.scale_down()
            if timeout and self.idle() and time.monotonic() - self._last_touch > timeout:
                self.stopped.set()
                return

    async def describe(self) -> DescribeRunner:
        """The runner as the API shows it."""
        return DescribeRunner(
            version=__version__,
            backend=self.backend.name,
            python=self.backend.python_version,
            pid=os.getpid(),
            data_dir=str(self.config.data_dir),
            started_at=self.started_at,
            idle_timeout_s=self.config.idle_timeout,
            sessions=len(self.sessions),
            workers=sum(len(session.workers) for session in self.sessions),
            cells_run=await self.state.count_runs(),
        )

    async def stop(self) -> None:
        """Stop listening, stop every worker, close the state."""
        if self.config.embedded:
            self._remove_runtime_file()
        if self._server is not None:
            self._server.stop()
        for task in self._tasks:
            task.cancel()
        await self.jobs.stop()
        await self.apps.close()
        self.endpoints.close()
        await self.sessions.close()
        await self.sandboxes.close()
        self.volumes.close()
        await self.backend.close()  # its image builds, before the registry's threads go
        await self.images.close()
        await self.state.close()
        if self.shm_dir is not None:
            shutil.rmtree(self.shm_dir, ignore_errors=True)
        shutil.rmtree(scratch_root(self.config.data_dir), ignore_errors=True)
