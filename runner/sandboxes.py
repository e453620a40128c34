"""Sandboxes (``nr.Sandbox``): containers the runner keeps, in which a client runs commands.

On the process backend a sandbox is a set of folders and the bubblewrap containers of its
commands: each command (its entrypoint, and each ``exec``) runs in a container made as a
worker's is (`backends.sandbox`: the runner's data dir, home and token hidden, its own PID
namespace, ``block_network`` for a loopback-only network), sharing the sandbox's own ``/tmp``
and working directory (host folders under the runner's scratch folder, removed with it), its
volumes' working copies, and its image's venv (read-only, first on ``PATH``). A command's stdout
and stderr are kept as they arrive (the last `KEEP` bytes of each) for the client to read by
offset; its stdin is a pipe the client writes to.

A sandbox ends when its entrypoint exits (the other commands are killed), when it is terminated,
or at its timeout; its volumes are committed then. `Sandboxes` holds them by id. Files are
opened beneath the sandbox's own folders only, one path component at a time without following
symlinks, so a link made inside the sandbox cannot lead the runner to a file of the host.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import secrets
import shutil
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nbremote.wire.http import WorkerSpec
from nbremote.wire.sandboxes import (
    CreateSandbox,
    DescribeSandbox,
    DescribeSandboxProcess,
    Output,
)

from .backends.process import ProcessBackend, worker_environment
from .backends.sandbox import Sandbox, SandboxError, bwrap_command, unavailable
from .children import die_with_runner
from .errors import ApiError
from .image_types import ImageBuildError
from .sandbox_files import read, write

if TYPE_CHECKING:
    from .backends import Backend
    from .secrets import Secrets
    from .volumes import Checkout, Volumes

KEEP = 16 << 20  # bytes of each output stream kept for reading
MAX_SANDBOXES = 64  # running at once
MAX_PROCESSES = 256  # commands one sandbox may have started
KEEP_ENDED = 64  # ended sandboxes kept (their output still readable) before the oldest goes
DEFAULT_WORKDIR = "/sandbox"
State = Literal["running", "exited", "terminated", "timed out"]


class OutputBuffer:
    """What a process wrote to one stream: read by offset, waited for while it is open."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.start = 0  # the offset of data[0] (earlier bytes were dropped beyond KEEP)
        self.eof = False
        self._changed = asyncio.Event()

    def append(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > KEEP:
            drop = len(self.data) - KEEP
            del self.data[:drop]
            self.start += drop
        self._signal()

    def close(self) -> None:
        self.eof = True
        self._signal()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def read(self, offset: int, wait: float) -> Output:
        """What is there from ``offset`` on, waiting up to ``wait`` s for something new."""
        changed = self._changed
        if offset >= self.start + len(self.data) and not self.eof and wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), wait)
        offset = max(offset, self.start)
        chunk = bytes(self.data[offset - self.start :])
        end = offset + len(chunk)
        return Output(
            data=base64.b64encode(chunk).decode(),
            offset=offset,
            eof=self.eof and end >= self.start + len(self.data),
        )


