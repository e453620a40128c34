"""The docker backend: each warm container is a Docker container whose main process is the worker.

The runner listens on a Unix socket in a folder of its own per worker, bind-mounted into the
container at ``/run/nbremote``; the worker (``python -P -m nbremote_runner.worker --connect``) is
the container's pid 1 and connects to it, so frames flow as on the process backend, with no
``docker exec`` per cell. Interrupts are a SIGINT to that pid 1 (Python handles it, so the
kernel delivers it); a stop closes the socket (the worker leaves), then kills the container
after a grace period. The container is removed once its exit status has been read, an OOM kill
(``memory=``) named as such.

What a container gets: the image (`docker_images`), the spec's env and its secrets as
environment variables (never on a command line or in a label), the volumes' working copies as
bind mounts, ``cpu=``/``memory=`` as its limits (no swap beyond memory), its GPUs as a device
request, and no network (``network_mode="none"``) unless the runner was started with
``--docker-network host``. None of the runner's own environment goes in.

Every container is labelled ``nbremote.runner=<runner id>`` (a hash of the runner's data dir):
when a runner starts, the containers its crashed predecessor left are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import platform
import shutil
import signal
import socket
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import psutil

from nbremote.wire.http import WorkerSpec

from ..frames import ConnectionClosed, FrameConnection, connect
from .base import Backend, WorkerHandle, WorkerRequest, WorkerStartError, WorkerStats
from .docker_images import DockerImages
from .docker_steps import SITE

HELLO_TIMEOUT = 60.0
STOP_GRACE = 5.0
LABEL = "nbremote.runner"
SOCKET_DIR = "/run/nbremote"  # where a container finds the runner's socket
SOCKET_NAME = "runner.sock"


def _blocking(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a thread: docker's client blocks on HTTP."""
    return asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))


class DockerWorker(WorkerHandle):
    """A worker that is the main process of a container (see the module's docstring). It lives
    in a network namespace of its own: a client cannot lease it (`direct` is False)."""

    direct = False

    def __init__(
        self,
        worker_id: str,
        spec: WorkerSpec,
        connection: FrameConnection,
        hello: dict[str, object],
        container: Any,
        folder: Path,
        memory_bytes: int | None,
    ) -> None:
        super().__init__(worker_id, spec, connection, hello)
        self._container = container
        self._folder = folder
        self._memory = memory_bytes
        pid = int(container.attrs.get("State", {}).get("Pid") or 0)
        # The daemon's pid is ours only when the runner shares its pid namespace (not a runner
        # in a container of its own): then signals and memory go straight to the process.
        self._host_pid = pid if _is_worker(pid, worker_id) else 0
        self._status: str | None = None
        self._ending = asyncio.Lock()
        self._leaving = False

    def interrupt(self) -> None:
        if self._status is not None:
            return
        if self._host_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._host_pid, signal.SIGINT)
        else:  # not in our pid namespace: through the daemon's API, off the event loop
            threading.Thread(target=self._api_kill, args=("SIGINT",), daemon=True).start()

    def _api_kill(self, signal_name: str) -> None:
        import docker.errors

        with contextlib.suppress(docker.errors.APIError):
            self._container.kill(signal=signal_name)

    def leaving(self) -> None:
        self._leaving = True

    async def stop(self) -> None:
        self._leaving = True
        self.connection.close()  # the worker leaves (running @nr.exit methods on its way)
        if await self._wait(STOP_GRACE) is None:
            await _blocking(self._api_kill, "SIGKILL")
        await self.exit_status()

    async def kill(self) -> None:
        await _blocking(self._api_kill, "SIGKILL")
        await self.stop()

    async def exit_status(self) -> str:
        async with self._ending:
            if self._status is not None:
                return self._status
            code = await self._wait(1.0)
            if code is None:
                return "still running"
            self._status = await _blocking(self._describe, code)
            if code != 0 and not self._leaving:  # its own last words, as the process backend's
                last = await _blocking(_logs_and_remove, self._container, 20)
                if last:
                    print(last, file=sys.stderr, flush=True)
            await _blocking(self._remove)
        return self._status

    async def _wait(self, seconds: float) -> int | None:
        """The container's exit code once it has exited within ``seconds``; else None."""
        import requests.exceptions

        try:
            answer = await _blocking(self._container.wait, timeout=seconds)
        except (requests.exceptions.ConnectionError, requests.exceptions.ReadTimeout):
            return None
        except Exception:  # gone already: removed by hand, or the daemon restarted
            return -1
        return int(answer.get("StatusCode", -1))

    def _describe(self, code: int) -> str:
        """The exit in words, an OOM kill named with the limit it went over."""
        import docker.errors

        oom = False
        with contextlib.suppress(docker.errors.APIError):
            self._container.reload()
            oom = bool(self._container.attrs.get("State", {}).get("OOMKilled"))
        if code > 128 and code - 128 in signal.valid_signals():
            status = f"killed by signal {signal.Signals(code - 128).name}"
        else:
            status = f"exit code {code}"
        if oom and self._memory is not None:
            mib = self._memory // 2**20
            # The words of the process backend's `worker_calls.out_of_memory`.
            status += (
                f": the worker ran out of its {mib} MiB memory limit (memory={mib}); raise "
                "memory= (--memory for a cell) or use less memory at a time"
            )
        return status

    def _remove(self) -> None:
        import docker.errors

        with contextlib.suppress(docker.errors.APIError):
            self._container.remove(force=True)
        shutil.rmtree(self._folder, ignore_errors=True)

    def stats(self) -> WorkerStats:
        rss: int | None = None
        with contextlib.suppress(psutil.Error, ValueError):
            rss = psutil.Process(self._host_pid).memory_info().rss if self._host_pid else None
        return WorkerStats(self._host_pid, rss, frozenset({self._host_pid}))


