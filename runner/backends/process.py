"""The process backend: each worker is a local child process of the runner.

The worker runs in the runner's own environment (whatever the notebook can import, the worker
can import), or in its image's, in a scratch directory of its own, in a new session so that a
Ctrl-C in the runner's terminal does not reach it, talking to the runner over a socket pair. Where
bubblewrap works, each worker is in a sandbox of its own (see `sandbox`); elsewhere it is a plain
process of the runner's user, and the runner says so once in its log. Either way its environment
carries nothing of the runner's own configuration (``NBREMOTE_*``: the token, the URL) and it
dies with the runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

import psutil

from nbremote.wire.http import WorkerSpec

from ..children import die_with_runner
from ..data_dir import scratch_root
from ..frames import ConnectionClosed, FrameConnection, connect
from ..worker_calls import out_of_memory
from . import early as early_worker
from .base import (
    Backend,
    Limits,
    WorkerHandle,
    WorkerRequest,
    WorkerStartError,
    WorkerStats,
)
from .early import hidden_sandbox, spawn, worker_sandbox
from .early import worker_environment as worker_environment  # `sandboxes` takes it from here
from .interpreters import worker_python
from .limits import Enforced, LimitEnforcer, chain
from .sandbox import Sandbox, SandboxError, host_pid, unavailable
from .venvs import VenvBuilder

if TYPE_CHECKING:
    from ..image_types import Ready
    from ..images import Images

HELLO_TIMEOUT = 60.0
STOP_GRACE = 5.0


class LocalWorker(WorkerHandle):
    """A worker that is a child process of the runner (maybe through bwrap). A same-host client
    shares its network namespace, so it may be leased (`direct`), unless the worker has a
    network of its own (``block_network``) or must see one input only (``single_use``)."""

    direct = True

    def __init__(
        self,
        worker_id: str,
        spec: WorkerSpec,
        connection: FrameConnection,
        proc: subprocess.Popen[bytes],
        scratch: Path,
        hello: dict[str, object],
        host_pid: int,
        sandboxed: bool,
        enforced: Enforced,
    ) -> None:
        super().__init__(worker_id, spec, connection, hello)
        self._proc = proc
        self._scratch = scratch
        self._host_pid = host_pid  # in a sandbox, the pid the worker reported is another
        self._sandboxed = sandboxed
        self._enforced = enforced
        self.direct = not (spec.block_network or spec.single_use)

    def interrupt(self) -> None:
        if self._proc.poll() is None:  # the worker itself: under bwrap, _proc is bwrap
            os.kill(self._host_pid, signal.SIGINT)

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
        self._enforced.remove()
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: shutil.rmtree(self._scratch, ignore_errors=True)
        )

    async def kill(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # the worker itself, then bwrap
                os.kill(self._host_pid, signal.SIGKILL)
            self._proc.kill()
        await self.stop()

    async def exit_status(self) -> str:
        for _ in range(100):  # the socket closes a moment before the process is reaped
            code = self._proc.poll()
            if code is not None:
                status = describe_exit(code, self._sandboxed)
                if self.spec.memory is not None and self._enforced.oom_killed():
                    status = f"{status}: {out_of_memory(self.spec.memory)}"
                return status
            await asyncio.sleep(0.01)
        return "still running"

    def stats(self) -> WorkerStats:
        try:
            rss: int | None = psutil.Process(self._host_pid).memory_info().rss
        except psutil.Error:
            rss = None
        return WorkerStats(self._host_pid, rss, frozenset({self._host_pid}))


def describe_exit(code: int, sandboxed: bool = False) -> str:
    """A return code in words: ``exit code 3`` or ``killed by signal SIGKILL``. bwrap exits with
    128 + N when its command was killed by signal N, as a shell does."""
    if sandboxed and code > 128 and code - 128 in signal.valid_signals():
        code = 128 - code
    if code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exit code {code}"


class ProcessBackend(Backend):
    """Workers as local processes in the runner's Python environment.

    Args:
        data_dir: the runner's data dir (hidden from sandboxed workers).
        shm_dir: the runner's shared-memory folder for frames.
        images: the image registry, for specs that name an image (built here as venvs).
        sandbox: sandbox workers with bwrap; None: wherever bwrap works.
        private: more files and folders to hide from sandboxed workers (a token file).
        kernel_interpreters: honour a spec's ``python`` (an embedded runner's kernels only).
    """

    name = "process"

    def __init__(
        self,
        data_dir: str,
        shm_dir: str | None,
        images: Images | None = None,
        sandbox: bool | None = None,
        private: Sequence[Path] = (),
        kernel_interpreters: bool = False,
    ) -> None:
        self._data_dir = Path(data_dir)
        # An embedded runner's workers run the interpreter their kernel names (see interpreters).
        self.kernel_interpreters = kernel_interpreters
        self._scratch_root = scratch_root(self._data_dir)
        self._shm_dir = shm_dir  # workers share the runner's machine, so its shm folder
        self._private = list(private)
        self.sandboxed = _sandboxing(sandbox)
        self._limits = LimitEnforcer()
        # A spec with an image runs in that image's venv; its build steps run user code as well.
        self.venvs: VenvBuilder | None = None
        if images is not None:
            hidden = dataclasses.replace(self._hidden(), writable=[images.root])
            self.venvs = VenvBuilder(images, hidden if self.sandboxed else None)

    @property
    def python_version(self) -> str:
        return platform.python_version()

    def hidden(self) -> Sandbox:
        """What no user code may see, for other containers of this backend (`sandboxes`)."""
        return self._hidden()

    async def image_environment(self, ref: str) -> Ready:
        """The image ``ref``'s venv, built if need be.

        Raises:
            WorkerStartError: the runner has no image cache. LookupError, ImageBuildError.
        """
        return await self._venv(ref)

    def _hidden(self) -> Sandbox:
        return hidden_sandbox(self._data_dir, self._private)

    def _sandbox(self, scratch: Path, image: Path | None, request: WorkerRequest) -> Sandbox:
        network = not request.spec.block_network
        return worker_sandbox(
            self._hidden(), scratch, image, request.mounts, self._shm_dir, network
        )

    async def _venv(self, ref: str) -> Ready:
        if self.venvs is None:
            raise WorkerStartError("this runner has no image cache")
        return await self.venvs.ensure(ref)  # builds it if need be

    async def prepare_image(self, ref: str) -> str:
        return (await self._venv(ref)).id

    async def close(self) -> None:
        if self.venvs is not None:
            await self.venvs.close()
        self._limits.close()

    async def start_worker(self, request: WorkerRequest) -> WorkerHandle:
        spec = request.spec
        base = worker_environment(dict(os.environ))
        python = await worker_python(spec.python, self.kernel_interpreters)
        env = {**base, **spec.env}
        files: Path | None = None
        image: Path | None = None  # the image's venv, which a sandbox must show
        if request.image is not None:
            ready = await self._venv(request.image)
            python, files = str(ready.python), ready.files
            image = ready.python.parent.parent
            env = {k: v for k, v in base.items() if k != "PYTHONPATH"}
            env |= ready.env | spec.env
        env |= request.env
        if self._shm_dir is not None:
            env["NBREMOTE_SHM_DIR"] = self._shm_dir
        sandboxed = self.sandboxed or bool(request.mounts) or spec.block_network
        early = early_worker.take()  # the embedded runner's first worker, started early
        if early is not None:
            sandbox = self._sandbox(early.scratch, image, request) if sandboxed else None
            if early.fits(python, env, sandbox) and files is None and request.limits == Limits():
                started = early.proc, early.socket, early.scratch
                return await self._greet(early.worker_id, spec, *started, Enforced(), sandboxed)
            early.discard()
        worker_id = uuid.uuid4().hex[:12]
        env["NBREMOTE_TASK_ID"] = worker_id  # which worker this is (its pid may be 2 in each)
        scratch = self._scratch_root / worker_id
        scratch.mkdir(parents=True, exist_ok=True)
        if files is not None and files.is_dir():  # the image's add_local_dir content
            for entry in files.iterdir():
                (scratch / entry.name).symlink_to(entry)
        try:
            if spec.block_network and unavailable() is not None:
                raise SandboxError(f"block_network=True needs a sandbox: {unavailable()}")
            enforced = self._limits.enforce(worker_id, request.limits)
            sandbox = self._sandbox(scratch, image, request) if sandboxed else None
            preexec = chain(die_with_runner(), enforced.preexec)
            proc, ours = spawn(python, env, scratch, sandbox, preexec)
        except (SandboxError, OSError) as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            raise WorkerStartError(str(exc)) from None
        return await self._greet(worker_id, spec, proc, ours, scratch, enforced, sandboxed)

    async def _greet(
        self,
        worker_id: str,
        spec: WorkerSpec,
        proc: subprocess.Popen[bytes],
        ours: socket.socket,
        scratch: Path,
        enforced: Enforced,
        sandboxed: bool,
    ) -> WorkerHandle:
        """The started worker ``proc`` once it has said hello on ``ours``."""
        assert proc.stderr is not None
        forward_to_log(proc.stderr)
        connection = await connect(ours)
        try:
            hello, _ = await asyncio.wait_for(connection.receive(), HELLO_TIMEOUT)
            pid = _host_pid(proc, int(hello["pid"]), sandboxed)
        except BaseException as exc:  # no hello, or nobody wants the worker any more (a cancel)
            connection.close()
            proc.kill()
            status = describe_exit(proc.wait(), sandboxed)
            enforced.remove()
            shutil.rmtree(scratch, ignore_errors=True)
            if not isinstance(exc, ConnectionClosed | TimeoutError | LookupError):
                raise
            raise WorkerStartError(
                f"the worker did not start ({status}); see the runner's log"
            ) from exc
        return LocalWorker(
            worker_id, spec, connection, proc, scratch, hello, pid, sandboxed, enforced
        )


def forward_to_log(stream: IO[bytes]) -> None:
    """Copy what a worker writes to its stderr (its own failures) to the runner's log. Through a
    pipe: a worker holding the log's descriptor could reopen it, for reading, by /proc/self/fd."""
    loop = asyncio.get_running_loop()
    fd = stream.fileno()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            sys.stderr.buffer.write(data)
            sys.stderr.flush()
        else:
            loop.remove_reader(fd)
            stream.close()

    loop.add_reader(fd, readable)


def _host_pid(proc: subprocess.Popen[bytes], inner: int, sandboxed: bool) -> int:
    """The worker's pid on the host: its own, or found under its bwrap process."""
    if not sandboxed:
        return inner
    found = host_pid(proc.pid, inner)
    if found is None:
        raise LookupError(f"no process {inner} in the sandbox of bwrap {proc.pid}")
    return found


def _sandboxing(wanted: bool | None) -> bool:
    """Whether workers go in sandboxes: as asked, else wherever bwrap works (said once)."""
    if wanted is False:
        return False
    reason = unavailable()
    if reason is None:
        return True
    if wanted:
        raise WorkerStartError(f"workers cannot be sandboxed: {reason}")
    print(
        f"nbremote runner: workers are NOT sandboxed (they can read the runner's files): {reason}",
        file=sys.stderr,
        flush=True,
    )
    return False
