"""The embedded runner's first worker, started before the runner imports the rest of itself.

A fresh embedded runner spends most of its start importing (tornado, pydantic, its own modules),
and a kernel's first cell then waited for the spare worker to boot (Python, IPython) on top of
that. `launch_spare` starts that worker first, so that it boots on another core while the runner
imports: ``nbremote runner --embedded`` calls it before its heavy imports. The process backend
then adopts it as its first worker when it is exactly the worker it would start (interpreter,
environment, sandbox), and stops it otherwise (`take`).

Light on purpose: the standard library and the backend's light parts only (`sandbox`, the data
dir's helpers), never pydantic or the wire's models. `spawn` is the one way a process-backend
worker's process is made, early or not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from nbremote.wire.home import nbremote_home
from nbremote.wire.shm import create_dir

from ..children import die_with_runner
from ..data_dir import prepare, scratch_root
from .sandbox import Sandbox, bwrap_command, start_probe


def worker_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The runner's environment as a worker inherits it: without the runner's own settings
    (``NBREMOTE_TOKEN``, ``NBREMOTE_URL``, ...), which are no business of user code."""
    return {key: value for key, value in base.items() if not key.startswith("NBREMOTE_")}


def hidden_sandbox(data_dir: Path, private: Sequence[Path]) -> Sandbox:
    """A sandbox that hides what no user code may see: the data dir, the home with its
    runner.json, the runner's private files (a token file)."""
    hidden = {data_dir.resolve(), nbremote_home().resolve()}
    return Sandbox(hidden=sorted(hidden), hidden_files=[p for p in private if not p.is_dir()])


def worker_sandbox(
    hidden: Sandbox,
    scratch: Path,
    image: Path | None,
    mounts: Mapping[str, Path],
    shm_dir: str | None,
    network: bool,
) -> Sandbox:
    """The sandbox of one worker: ``hidden``, with its scratch folder writable, its image's
    environment readable, its volumes mounted and the runner's shared-memory folder bound."""
    return dataclasses.replace(
        hidden,
        writable=[scratch],
        readonly=[image] if image is not None else [],
        mounts=mounts,
        shm_dir=shm_dir,
        network=network,
    )


def spawn(
    python: str,
    env: dict[str, str],
    scratch: Path,
    sandbox: Sandbox | None,
    preexec: Callable[[], None],
) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Start a worker process (in ``sandbox``, unless None) and the runner's end of its socket.

    Raises:
        SandboxError: the sandbox cannot be made (nothing was started).
        OSError: the process could not be started.
    """
    ours, theirs = socket.socketpair()
    try:
        # -P: the worker's folder is never on sys.path, so no user file can shadow a module.
        command = [python, "-P", "-m", "nbremote_runner.worker", "--fd", str(theirs.fileno())]
        if sandbox is not None:
            command = bwrap_command(command, sandbox, scratch)
        # From the event loop's thread, which lives as long as the runner (see `children`).
        proc = subprocess.Popen(
            command,
            pass_fds=[theirs.fileno()],
            cwd=scratch,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=preexec,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, ours


@dataclasses.dataclass
class Launched:
    """A worker started before its backend existed, and what it was started with."""

    worker_id: str
    python: str
    env: dict[str, str]  # without its NBREMOTE_TASK_ID
    sandbox: Sandbox | None
    scratch: Path
    proc: subprocess.Popen[bytes]
    socket: socket.socket

    def fits(self, python: str, env: dict[str, str], sandbox: Sandbox | None) -> bool:
        """Whether it is the worker the backend would start with these."""
        return (python, env, sandbox) == (self.python, self.env, self.sandbox)

    def discard(self) -> None:
        """Stop it: the backend's first worker is another."""
        self.socket.close()
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


_launched: Launched | None = None


def launch_spare(data_dir: Path) -> None:
    """Start the embedded runner's spare worker now, as its process backend will want it: the
    runner's interpreter, environment and sandbox, where bwrap is installed (whether it works
    here is probed beside it, see `sandbox.start_probe`). Best effort: on any failure the
    backend starts its first worker itself."""
    global _launched
    prepare(data_dir)  # the data dir's modes and umask, and dead runners' folders gone first
    shm_dir = create_dir(str(os.getpid()))
    worker_id = uuid.uuid4().hex[:12]
    scratch = scratch_root(data_dir) / worker_id
    env = worker_environment(os.environ)
    if shm_dir is not None:
        env["NBREMOTE_SHM_DIR"] = shm_dir
    sandbox = None
    if shutil.which("bwrap") is not None:
        start_probe()
        sandbox = worker_sandbox(hidden_sandbox(data_dir, []), scratch, None, {}, shm_dir, True)
    try:
        scratch.mkdir(parents=True, exist_ok=True)
        started = {**env, "NBREMOTE_TASK_ID": worker_id}
        proc, ours = spawn(sys.executable, started, scratch, sandbox, die_with_runner())
    except Exception as exc:
        print(f"nbremote runner: no early worker ({exc})", file=sys.stderr, flush=True)
        shutil.rmtree(scratch, ignore_errors=True)
        return
    _launched = Launched(worker_id, sys.executable, env, sandbox, scratch, proc, ours)


def take() -> Launched | None:
    """The worker `launch_spare` started, once (None: none, or already taken)."""
    global _launched
    launched, _launched = _launched, None
    return launched
