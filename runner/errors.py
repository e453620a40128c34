"""Errors the runner answers with, and the two places they become answers.

Every error the runner means to tell a client derives from one root, `RunnerError`. Its ``kind``
is the error type the client sees (the class name, unless the error names one), its ``status``
the HTTP status it is answered with::

    RunnerError              500  root: kind shown to clients, HTTP status
    ├── ApiError             any  a handler's refusal (401, 404, 413, 422, ...)
    ├── Refusal              by kind  a request refused for the reason its kind names
    │   ├── VolumeError               a volume request (NotFound, BadRequest, DiskFull, ...)
    │   ├── SecretError               a secret request (NotFound, ValidationError)
    │   └── StoreError                a Dict or Queue request (frames only)
    ├── PythonUnavailable    422  an image asks for a Python the runner does not have
    ├── SandboxError         500  mounts that cannot be made (bubblewrap missing, bad paths)
    ├── StepFailed           500  a step of an image build failed (becomes ImageBuildError)
    ├── WorkerDied           500  the worker's process exited in the middle of a request
    ├── WriteFailed          500  a transaction of the SQLite state failed (nothing kept)
    ├── StateError           500  the data dir's database cannot be used (the runner stops)
    └── WorkerStartError     500  a worker could not be started
        ├── ImageBuildError  500  its image could not be built
        └── GpuUnavailable   500  the GPUs it asks for can never be had here

An error with a ``kind`` of its own takes the status of that kind (`STATUS`), 400 for others.
The classes live beside the code that raises them; this module holds the root and the two
mappings: `BaseHandler.write_error` (HTTP: ``{"error": {"type", "message"}}`` with ``status``)
and `error_done` (frames: a ``done`` frame with ``{"ename", "evalue", "traceback"}``).
"""

from __future__ import annotations

from typing import Any

from nbremote.wire.ops import Op

# The status of each kind an error may name (clients read ``type``; HTTP clients the status too).
STATUS = {"NotFound": 404, "Conflict": 409, "ValidationError": 422, "DiskFull": 507}


class RunnerError(Exception):
    """Root of every error the runner answers a client with.

    Args:
        message: what went wrong, naming the culprit and the way out.
        kind: the error type clients see; the class name when not given.
        status: the HTTP status; the kind's (`STATUS`), else the class's, when not given.
    """

    status = 500

    def __init__(self, message: str, *, kind: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind or type(self).__name__
        if status is not None:
            self.status = status
        elif kind is not None:
            self.status = STATUS.get(kind, type(self).status)


class ApiError(RunnerError):
    """A refusal answered as ``{"error": {"type": kind, "message": message}}`` with ``status``."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message, kind=kind, status=status)
        self.message = message


class Refusal(RunnerError):
    """A request refused for a reason its ``kind`` names (NotFound, BadRequest, ...); 400 unless
    the kind has a status of its own. Base of the volume, secret and store errors, which keep
    their ``(kind, message)`` signature."""

    status = 400

    def __init__(self, kind: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message, kind=kind, status=status)


class WorkerDied(RunnerError):
    """A worker's process exited in the middle of a request (the message says how)."""


def error_done(
    request_id: Any, exc: BaseException, *, unforeseen: bool = False, **fields: Any
) -> dict[str, Any]:
    """The ``done`` frame answering a request that failed with ``exc``.

    Args:
        request_id: the request's ``id``.
        exc: what failed: a `RunnerError` names its ``kind``, anything else its class.
        unforeseen: ``exc`` is a fault of the runner's, not an answer (the message says so).
        fields: more fields of the frame (``held``, ``worker``, ...).
    """
    kind = exc.kind if isinstance(exc, RunnerError) else type(exc).__name__
    message = f"the runner failed: {exc}" if unforeseen else str(exc)
    error = {"ename": kind, "evalue": message, "traceback": []}
    return {"op": Op.DONE, "id": request_id, "ok": False, **fields, "error": error}
