"""Which runner a client talks to: ``NBREMOTE_URL``/``NBREMOTE_TOKEN``, else the embedded one."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import TYPE_CHECKING

# Re-exported: the CLI finds the embedded runner here, as the rest of the client does.
from .wire.home import nbremote_home as nbremote_home

if TYPE_CHECKING:
    from ._client import RunnerClient


def resolve_runner(url: str | None = None, token: str | None = None) -> tuple[str, str | None]:
    """The runner's URL and token: given ones, then the environment, then the embedded runner."""
    url = url or os.environ.get("NBREMOTE_URL")
    if url:
        return url, token or os.environ.get("NBREMOTE_TOKEN")
    return embedded_runner()


def runner_client() -> tuple[RunnerClient, bool]:
    """A client of the configured runner, else of the embedded one; whether it is the embedded
    one, which the client finds again (or starts anew) if it goes away."""
    from ._client import RunnerClient

    embedded = not os.environ.get("NBREMOTE_URL")  # as resolve_runner decides
    client = RunnerClient(*resolve_runner())
    if embedded:
        client.find_runner = embedded_runner
    return client, embedded


def embedded_runner() -> tuple[str, str | None]:
    """The URL and token of the embedded runner of ``NBREMOTE_HOME``, started if it is not up
    (again, after ``nbremote runner stop`` or an idle exit: a client asks this when its runner
    no longer answers)."""
    from ._embedded import find_or_start

    return find_or_start(nbremote_home())


def read_token_file(path: Path) -> str:
    """The token in ``path``, a file that only its owner may read.

    Raises:
        ValueError: it cannot be read, is empty, or group or others may read it (naming the fix).
    """
    try:
        mode = path.stat().st_mode
        token = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"cannot read the token file {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise ValueError(
            f"the token file {path} may be read by others (mode {mode & 0o777:04o}): "
            f"`chmod 600 {path}`"
        )
    if not token:
        raise ValueError(
            f"the token file {path} is empty: write a long random token in it, e.g. "
            f"`python -c 'import secrets; print(secrets.token_urlsafe(32))' > {path}`"
        )
    return token


def forget_token_variable() -> str | None:
    """``NBREMOTE_TOKEN``, taken out of this process's environment: children do not inherit it,
    and its value no longer shows in ``/proc/<pid>/environ`` (``ps e``)."""
    token = os.environ.get("NBREMOTE_TOKEN")
    if token is None:
        return None
    try:  # the kernel shows the environment block the process started with: overwrite it there
        getenv = ctypes.CDLL(None).getenv
        getenv.restype = ctypes.c_void_p
        where = getenv(b"NBREMOTE_TOKEN")
        if where:
            ctypes.memset(where, ord("*"), len(os.fsencode(token)))
    except (OSError, AttributeError):
        pass
    del os.environ["NBREMOTE_TOKEN"]
    return token
