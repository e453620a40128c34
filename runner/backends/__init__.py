"""Where workers run: the contract every backend keeps (`base`), and one module per kind (process
today; docker and ray to come), chosen by name in `kinds`.

Importing this package brings only the contract: the runner's other parts name workers and their
errors without pulling in any backend (or its image building).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Backend, Limits, WorkerHandle, WorkerRequest, WorkerStartError, WorkerStats

__all__ = [
    "Backend",
    "Limits",
    "WorkerHandle",
    "WorkerRequest",
    "WorkerStartError",
    "WorkerStats",
]


def __getattr__(name: str) -> Any:
    # On first use: the embedded runner's early worker (`early`) starts from this package
    # before anything imports the contract (and, through it, pydantic and the wire's models).
    if name in __all__:
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
