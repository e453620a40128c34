"""A cell's ``input()`` and ``getpass.getpass()`` ask the person at the notebook, as in a kernel.

ipykernel swaps ``builtins.input`` and ``getpass.getpass`` for each execute request (its
``_forward_input``): they ask the frontend, or raise ``StdinNotImplementedError`` where the
frontend takes no input (nbclient, ``allow_stdin=False``). The worker's shell does the same for
each cell with an `InputRelay`: the prompt goes out as an ``input`` frame, the kernel asks its own
``input()`` (so the notebook's frontend prompts, or it raises), and the answer, or that error by
name and message, comes back as ``input_reply``; the error is raised here as the same-named
exception. A Ctrl-C while the kernel waits comes back as its ``KeyboardInterrupt``.

Cells only: a function called with ``.remote()`` has no frontend behind it and keeps Python's own
``input()`` (which reads the worker's stdin, /dev/null: ``EOFError``).

Swapping costs a cell two attribute writes and two restores (well under a microsecond); nothing
is sent unless the cell calls ``input()``.

Standard library and IPython only: this runs inside every container.
"""

from __future__ import annotations

import builtins
import getpass
import threading
from collections.abc import Callable
from typing import Any

from IPython.core.error import StdinNotImplementedError

from nbremote.wire.codec import Header

Ask = Callable[[str, bool], Header]
"""Sends an ``input`` frame (prompt, whether it is a password) and returns its ``input_reply``."""

Saved = tuple[Callable[..., str], Callable[..., str]]


class InputRelay:
    """``input()`` and ``getpass.getpass()`` for a running cell, answered through ``ask``."""

    def __init__(self, ask: Ask) -> None:
        self._ask = ask
        self._lock = threading.Lock()  # one prompt at a time: one reply is read per prompt

    def install(self) -> Saved:
        """Put this relay's functions in place for a cell; what they replace, to `restore`."""
        saved = builtins.input, getpass.getpass
        builtins.input, getpass.getpass = self.input, self.getpass
        return saved

    @staticmethod
    def restore(saved: Saved) -> None:
        builtins.input, getpass.getpass = saved

    def input(self, prompt: object = "") -> str:
        """``input()`` as ipykernel's: the notebook's frontend prompts."""
        return self._answer(str(prompt), False)

    def getpass(self, prompt: object = "", stream: Any = None, **kwargs: Any) -> str:
        """``getpass.getpass()`` as ipykernel's: a password prompt in the frontend."""
        return self._answer(str(prompt), True)

    def _answer(self, prompt: str, password: bool) -> str:
        with self._lock:
            reply = self._ask(prompt, password)
        error = reply.get("error")
        if error:
            raise _exception(str(error.get("ename", "")), str(error.get("evalue", "")))
        value = reply.get("value")
        return value if isinstance(value, str) else ""


def _exception(ename: str, evalue: str) -> BaseException:
    """The kernel's ``input()`` error as the same-named exception, to raise on the worker."""
    if ename == StdinNotImplementedError.__name__:
        return StdinNotImplementedError(evalue)
    known = getattr(builtins, ename, None)
    if isinstance(known, type) and (issubclass(known, Exception) or known is KeyboardInterrupt):
        try:
            return known(evalue) if evalue else known()
        except TypeError:  # one that takes other arguments (UnicodeDecodeError): named below
            pass
    # Another kind of error: one of the same name, so that the cell shows what the kernel said.
    name = ename if ename.isidentifier() else "InputError"
    kind: type[Exception] = type(name, (Exception,), {"__module__": "builtins"})
    return kind(evalue)