class DockerBackend(Backend):
    """Workers as Docker containers (see the module's docstring).

    Args:
        data_dir: the runner's data dir: its hash names this runner's containers, and the
            sockets' folders live under it (never mounted whole in a container).
        images: the image registry, for specs that name an image.
        docker_host: the daemon (``unix:///...``, ``tcp://...``); None: ``DOCKER_HOST`` or
            docker's default.
        network: ``none`` (no network in containers) or ``host``.
    """

    name = "docker"
    # A container does not see the runner's shared-memory folder (nor gets NBREMOTE_SHM_DIR):
    # a kernel told of it would send big inputs as files the worker refuses.
    shares_shm = False

    def __init__(
        self,
        data_dir: str,
        images: Any = None,
        docker_host: str | None = None,
        network: str = "none",
    ) -> None:
        import docker

        try:
            if docker_host:
                self.client = docker.DockerClient(base_url=docker_host)
            else:
                self.client = docker.from_env()
            self.client.ping()
        except docker.errors.DockerException as exc:
            where = docker_host or os.environ.get("DOCKER_HOST") or "docker's default socket"
            raise ValueError(
                f"the docker backend cannot reach a Docker daemon at {where}: {exc}. Start "
                "dockerd (scripts/dockerd.sh does, for tests), or name it with --docker-host"
            ) from None
        if network not in ("none", "host"):
            raise ValueError(f"--docker-network {network!r}: expected 'none' or 'host'")
        self._network = network
        data = Path(data_dir).resolve()
        self.runner_id = hashlib.sha256(str(data).encode()).hexdigest()[:16]
        # Short paths (a Unix socket's is at most 107 bytes), one folder per worker mounted.
        self._sockets = Path(tempfile.mkdtemp(prefix="nbremote-docker-"))
        self.images = DockerImages(self.client, images)
        if images is not None:  # a prune or `images rm` removes their docker images too
            images.on_delete = self.images.delete
        self._remove_orphans()

    @property
    def python_version(self) -> str:
        return platform.python_version()  # the image's, checked against it when built

    def _remove_orphans(self) -> None:
        """Containers a crashed runner of this data dir left behind: gone now."""
        import docker.errors

        for container in self.client.containers.list(
            all=True, filters={"label": f"{LABEL}={self.runner_id}"}
        ):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)

    async def prepare_image(self, ref: str) -> str:
        return (await self.images.ensure(ref)).id

    async def start_worker(self, request: WorkerRequest) -> WorkerHandle:
        import docker.errors

        image = await self.images.ensure(request.image)
        worker_id = uuid.uuid4().hex[:12]
        folder = self._sockets / worker_id
        folder.mkdir(parents=True, mode=0o700)
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(folder / SOCKET_NAME))
        listener.listen(1)
        listener.setblocking(False)
        container = started = None
        try:
            options = self._options(request, worker_id, folder)
            options["volumes"][image.worker_volume] = {"bind": SITE, "mode": "ro"}
            container = await _blocking(self._create, image.tag, options)
            await _blocking(container.start)  # apart: a container that fails to start is removed
            started = _blocking(container.reload)  # its host pid, while the worker starts
            loop = asyncio.get_running_loop()
            sock, _ = await asyncio.wait_for(self._accept(loop, listener, container), HELLO_TIMEOUT)
            connection = await connect(sock)
            hello, _ = await asyncio.wait_for(connection.receive(), HELLO_TIMEOUT)
            await started
        except BaseException as exc:
            if started is not None:
                started.cancel()
            log = await _blocking(_logs_and_remove, container) if container is not None else ""
            shutil.rmtree(folder, ignore_errors=True)
            expected = ConnectionClosed | TimeoutError | WorkerStartError | docker.errors.APIError
            if not isinstance(exc, expected):
                raise
            reason = getattr(exc, "explanation", None) or exc or type(exc).__name__
            if request.devices and isinstance(exc, docker.errors.APIError):
                reason = f"{reason} (GPUs in containers need NVIDIA's container toolkit)"
            raise WorkerStartError(
                f"the worker's container did not start: {reason}"
                + (f"; its log:\n{log}" if log else "")
            ) from exc
        finally:
            listener.close()
        return DockerWorker(
            worker_id, request.spec, connection, hello, container, folder, self._memory(request)
        )

    async def _accept(
        self, loop: asyncio.AbstractEventLoop, listener: socket.socket, container: Any
    ) -> tuple[socket.socket, Any]:
        """The worker's connection, or a WorkerStartError as soon as its container has exited."""
        accepting = asyncio.ensure_future(loop.sock_accept(listener))
        try:
            while True:
                done, _ = await asyncio.wait({accepting}, timeout=0.5)
                if done:
                    return accepting.result()
                await _blocking(container.reload)
                if container.status in ("exited", "dead"):
                    raise WorkerStartError(f"its container {container.status}")
        finally:
            accepting.cancel()

    @staticmethod
    def _memory(request: WorkerRequest) -> int | None:
        memory = getattr(request.spec, "memory", None)  # MiB, where the spec has the field
        if request.limits.memory_bytes is None and memory is not None:
            return int(memory) * 2**20
        return request.limits.memory_bytes

    def _options(self, request: WorkerRequest, worker_id: str, folder: Path) -> dict[str, Any]:
        """The container's settings (see the module's docstring)."""
        import docker.types

        spec = request.spec
        env = {**spec.env, **request.env, "NBREMOTE_TASK_ID": worker_id}
        volumes = {str(folder): {"bind": SOCKET_DIR, "mode": "rw"}}
        for path, host in request.mounts.items():
            volumes[str(host)] = {"bind": path, "mode": "rw"}
        options: dict[str, Any] = {
            "environment": env,
            "volumes": volumes,
            "labels": {LABEL: self.runner_id, "nbremote.worker": worker_id},
            "network_mode": "none" if getattr(spec, "block_network", False) else self._network,
            "init": False,  # the worker is pid 1: its SIGINT handler is what interrupts it
        }
        memory = self._memory(request)
        if memory is not None:
            options |= {"mem_limit": memory, "memswap_limit": memory}
        cpus = request.limits.cpus or getattr(spec, "cpu", None)
        if cpus:
            options["nano_cpus"] = int(float(cpus) * 1e9)
        if request.devices:
            options["device_requests"] = [
                docker.types.DeviceRequest(device_ids=list(request.devices), capabilities=[["gpu"]])
            ]
            if all(device.isdigit() for device in request.devices):  # renumbered inside
                env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, range(len(request.devices))))
        return options

    def _create(self, tag: str, options: dict[str, Any]) -> Any:
        command = ["python3", "-P", "-m", "nbremote_runner.worker"]
        command += ["--connect", f"{SOCKET_DIR}/{SOCKET_NAME}"]
        return self.client.containers.create(tag, entrypoint=command, **options)

    async def close(self) -> None:
        await _blocking(self.client.close)
        shutil.rmtree(self._sockets, ignore_errors=True)


def _is_worker(pid: int, worker_id: str) -> bool:
    """Whether ``pid`` here is the worker ``worker_id`` (its environment names it)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            return f"NBREMOTE_TASK_ID={worker_id}".encode() in environ.read().split(b"\0")
    except OSError:
        return False


def _logs_and_remove(container: Any, lines: int = 15) -> str:
    """The tail of a failed container's log (its worker's stderr); the container removed."""
    import docker.errors

    log = ""
    with contextlib.suppress(docker.errors.APIError):
        log = bytes(container.logs(tail=lines)).decode(errors="replace").strip()
    with contextlib.suppress(docker.errors.APIError):
        container.remove(force=True)
    return log