class SandboxProcess:
    """One command in a sandbox: its output kept, its stdin open until written to the end."""

    def __init__(self, process_id: str, proc: asyncio.subprocess.Process) -> None:
        self.id = process_id
        self.proc = proc
        self.output = {"stdout": OutputBuffer(), "stderr": OutputBuffer()}
        self._pumps = [
            asyncio.create_task(self._pump(proc.stdout, self.output["stdout"])),
            asyncio.create_task(self._pump(proc.stderr, self.output["stderr"])),
        ]
        self.ended = asyncio.create_task(self._end())

    @staticmethod
    async def _pump(stream: asyncio.StreamReader | None, buffer: OutputBuffer) -> None:
        try:
            while stream is not None and (chunk := await stream.read(65536)):
                buffer.append(chunk)
        finally:
            buffer.close()

    async def _end(self) -> None:
        await self.proc.wait()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def wait(self, seconds: float) -> None:
        """Wait up to ``seconds`` for it to end."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.ended), seconds)

    def describe(self) -> DescribeSandboxProcess:
        done = self.ended.done()
        return DescribeSandboxProcess(id=self.id, returncode=self.returncode if done else None)

    @property
    def returncode(self) -> int | None:
        """As a shell says it: 128 + N for a process killed by signal N."""
        code = self.proc.returncode
        return 128 - code if code is not None and code < 0 else code

    async def write(self, data: bytes, eof: bool) -> None:
        stdin = self.proc.stdin
        if stdin is None or stdin.is_closing():
            raise ApiError(409, "StdinClosed", f"process {self.id}'s stdin is closed")
        try:
            if data:
                stdin.write(data)
                await stdin.drain()
            if eof:
                stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            raise ApiError(409, "StdinClosed", f"process {self.id} has exited") from None

    def kill(self) -> None:
        if self.proc.returncode is None:  # bwrap leads its own process group: all of it goes
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)


class SandboxBox:
    """One sandbox (see the module's docstring)."""

    def __init__(self, sandbox_id: str, request: CreateSandbox, root: Path) -> None:
        self.id = sandbox_id
        self.request = request
        self.root = root
        self.workdir = request.workdir or DEFAULT_WORKDIR
        self.created_at = time.time()
        self.state: State = "running"
        self.processes: dict[str, SandboxProcess] = {}
        self.main: SandboxProcess | None = None
        self.ended = asyncio.Event()  # told to end (or its entrypoint exited)
        self.finished = asyncio.Event()  # its processes gone, its volumes committed
        self.view = Sandbox()
        self.env: dict[str, str] = {}
        self.checkouts: list[Checkout] = []
        self._numbers = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None

    @property
    def folders(self) -> dict[str, Path]:
        """Path inside -> host folder, for every folder the sandbox may write."""
        inside = {"/tmp": self.root / "tmp", self.workdir: self.root / "work"}
        return inside | {
            path: c.root
            for path, c in zip(sorted(self.request.volumes), self.checkouts, strict=False)
        }

    def describe(self) -> DescribeSandbox:
        return DescribeSandbox(
            id=self.id,
            app=self.request.app,
            command=self.request.command,
            workdir=self.workdir,
            created_at=self.created_at,
            timeout=self.request.timeout,
            state=self.state,
            returncode=self.returncode,
        )

    @property
    def returncode(self) -> int | None:
        """The entrypoint's once it ended; 137 for one terminated, 124 at its timeout; None
        while running (without an entrypoint: 0 once terminated)."""
        if self.state == "running":
            return None
        if self.main is not None and self.main.ended.done() and self.state == "exited":
            return self.main.returncode
        return {"terminated": 137 if self.main else 0, "timed out": 124}.get(self.state, 0)

    async def run(
        self, command: list[str], workdir: str | None, env: dict[str, str]
    ) -> SandboxProcess:
        """Start ``command`` in a container of the sandbox."""
        if self.state != "running":
            raise ApiError(409, "SandboxEnded", f"sandbox {self.id} has {self.state}")
        if len(self.processes) >= MAX_PROCESSES:
            raise ApiError(
                429,
                "TooManyProcesses",
                f"sandbox {self.id} has run {MAX_PROCESSES} commands; create another sandbox",
            )
        try:
            argv = bwrap_command(command, self.view, Path(workdir or self.workdir))
        except SandboxError as exc:
            raise ApiError(422, "ValidationError", str(exc)) from None
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env | env,
            cwd=self.root / "work",
            start_new_session=True,
            preexec_fn=die_with_runner(),
        )
        process = SandboxProcess(f"p{next(self._numbers)}", proc)
        self.processes[process.id] = process
        return process

    async def wait(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the sandbox to have ended: its processes gone, its volumes
        committed (so what a client reads next sees all it did)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.finished.wait(), seconds)

    def process(self, process_id: str) -> SandboxProcess:
        found = self.processes.get(process_id)
        if found is None:
            raise ApiError(404, "NotFound", f"sandbox {self.id} has no process {process_id!r}")
        return found

    def end(self, state: State) -> None:
        """End the sandbox (once): every process killed."""
        if self.state != "running":
            return
        self.state = state
        if self._timer is not None:
            self._timer.cancel()
        for process in self.processes.values():
            process.kill()
        self.ended.set()


