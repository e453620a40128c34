"""Which Python a process-backend worker runs: the kernel's own, when the kernel says which.

An embedded runner is shared by every kernel of its ``NBREMOTE_HOME``, whichever virtualenv each
kernel runs in. A worker started with the runner's interpreter could not import the packages of a
kernel from another virtualenv. So a kernel of an embedded runner (same host, same user) names its
interpreter in the worker spec (`WorkerSpec.python`), and its workers run that interpreter, once
it is known to run this nbremote's worker; else the worker does not start, and the error names
both environments and the way out.
"""

from __future__ import annotations

import asyncio
import os
import sys

from nbremote import __version__

from ..children import die_with_runner
from .base import WorkerStartError

_PROBE = "import nbremote, nbremote_runner.worker; print(nbremote.__version__)"
_checked: dict[str, str | None] = {}  # interpreter -> why it cannot run workers (None: it can)


async def _problem(python: str) -> str | None:
    try:
        proc = await asyncio.create_subprocess_exec(
            python,
            "-P",
            "-c",
            _PROBE,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=die_with_runner(),  # as every child of the runner: never outlives it
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except (OSError, TimeoutError) as exc:
        return f"it cannot be run ({exc})"
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"exit code {proc.returncode}"
    version = out.decode().strip()
    if version != __version__:
        return f"it has nbremote {version}, the runner {__version__}"
    return None


async def worker_python(python: str | None, allowed: bool) -> str:
    """The interpreter for a worker of a spec naming ``python`` (None: the runner's own).

    ``allowed``: this runner is a user's embedded runner, whose clients are that user's kernels.
    Any other runner refuses a path from a client: it would run a program of the client's
    choosing outside any sandbox (the check below runs it).

    Raises:
        WorkerStartError: ``python`` is refused here, or cannot run this nbremote's worker.
    """
    if not python or python == sys.executable:
        return sys.executable
    if not allowed:
        raise WorkerStartError(
            "this runner starts workers with its own Python; a kernel's interpreter "
            f"({python!r}) is used by an embedded runner only. Use an nr.Image for other packages"
        )
    if not (os.path.isabs(python) and os.path.isfile(python) and os.access(python, os.X_OK)):
        raise WorkerStartError(f"this kernel's Python ({python!r}) is not an executable file")
    if python not in _checked:
        _checked[python] = await _problem(python)
    problem = _checked[python]
    if problem is not None:
        raise WorkerStartError(
            f"this kernel's Python ({python}) cannot run nbremote's worker: {problem}. The "
            f"embedded runner runs {sys.executable}. Install nbremote {__version__} in the "
            "kernel's environment, or give this environment a runner of its own (set "
            "NBREMOTE_HOME to another folder)"
        )
    return python
