"""The Ray actor that holds one warm worker, on whichever node Ray placed it.

Why a child process and not the worker loop inside the actor: the worker owns its process (its
stdout/stderr file descriptors are captured into frames, Ctrl-C is a SIGINT its shell turns into
a KeyboardInterrupt, user code may fork, and an ``exit()`` in a cell must end the worker, not a
Ray process). So the actor connects to the runner's frame port over TCP, sends its one-time
token, and starts ``python -P -m nbremote_runner.worker --fd N`` on that socket: from then on
frames flow straight between the worker and the runner, never through Ray. The actor stays as
the worker's keeper: it interrupts it, reports its exit, and takes it down when the actor goes
(the child dies with its parent, however the parent dies: a lost node loses both).

A worker with volumes starts in a bubblewrap sandbox of the node (as on the process backend),
which binds each volume's working copy (on storage every node sees, at the same path) at its
mount path. This module is imported in Ray's worker processes on every node: the standard
library only at import time (nbremote is installed on every node: the sandbox is imported from
it when a worker needs one).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

PR_SET_PDEATHSIG = 1
NODE_VARIABLE = "NBREMOTE_RAY_NODE_ID"  # the Ray node a worker runs on, for its user code


def _worker_preexec() -> None:
    """In the worker's process before it execs: die with the actor, and take SIGINT as Python
    does by default (a Ray worker ignores or blocks it, which a child would inherit)."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the actor's stop kills it
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _sandboxed(
    command: list[str], scratch: str, mounts: dict[str, str], readonly: list[str]
) -> list[str]:
    """``command`` in a bubblewrap sandbox of this node that binds each of ``mounts``' folders
    at its mount path, and ``readonly`` (an image's venv) at its own (the process backend's
    sandbox, with nothing of a runner to hide here)."""
    from pathlib import Path

    from .sandbox import Sandbox, bwrap_command

    binds = {path: Path(folder) for path, folder in mounts.items()}
    sandbox = Sandbox(writable=[Path(scratch)], readonly=[Path(p) for p in readonly], mounts=binds)
    return bwrap_command(command, sandbox, Path(scratch))


class WorkerKeeper:
    """The actor's body (``ray.remote`` wraps it in `nbremote_runner.backends.ray`)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._scratch: str | None = None
        self._sandboxed = False
        self._worker_pid: int | None = None  # in a sandbox: the worker's own, not bwrap's

    def start(
        self,
        address: tuple[str, int],
        token: str,
        env: dict[str, str],
        mounts: dict[str, str] | None = None,
        image: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Connect to the runner at ``address`` with ``token`` and start the worker on that
        connection, with ``mounts`` (mount path -> folder) bound in a sandbox, in ``image``'s
        venv (``python``; its ``files`` linked into the working folder) if given; where it runs
        (node id, host name, the worker's pid here)."""
        import ray  # in a Ray worker process: there already

        node = ray.get_runtime_context().get_node_id()
        sock = socket.create_connection(address, timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(token.encode() + b"\n")
        scratch = self._scratch = tempfile.mkdtemp(prefix="nbremote-ray-")
        # Ray's view of this actor (CUDA_VISIBLE_DEVICES for its GPUs) plus the spec's env.
        environ = {k: v for k, v in os.environ.items() if not k.startswith("NBREMOTE_")}
        environ |= env | {NODE_VARIABLE: node}
        python = sys.executable
        if image:  # the image's venv: its Python, none of this Ray worker's PYTHONPATH
            python = image["python"]
            environ = {k: v for k, v in environ.items() if k != "PYTHONPATH"} | env
            files = image["files"]
            for entry in os.listdir(files) if os.path.isdir(files) else ():
                os.symlink(os.path.join(files, entry), os.path.join(scratch, entry))
        command = [python, "-P", "-m", "nbremote_runner.worker", "--fd", str(sock.fileno())]
        if mounts:
            venv = [os.path.dirname(os.path.dirname(python))] if image else []
            command = _sandboxed(command, scratch, mounts, venv)
            self._sandboxed = True
        self._proc = subprocess.Popen(
            command,
            pass_fds=[sock.fileno()],
            cwd=scratch,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C at the node's terminal is not the cell's
            preexec_fn=_worker_preexec,
        )
        sock.close()
        return {"node_id": node, "hostname": socket.gethostname(), "pid": self._proc.pid}

    def interrupt(self) -> None:
        """Ctrl-C for the running cell: a SIGINT its shell turns into a KeyboardInterrupt."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._target(), signal.SIGINT)

    def _target(self) -> int:
        """The worker's pid: the process itself, or the one under its sandbox's bwrap."""
        assert self._proc is not None
        if not self._sandboxed:
            return self._proc.pid
        if self._worker_pid is None:
            import psutil  # a dependency of nbremote's runner, there on every node

            for child in psutil.Process(self._proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    if "nbremote_runner.worker" in child.cmdline():
                        self._worker_pid = child.pid
        return self._worker_pid or self._proc.pid

    def wait(self, seconds: float) -> int | None:
        """The worker's return code once it has exited within ``seconds``; else None."""
        if self._proc is None:
            return None
        deadline = time.monotonic() + seconds
        while self._proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        code = self._proc.poll()
        if code is not None and self._scratch is not None:  # its scratch folder goes with it
            shutil.rmtree(self._scratch, ignore_errors=True)
        return code

    def kill(self) -> int | None:
        """End the worker now; its return code."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        return self.wait(5.0)
