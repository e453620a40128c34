"""The contract between the runner and a place where workers run.

A backend starts a worker for a `WorkerSpec` and hands back a `WorkerProcess`: a frame stream to
the worker program (`nbremote_runner.worker`, already past its ``hello``), plus the few process
controls the runner needs. Everything above this line (sessions, the warm pool, routing frames) is
backend-agnostic.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path

from nbremote.wire.codec import Header
from nbremote.wire.http import WorkerSpec

from ..errors import RunnerError
from ..frames import FrameConnection


class WorkerStartError(RunnerError):
    """A worker could not be started; the message says why (exit status, log tail)."""


@dataclass(frozen=True)
class WorkerSetup:
    """What the runner prepared for a worker beyond its spec.

    Args:
        env: environment variables from its secrets (never logged or shown).
        mounts: mount path -> host folder to bind there (volumes' working copies).
    """

    env: dict[str, str] = field(default_factory=dict, repr=False)
    mounts: dict[str, Path] = field(default_factory=dict)


class WorkerProcess(abc.ABC):
    """A running worker: its frame stream, its hello, and controls over its process."""

    def __init__(
        self, worker_id: str, spec: WorkerSpec, connection: FrameConnection, hello: Header
    ) -> None:
        self.id = worker_id
        self.spec = spec
        self.connection = connection
        self.hello = hello
        self.checkouts: frozenset[str] = frozenset()  # its volume working copies (their ids)

    @property
    def pid(self) -> int:
        """The worker's process id on the runner's host (as the worker reported it, unless a
        backend knows better: in a PID namespace the worker's own pid is another)."""
        pid: int = self.hello["pid"]
        return pid

    @abc.abstractmethod
    def interrupt(self) -> None:
        """Interrupt the running cell (like Ctrl-C); the worker survives."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop the worker for good and free what it held."""

    @abc.abstractmethod
    async def exit_status(self) -> str:
        """After the stream closed: how the worker ended ("exit code 1", "signal SIGKILL")."""

    @abc.abstractmethod
    def rss_bytes(self) -> int | None:
        """Resident memory of the worker, if known."""


class Backend(abc.ABC):
    """Starts workers."""

    name: str

    @abc.abstractmethod
    async def start_worker(
        self, spec: WorkerSpec, setup: WorkerSetup | None = None
    ) -> WorkerProcess:
        """Start a worker for ``spec`` (with ``setup``) and wait for its hello.

        Raises:
            WorkerStartError: the worker exited or did not answer in time, or its mounts cannot
                be made.
        """

    @property
    @abc.abstractmethod
    def python_version(self) -> str:
        """The Python version of the default worker environment."""
