"""Where workers run: one `Backend` per kind (process today; docker and ray to come)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .base import Backend, WorkerProcess, WorkerSetup, WorkerStartError
from .process import ProcessBackend

if TYPE_CHECKING:
    from ..images import Images


def make_backend(
    name: str,
    data_dir: str,
    shm_dir: str | None,
    images: Images | None = None,
    private: Sequence[Path] = (),
) -> Backend:
    """The backend called ``name``, or a ValueError listing those that exist. ``private``:
    files of the runner its workers must not see (besides the data dir)."""
    backends = {"process": ProcessBackend}
    if name not in backends:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(sorted(backends))}")
    return backends[name](data_dir, shm_dir, images, private=private)


__all__ = [
    "Backend",
    "ProcessBackend",
    "WorkerProcess",
    "WorkerSetup",
    "WorkerStartError",
    "make_backend",
]
