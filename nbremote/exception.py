"""Modal's exception names (``modal.exception``) for nbremote's errors, so that Modal code's
``except modal.exception.NotFoundError`` catches what nbremote raises for the same failure.

Where nbremote has the same failure, the name is its class: a name the runner does not know is
a `NotFoundError` (a `RunnerError` of kind ``NotFound``), a refused request an `InvalidError`.
Mind one clash: Modal's ``RemoteError`` is an error *of the server* — nbremote's `RunnerError`
— while ``nbremote.RemoteError`` is the user's code raising (Modal re-raises that as its own
type, as nbremote's remote errors also are: ``except ValueError`` catches a remote ValueError).

Example:
    >>> import nbremote as modal
    >>> issubclass(modal.exception.NotFoundError, modal.exception.Error)
    True
"""

from __future__ import annotations

import builtins

from .errors import (
    AlreadyExistsError,
    AuthenticationError,
    FunctionTimeoutError,
    InvalidError,
    NbremoteError,
    NotFoundError,
    RunnerError,
    RunnerUnavailable,
    SerializationError,
    VersionMismatch,
    WorkerDied,
)
from .sandbox import SandboxTimeoutError

Error = NbremoteError
AuthError = AuthenticationError
ConnectionError = RunnerUnavailable  # Modal's name: it shadows the built-in here on purpose
DeserializationError = SerializationError
ExecutionError = WorkerDied  # the call could not finish for a reason outside the user's code
RemoteError = RunnerError  # Modal's: "an error on the server"
TimeoutError = builtins.TimeoutError  # a function's timeout, a FunctionCall.get(timeout=)
VersionError = VersionMismatch
DeprecationError = DeprecationWarning  # the category of nbremote's deprecation warnings

__all__ = [
    "AlreadyExistsError",
    "AuthError",
    "ConnectionError",
    "DeprecationError",
    "DeserializationError",
    "Error",
    "ExecutionError",
    "FunctionTimeoutError",
    "InvalidError",
    "NotFoundError",
    "RemoteError",
    "SandboxTimeoutError",
    "SerializationError",
    "TimeoutError",
    "VersionError",
]
