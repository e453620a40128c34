"""Where workers run: the contract every backend keeps (`base`), and one module per kind (process
today; docker and ray to come), chosen by name in `kinds`.

Importing this package brings only the contract: the runner's other parts name workers and their
errors without pulling in any backend (or its image building).
"""

from __future__ import annotations

from .base import Backend, Limits, WorkerHandle, WorkerRequest, WorkerStartError, WorkerStats

__all__ = [
    "Backend",
    "Limits",
    "WorkerHandle",
    "WorkerRequest",
    "WorkerStartError",
    "WorkerStats",
]
