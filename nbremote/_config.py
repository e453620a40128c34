"""Which runner a client talks to: ``NBREMOTE_URL``/``NBREMOTE_TOKEN``, else the embedded one."""

from __future__ import annotations

import os
from pathlib import Path


def nbremote_home() -> Path:
    """``NBREMOTE_HOME``, or ``~/.nbremote``: the embedded runner's data dir."""
    return Path(os.environ.get("NBREMOTE_HOME") or Path.home() / ".nbremote")


def resolve_runner(url: str | None = None, token: str | None = None) -> tuple[str, str | None]:
    """The runner's URL and token: given ones, then the environment, then the embedded runner."""
    url = url or os.environ.get("NBREMOTE_URL")
    if url:
        return url, token or os.environ.get("NBREMOTE_TOKEN")
    from ._embedded import find_or_start

    return find_or_start(nbremote_home())
