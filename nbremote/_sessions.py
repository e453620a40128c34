"""The runner's sessions as a person sees them (``%remote sessions``, ``nbremote sessions``),
and the goodbye a kernel says as it exits.

Kept apart from `nbremote._session` (one kernel's session and its hot path): listing, finding a
session by the start of its id, and the one request of a kernel's exit import nothing of it.
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Sequence

from ._client import RunnerClient
from .errors import NbremoteError, VersionMismatch
from .wire.http import DescribeSession, EndSession

GOODBYE_TIMEOUT = 2.0  # the most a kernel's exit waits for the runner to hear its goodbye
COLUMNS = ["SESSION", "NOTEBOOK", "AGE", "STATE", "WORKERS", "NAMES"]


def say_goodbye(client: RunnerClient, session_id: str, client_id: str) -> None:
    """Tell the runner this kernel (``client_id``) is done with ``session_id``, waiting a moment
    at most: a runner that does not hear it notices the closed channel and keeps the session for
    its grace instead."""
    # A connection of its own, with a short timeout: the kept-alive one may be mid-request.
    with RunnerClient(client.url, client.token) as goodbye:
        goodbye.timeout = GOODBYE_TIMEOUT
        with contextlib.suppress(NbremoteError):  # the runner is gone, or slow
            path, body = f"/api/v1/sessions/{session_id}/end", EndSession(client=client_id)
            goodbye.call("POST", path, body, response=DescribeSession)


def find(sessions: Sequence[DescribeSession], prefix: str) -> DescribeSession:
    """The one session whose id starts with ``prefix`` (listings show the first 8 characters).

    Raises:
        LookupError: none does, or more than one (the message lists them).
    """
    matching = [session for session in sessions if session.id.startswith(prefix)]
    if len(matching) == 1:
        return matching[0]
    if not matching:
        raise LookupError(
            f"no session {prefix!r} on the runner: `%remote sessions` (or `nbremote sessions ls`) "
            "lists them"
        )
    ids = ", ".join(session.id for session in matching)
    raise LookupError(f"{prefix!r} is the start of several sessions' ids ({ids}): give more of it")


def _age(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f} {unit}"
    return f"{seconds:.0f} s"


def state(session: DescribeSession) -> str:
    """``attached``, or ``detached 40 s (ends in 4 min)``."""
    if session.attached:
        return "attached"
    now = time.time()
    ends = "" if session.ends_at is None else f" (ends in {_age(max(0, session.ends_at - now))})"
    return f"detached {_age(max(0, now - (session.detached_at or now)))}{ends}"


def table(rows: Sequence[Sequence[str]]) -> str:
    """Rows under `COLUMNS`, aligned, as plain text (what ``%remote sessions`` prints: rich would
    render to the notebook's display rather than to the text it is asked for)."""
    lines = [COLUMNS, *rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def row(session: DescribeSession, current: str | None = None) -> list[str]:
    """A session's row under `COLUMNS`; ``current`` (this kernel's session) is marked."""
    names = sorted({obj.name for worker in session.workers for obj in worker.objects})
    mark = " *" if session.id == current else ""
    return [
        session.id[:8] + mark,
        session.notebook or "-",
        _age(max(0.0, time.time() - session.created_at)),
        state(session),
        str(len(session.workers)),
        ", ".join(names) or "-",
    ]


def check_python(worker_python: str, local_python: str | None = None) -> None:
    """Refuse to exchange pickles with a worker on another Python minor version.

    Raises:
        VersionMismatch: saying which versions differ and what to do.
    """
    local_python = local_python or platform.python_version()
    if worker_python.split(".")[:2] != local_python.split(".")[:2]:
        raise VersionMismatch(
            f"the runner's workers run Python {worker_python} but this kernel runs "
            f"{local_python}; pickled code only travels between equal minor versions. Start the "
            f"runner with Python {'.'.join(local_python.split('.')[:2])}, or use a kernel on "
            f"Python {'.'.join(worker_python.split('.')[:2])}"
        )
