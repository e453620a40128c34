"""Exceptions raised by nbremote.

Every error derives from one root, so ``except nbremote.NbremoteError`` catches them all::

    NbremoteError
    ├── RunnerUnavailable      the runner is down, unreachable or did not start
    ├── AuthenticationError    the runner refused the token (HTTP 401)
    ├── RunnerError            the runner answered with an error document
    │   ├── NotFoundError      ... of kind NotFound: no object by that name
    │   ├── InvalidError       ... of kind ValidationError or BadRequest
    │   └── AlreadyExistsError ... of kind Conflict
    ├── SerializationError     a value cannot be pickled or unpickled (names the value)
    ├── VersionMismatch        the worker's Python differs from the kernel's
    ├── WorkerDied             the worker process exited in the middle of a call
    ├── FunctionTimeoutError   a call ran longer than its function's timeout (a TimeoutError)
    └── RemoteError            the remote code raised; carries the remote traceback

``nbremote.exception`` gives them Modal's names (``modal.exception.NotFoundError``, ...).

Each message names the culprit and a way out.
"""

from __future__ import annotations

import builtins
import functools


class NbremoteError(Exception):
    """Root of every nbremote error."""

    def _render_traceback_(self) -> list[str]:
        """How IPython shows it: the user's own lines and the message, without nbremote's
        frames nor the socket errors behind it (``__cause__`` still holds those)."""
        from ._remote_tb import render

        return render(self)


class RunnerUnavailable(NbremoteError):
    """The runner could not be reached, or did not answer in time."""


class AuthenticationError(NbremoteError):
    """The runner refused the bearer token."""


class RunnerError(NbremoteError):
    """The runner answered with ``{"error": {"type", "message"}}``.

    Args:
        kind: the error type the runner named.
        message: the runner's message.
    """

    def __new__(cls, kind: str, message: str) -> RunnerError:
        # The class follows the kind, so that `except NotFoundError` catches every "NotFound"
        # answer, wherever in the client it is raised.
        chosen = _KINDS.get(kind, cls) if cls is RunnerError else cls
        return super().__new__(chosen, kind, message)

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message

    def __reduce__(self) -> tuple[type[RunnerError], tuple[str, str]]:
        return type(self), (self.kind, self.message)


class NotFoundError(RunnerError):
    """The runner has no object by that name (a Dict, Volume, secret, app, function...)."""


class InvalidError(RunnerError):
    """The runner refused a request as invalid (the message names the field)."""


class AlreadyExistsError(RunnerError):
    """The runner already holds an object by that name."""


_KINDS: dict[str, type[RunnerError]] = {
    "NotFound": NotFoundError,
    "ValidationError": InvalidError,
    "BadRequest": InvalidError,
    "Conflict": AlreadyExistsError,
}


class SerializationError(NbremoteError):
    """A value could not be pickled (before sending) or unpickled (after receiving).

    Args:
        name: the variable or argument the value belongs to.
        reason: why each pickler refused it.
    """

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"cannot serialize {name!r}: {reason}")
        self.name = name
        self.reason = reason


class VersionMismatch(NbremoteError):
    """The worker runs a Python whose pickles the kernel cannot exchange with."""


class WorkerDied(NbremoteError):
    """The worker process exited while running a call; the next call gets a new worker."""


class FunctionTimeoutError(NbremoteError, builtins.TimeoutError):
    """A remote call ran longer than its function's ``timeout=``; the remote error raised then
    (a `RemoteError` too) derives from it, and from the built-in ``TimeoutError``."""


class RemoteError(NbremoteError):
    """The remote code raised. IPython shows the remote traceback instead of a local one.

    Args:
        ename: the remote exception's class name.
        evalue: its message.
        traceback: the remote traceback, one (ANSI-coloured) string per entry.
    """

    def __init__(self, ename: str, evalue: str, traceback: list[str]) -> None:
        super().__init__(evalue or ename)  # the class is named after ename already
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback
        self.rebuilt = False  # whether the remote frames are in __traceback__ (`attach_frames`)

    def _render_traceback_(self) -> list[str]:
        """Used by IPython to display the remote traceback: the calling cell and the rebuilt
        remote frames, or else (a cell's error) the worker's own rendering of it."""
        if self.rebuilt:
            return super()._render_traceback_()
        return self.traceback

    def attach_frames(self) -> RemoteError:
        """Rebuild the remote frames of ``traceback`` (Python's format) as this error's own
        traceback, so that it shows and debugs like a local error; ``self`` returned."""
        from ._remote_tb import attach, parse

        frames = parse("".join(self.traceback))
        if frames:
            attach(self, frames)
            self.rebuilt = True
        return self


@functools.cache
def _remote_class(ename: str, base: str | None) -> type[RemoteError]:
    if ename in ("InputTimeout", "FunctionTimeoutError"):  # a function's timeout: the worker's
        # own timer, or the runner's deadline after it (the code ignored the first)
        return type(ename, (RemoteError, FunctionTimeoutError), {"__module__": "nbremote.errors"})
    builtin = getattr(builtins, base or ename, None)
    # IPython shows any SyntaxError with its own syntax-error view (this class's frames and
    # "(<string>)"), never its _render_traceback_: a remote one keeps the worker's rendering,
    # which is what a local cell shows.
    if (
        isinstance(builtin, type)
        and issubclass(builtin, Exception)
        and not issubclass(builtin, SyntaxError)
        and builtin is not Exception
    ):
        try:
            return type(ename, (RemoteError, builtin), {"__module__": "nbremote.errors"})
        except TypeError:  # built-ins with their own instance layout (OSError) cannot be mixed in
            pass
    return type(ename, (RemoteError,), {"__module__": "nbremote.errors"})


def remote_error(
    ename: str, evalue: str, traceback: list[str], builtin: str | None = None
) -> RemoteError:
    """A `RemoteError` whose class is named after the remote exception.

    It also derives from the remote exception's nearest built-in class (``builtin``, or ``ename``
    itself), so ``except ZeroDivisionError`` catches a remote division by zero as it would a
    local one, and ``except ValueError`` a remote subclass of ValueError.
    """
    return _remote_class(ename, builtin)(ename, evalue, traceback)
