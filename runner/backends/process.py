"""The process backend: each worker is a local child process of the runner.

The worker runs in the runner's own environment (whatever the notebook can import, the worker
can import), in a scratch directory of its own, in a new session so that a Ctrl-C in the
runner's terminal does not reach it, talking to the runner over a socket pair.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from nbremote.schema import WorkerSpec

from ..frames import ConnectionClosed, FrameConnection, connect
from .base import Backend, WorkerProcess, WorkerSetup, WorkerStartError
from .sandbox import SandboxError, bwrap_command

if TYPE_CHECKING:
    from ..images import Images

HELLO_TIMEOUT = 60.0
STOP_GRACE = 5.0


class LocalWorker(WorkerProcess):
    """A worker that is a child process of the runner."""

    def __init__(
        self,
        worker_id: str,
        spec: WorkerSpec,
        connection: FrameConnection,
        proc: subprocess.Popen[bytes],
        scratch: Path,
        hello: dict[str, object],
    ) -> None:
        super().__init__(worker_id, spec, connection, hello)
        self._proc = proc
        self._scratch = scratch

    def interrupt(self) -> None:
        if self._proc.poll() is None:  # the worker itself: under bwrap, _proc is bwrap
            os.kill(self.pid, signal.SIGINT)

    async def stop(self) -> None:
        # Closing the socket asks the worker to leave (running @nr.exit methods on its way);
        # one that has not left within STOP_GRACE seconds is killed.
        self.connection.close()
        for _ in range(int(STOP_GRACE / 0.01)):
            if self._proc.poll() is not None:
                break
            await asyncio.sleep(0.01)
        if self._proc.poll() is None:
            self._proc.kill()
        await self.exit_status()
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: shutil.rmtree(self._scratch, ignore_errors=True)
        )

    async def exit_status(self) -> str:
        for _ in range(100):  # the socket closes a moment before the process is reaped
            code = self._proc.poll()
            if code is not None:
                return describe_exit(code)
            await asyncio.sleep(0.01)
        return "still running"

    def rss_bytes(self) -> int | None:
        try:
            return psutil.Process(self.pid).memory_info().rss
        except psutil.Error:
            return None


def describe_exit(code: int) -> str:
    """A return code in words: ``exit code 3`` or ``killed by signal SIGKILL``."""
    if code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exit code {code}"


class ProcessBackend(Backend):
    """Workers as local processes in the runner's Python environment."""

    name = "process"

    def __init__(self, data_dir: str, shm_dir: str | None, images: Images | None = None) -> None:
        self._scratch_root = Path(data_dir) / "scratch"
        self._shm_dir = shm_dir  # workers share the runner's machine, so its shm folder
        self.images = images  # a spec with an image runs in that image's venv

    @property
    def python_version(self) -> str:
        return platform.python_version()

    async def start_worker(
        self, spec: WorkerSpec, setup: WorkerSetup | None = None
    ) -> WorkerProcess:
        setup = setup or WorkerSetup()
        python, env = sys.executable, {**os.environ, **spec.env}
        files: Path | None = None
        if spec.image is not None:
            if self.images is None:
                raise WorkerStartError("this runner has no image cache")
            ready = await self.images.ensure(spec.image)  # builds it if need be
            python, files = str(ready.python), ready.files
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            env |= ready.env | spec.env
        env |= setup.env
        worker_id = uuid.uuid4().hex[:12]
        scratch = self._scratch_root / worker_id
        scratch.mkdir(parents=True, exist_ok=True)
        if files is not None and files.is_dir():  # the image's add_local_dir content
            for entry in files.iterdir():
                (scratch / entry.name).symlink_to(entry)
        ours, theirs = socket.socketpair()
        if self._shm_dir is not None:
            env["NBREMOTE_SHM_DIR"] = self._shm_dir
        # -P: the worker's folder is never on sys.path, so no user file can shadow a module.
        command = [
            python,
            "-P",
            "-m",
            "nbremote_runner.worker",
            "--fd",
            str(theirs.fileno()),
        ]
        if setup.mounts:  # only then: a worker without mounts starts as fast as ever
            try:
                command = bwrap_command(command, setup.mounts, scratch)
            except SandboxError as exc:
                ours.close()
                theirs.close()
                shutil.rmtree(scratch, ignore_errors=True)
                raise WorkerStartError(str(exc)) from None
        proc = subprocess.Popen(
            command,
            pass_fds=[theirs.fileno()],
            cwd=scratch,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        theirs.close()
        connection = await connect(ours)
        try:
            hello, _ = await asyncio.wait_for(connection.receive(), HELLO_TIMEOUT)
        except BaseException as exc:  # no hello, or nobody wants the worker any more (a cancel)
            connection.close()
            proc.kill()
            status = describe_exit(proc.wait())
            shutil.rmtree(scratch, ignore_errors=True)
            if not isinstance(exc, ConnectionClosed | TimeoutError):
                raise
            raise WorkerStartError(
                f"the worker did not start ({status}); see the runner's log"
            ) from exc
        return LocalWorker(worker_id, spec, connection, proc, scratch, hello)