class Sandboxes:
    """Every sandbox of a runner, by id.

    Args:
        backend: where they run (the process backend only, for now).
        root: the runner's scratch folder, where each sandbox's folders go.
        volumes: whose working copies sandboxes mount.
        secrets: whose values go in their environment.
    """

    def __init__(self, backend: Backend, root: Path, volumes: Volumes, secrets: Secrets) -> None:
        self._backend = backend
        self._root = root
        self._volumes = volumes
        self._secrets = secrets
        self.sandboxes: dict[str, SandboxBox] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, sandbox_id: str) -> SandboxBox:
        """The sandbox, or a 404."""
        found = self.sandboxes.get(sandbox_id)
        if found is None:
            raise ApiError(404, "NotFound", f"no sandbox {sandbox_id!r} on this runner")
        return found

    async def create(self, request: CreateSandbox) -> SandboxBox:
        """Create a sandbox and start its entrypoint, if it has one.

        Raises:
            ApiError: what it asks for cannot be given (saying why).
        """
        backend = self._backend
        # 409: this runner cannot, whatever the request (a 5xx would blame the runner).
        if not isinstance(backend, ProcessBackend):
            raise ApiError(409, "Unavailable", f"the {backend.name} backend has no sandboxes yet")
        reason = unavailable()
        if reason is not None:
            raise ApiError(409, "Unavailable", f"sandboxes need bubblewrap: {reason}")
        if request.gpu is not None:
            raise ApiError(
                422,
                "ValidationError",
                "gpu: sandboxes with GPUs are not supported yet; use a function with gpu=",
            )
        if len([b for b in self.sandboxes.values() if b.state == "running"]) >= MAX_SANDBOXES:
            raise ApiError(
                429,
                "TooManySandboxes",
                f"{MAX_SANDBOXES} sandboxes are running; terminate one first",
            )
        sandbox_id = f"sb-{secrets.token_hex(8)}"
        box = SandboxBox(sandbox_id, request, self._root / sandbox_id)
        for folder in ("tmp", "work"):
            (box.root / folder).mkdir(parents=True)
        try:
            await self._prepare(box, backend)
            if request.command:
                box.main = await box.run(request.command, None, {})
        except BaseException:
            await self._release(box)
            raise
        self.sandboxes[box.id] = box
        box._timer = asyncio.get_running_loop().call_later(request.timeout, box.end, "timed out")
        self._soon(self._watch(box))
        return box

    async def _prepare(self, box: SandboxBox, backend: ProcessBackend) -> None:
        request = box.request
        spec = WorkerSpec(secrets=request.secrets, volumes=request.volumes)
        try:
            secret_env = self._secrets.environment(spec)
            for name in request.volumes.values():
                self._volumes.get(name)
        except Exception as exc:  # a missing secret or volume: named
            raise ApiError(404, "NotFound", str(exc)) from None
        env = worker_environment(dict(os.environ))
        readonly: list[Path] = []
        if request.image is not None:
            try:
                ready = await backend.image_environment(request.image)
            except LookupError as exc:
                raise ApiError(404, "NotFound", str(exc)) from None
            except ImageBuildError as exc:
                raise ApiError(422, "ImageBuildError", str(exc)) from None
            venv = ready.python.parent.parent
            readonly.append(venv)
            env = {k: v for k, v in env.items() if k != "PYTHONPATH"} | ready.env
            env |= {
                "VIRTUAL_ENV": str(venv),
                "PATH": f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
            }
        for _, name in sorted(request.volumes.items()):
            box.checkouts.append(await self._volumes.checkout(name))
        mounts = {
            path: c.root for path, c in zip(sorted(request.volumes), box.checkouts, strict=True)
        }
        box.env = env | secret_env | request.env
        box.view = Sandbox(
            hidden=backend.hidden().hidden,
            hidden_files=backend.hidden().hidden_files,
            readonly=readonly,
            mounts={box.workdir: box.root / "work", **mounts},
            network=not request.block_network,
            tmp=box.root / "tmp",
        )
        try:  # refused mount paths are said now, not at the first command
            bwrap_command(["true"], box.view, Path(box.workdir))
        except SandboxError as exc:
            raise ApiError(422, "ValidationError", str(exc)) from None

    async def _watch(self, box: SandboxBox) -> None:
        """End the sandbox when its entrypoint exits; then free what it held."""
        ended = asyncio.ensure_future(box.ended.wait())
        waits: list[asyncio.Future[Any]] = [ended]
        if box.main is not None:
            waits.append(asyncio.shield(box.main.ended))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        ended.cancel()
        box.end("exited")
        await asyncio.gather(*(p.ended for p in box.processes.values()), return_exceptions=True)
        try:
            await self._release(box)
        finally:
            box.finished.set()
        gone = [b for b in self.sandboxes.values() if b.finished.is_set()]
        for old in gone[: max(0, len(gone) - KEEP_ENDED)]:  # oldest first (insertion order)
            del self.sandboxes[old.id]

    async def _release(self, box: SandboxBox) -> None:
        checkouts, box.checkouts = box.checkouts, []
        for checkout in checkouts:
            await self._volumes.release(checkout.id, commit=True)
        await asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, box.root, True)

    def _soon(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def read_file(self, box: SandboxBox, path: str) -> bytes:
        """A file of the sandbox, whole (see `sandbox_files`)."""
        return await asyncio.get_running_loop().run_in_executor(None, read, box.folders, path)

    async def write_file(self, box: SandboxBox, path: str, data: bytes, append: bool) -> None:
        """Write a file of the sandbox (see `sandbox_files`)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, write, box.folders, path, data, append)

    async def close(self) -> None:
        """End every sandbox (the runner stops)."""
        for box in self.sandboxes.values():
            box.end("terminated")
        await asyncio.gather(*self._tasks, return_exceptions=True)
