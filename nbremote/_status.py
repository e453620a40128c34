"""A transient status line while a cell waits for the runner (starting it, starting a worker):
shown where the person looks, and gone without a trace once the cell's own output starts.

The first ``%%remote`` cell of a session waits seconds for the runner and a worker, and used to
show nothing meanwhile. A status must not stay, though: a ``%%remote`` cell leaves exactly what
the same cell leaves locally (issue 15). So:

* In a Jupyter kernel, inside a ``%%remote`` cell (`cell`): a ``display_data`` with a display
  id, updated in place from one status to the next, then taken away with ``clear_output``
  before the cell's first output (or at the cell's end). Updating it to an empty bundle would
  leave an empty output in the saved notebook; a ``clear_output`` leaves nothing. It clears the
  whole cell's output area, so it is only ever sent while the cell has shown nothing else: the
  magic is the whole cell, and once an output of the cell has come, later statuses are dropped.
  Outside a ``%%remote`` cell (``f.remote()`` after a ``print`` in the same cell) a kernel gets
  no status: clearing would take the cell's own output away.
* In a terminal (stderr a TTY, no kernel): one ``\\r`` line on stderr, blanked the same way.
* Anywhere else (a script with stderr in a file, a kernel-less shell under a test): nothing.

Per frame this costs one check of a module global (`output_starts`).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_ERASE = "\r\x1b[2K"  # back to the line's start, and blank it


def _shell() -> Any:
    """The running IPython shell, or None (`nbremote._output.notebook_shell`, which imports
    this module)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _kernel_publisher(shell: Any) -> Any:
    """The shell's display publisher if it is a Jupyter kernel's (one that sends
    ``clear_output`` to the front end), else None."""
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    publisher = getattr(shell, "display_pub", None)
    return publisher if hasattr(publisher, "clear_output") else None


class StatusLine:
    """One status line: `say` shows or replaces it, `clear` takes it away.

    Args:
        in_kernel: whether it may show in a kernel's cell (only a ``%%remote`` cell's may).
    """

    def __init__(self, in_kernel: bool) -> None:
        self._in_kernel = in_kernel
        self._publisher: Any = None
        self._terminal = False
        self._display_id: str | None = None
        self.shown = False  # a status is on screen now
        self.over = False  # the cell's own output has started: no more statuses

    def say(self, text: str) -> None:
        """Show ``text`` as the status (in place of the one before)."""
        if self.over:
            return
        if not self.shown and self._display_id is None:  # where to show it: found when needed
            self._publisher = _kernel_publisher(_shell()) if self._in_kernel else None
            self._terminal = self._publisher is None and _is_tty(sys.stderr)
        line = f"nbremote: {text}…"
        if self._publisher is not None:
            update = self._display_id is not None
            self._display_id = self._display_id or uuid.uuid4().hex
            self._publisher.publish(
                data={"text/plain": line},
                metadata={},
                transient={"display_id": self._display_id},
                update=update,
            )
        elif self._terminal:
            sys.stderr.write(f"{_ERASE}{line}")
            sys.stderr.flush()
        else:
            return
        self.shown = True

    def clear(self) -> None:
        """Take the status away, if one is shown."""
        if not self.shown:
            return
        self.shown = False
        if self._publisher is not None:
            self._publisher.clear_output(wait=False)
            self._display_id = None  # a later status is a new display
        else:
            sys.stderr.write(_ERASE)
            sys.stderr.flush()


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


_line: StatusLine | None = None  # the running %%remote cell's, if any


@contextmanager
def cell() -> Iterator[StatusLine]:
    """Around a ``%%remote`` cell: statuses said meanwhile show in its output area (or the
    terminal), and none is left when it ends, however it ends."""
    global _line
    outer, _line = _line, StatusLine(in_kernel=True)
    try:
        yield _line
    finally:
        _line.clear()
        _line = outer


def say(text: str) -> None:
    """Show ``text`` as the running cell's status; nothing outside a ``%%remote`` cell."""
    if _line is not None:
        _line.say(text)


def output_starts() -> None:
    """The cell's own output is about to be shown: take the status away, and say no more."""
    line = _line
    if line is not None and not line.over:
        line.clear()
        line.over = True


@contextmanager
def step(text: str) -> Iterator[None]:
    """Around a wait of the client's own (starting the embedded runner): said in the running
    ``%%remote`` cell (its next status replaces it), else on a terminal and blanked after."""
    if _line is not None:
        _line.say(text)
        yield
        return
    line = StatusLine(in_kernel=False)
    line.say(text)
    try:
        yield
    finally:
        line.clear()
