"""nbremote: run notebook cells and functions on your own GPU runner.

``%load_ext nbremote`` registers the ``%%remote`` magic. This module imports nothing heavy: the
worker program imports nbremote's frame and pickle helpers and must start fast.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    AuthenticationError,
    NbremoteError,
    RemoteError,
    RunnerError,
    RunnerUnavailable,
    SerializationError,
    VersionMismatch,
    WorkerDied,
)

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "NbremoteError",
    "RemoteError",
    "RunnerError",
    "RunnerUnavailable",
    "SerializationError",
    "VersionMismatch",
    "WorkerDied",
    "__version__",
    "load_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """Register nbremote's magics in an IPython shell (``%load_ext nbremote``)."""
    from .magics import load_ipython_extension as load

    load(ipython)
