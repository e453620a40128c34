"""The worker's IPython shell, made after the worker's hello rather than before it.

Importing IPython and building its shell was half of a fresh worker's boot, and a function call
needs neither: the embedded runner's first ``f.remote()`` waited for it (issue 23, W5 cold
start). So the worker says hello first; IPython is then imported on a thread while the main
thread serves whatever comes, and the shell is built on the main thread (it takes over
``sys.modules["__main__"]`` and the display hooks, which must not change under running code):
when the first cell or pull needs it, or as soon as the worker is idle with IPython imported,
so that a spare worker's first cell finds it ready.

A call that comes before then runs without a shell, as in a plain Python process:
``get_ipython()`` is None there and ``display()`` prints.

Standard library only at import: this runs inside every container.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import sys
import threading
from typing import TYPE_CHECKING

from .worker_io import Outbox
from .worker_stdin import Ask, InputRelay

if TYPE_CHECKING:
    from .worker_shell import ZMQInteractiveShell


class LaterShell:
    """The worker's shell, built on first use (`get`) or when idle (`build_when_idle`)."""

    def __init__(self, outbox: Outbox, ask_input: Ask) -> None:
        self._outbox = outbox
        self._ask_input = ask_input
        self._shell: ZMQInteractiveShell | None = None
        self._imported: int | None = None  # readable once IPython is imported (`import_ahead`)

    def import_ahead(self) -> None:
        """Start importing IPython on a thread (after the worker's hello)."""
        self._imported = _import_ahead()

    @property
    def pending(self) -> bool:
        """Whether IPython is being imported, or is imported and the shell not yet built."""
        return self._imported is not None

    def get(self) -> ZMQInteractiveShell:
        """The shell, built now if need be (waiting for the import, if it runs)."""
        if self._shell is None:
            from traitlets.config import Config

            from .worker_shell import ZMQInteractiveShell  # waits for `_import_ahead`'s import

            config = Config({"HistoryManager": {"enabled": False}})
            self._shell = ZMQInteractiveShell.instance(outbox=self._outbox, config=config)
            self._shell.stdin = InputRelay(self._ask_input)
        return self._shell

    def build_when_idle(self, sock: socket.socket) -> None:
        """Wait for the next request on ``sock`` or for IPython's import to end, whichever comes
        first; in the second case build the shell now."""
        assert self._imported is not None
        if sock.fileno() in select.select([sock.fileno(), self._imported], [], [])[0]:
            return  # a request: served first
        os.close(self._imported)
        self._imported = None
        with contextlib.suppress(Exception):  # IPython broken: the first cell says how
            self.get()


def _import_ahead() -> int:
    """Import the shell's modules on a thread; a descriptor that becomes readable once done. A
    cell that comes first waits for the import (Python's import lock), then builds the shell."""
    done, notify = os.pipe()

    def run() -> None:
        # Short time slices while it runs: a request served meanwhile gets the GIL back from the
        # import within ~1 ms instead of 5 at each of its reads and writes.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(0.001)
        try:
            from . import worker_shell  # noqa: F401 (what `get` imports; its error too)
        except BaseException:
            pass  # the main thread's own import of it raises it, where it can be shown
        finally:
            sys.setswitchinterval(interval)
            os.write(notify, b"!")
            os.close(notify)

    threading.Thread(target=run, name="nbremote-import", daemon=True).start()
    return done
