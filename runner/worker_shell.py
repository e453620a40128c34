"""The worker's IPython shell, made to look to libraries and to the notebook like ipykernel's.

Libraries decide how to draw from what the shell looks like: pandas sizes frames for a notebook
when ``get_ipython()`` has a ``kernel`` and its class name says "zmq", rich and others test for
the class name ``ZMQInteractiveShell``, old tqdm for an ``IPKernelApp`` config section. The
shell here answers those tests as ipykernel's does, honestly enough: it does serve a Jupyter
frontend, through frames instead of ZMQ.

What the shell shows goes out as frames, each in order with the streams:
  - ``display()`` and figures: ``display``; the last expression: ``result`` (Out[n]);
  - the pager (``x?``, ``help``): ``page``, which the kernel turns into its own page payload;
  - ``input()`` and ``getpass``: ``input``, answered by the kernel (`worker_stdin`);
  - every traceback IPython shows without the cell failing (an exception in a ``_repr_html_``,
    ``%tb``): ``error``, an error output. The one that fails the cell is kept for ``done``, so
    that the kernel raises it (``%tb`` and ``sys.last_value`` then work there).

Standard library and IPython only: this runs inside every container.
"""

from __future__ import annotations

import os
import sys
import tempfile
import zlib
from typing import Any

from IPython.core import page
from IPython.core.compilerop import CachingCompiler
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import UsageError
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from traitlets.config import Config

from nbremote.wire.ops import Op

from .worker_calls import builtin_base, explain_memory_error
from .worker_io import Outbox, flush_streams, json_mime
from .worker_stdin import InputRelay


def _outbox_of(shell: Any) -> Outbox:
    outbox: Outbox = shell.outbox
    return outbox


class FramePublisher(DisplayPublisher):
    """``display()`` output, matplotlib figures included, as ``display`` frames."""

    def publish(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        flush_streams()
        # After the cell's error (a figure the inline backend flushes as the cell ends): the
        # notebook shows it after the error, as a local cell does.
        after_error: dict[str, Any] = {}
        if self.shell.last_error is not None:
            after_error["after_error"] = True
        _outbox_of(self.shell).send(
            Op.DISPLAY,
            data=json_mime(data),
            metadata=metadata or {},
            transient=transient or {},
            update=update,
            **after_error,
        )

    def clear_output(self, wait: bool = False) -> None:
        flush_streams()
        _outbox_of(self.shell).send(Op.CLEAR_OUTPUT, wait=wait)


class FrameDisplayHook(DisplayHook):
    """The value of a cell's last expression as a ``result`` frame (shown like Out[n])."""

    def write_output_prompt(self) -> None:
        pass

    def write_format_data(
        self, format_dict: dict[str, Any], md_dict: dict[str, Any] | None = None
    ) -> None:
        flush_streams()
        _outbox_of(self.shell).send(Op.RESULT, data=json_mime(format_dict), metadata=md_dict or {})


MAGIC_LINE = "# %%remote"
"""How the client's cell starts: its ``%%remote`` line, kept (as a comment) for line numbers."""


class CellCompiler(CachingCompiler):
    """IPython's compiler, which counts a notebook cell's lines from its ``%%remote`` line.

    The worker runs the cell's body as the notebook's kernel would run it: a cell magic
    (``%%timeit``) or an alias (``ls``) is found only on a body's first and only line. Its
    tracebacks and syntax errors still say `line N` of the cell as the notebook shows it (the
    ``%%remote`` line is its line 1): the compiler puts that line back in front of the body, of
    the cell's own code only (not of what a magic compiles while it runs).
    """

    def __init__(self) -> None:
        super().__init__()
        self.lead = ""  # the line to put in front of the next cell's code, set for one cell
        self._leading: tuple[str, str] | None = None  # (cell file, lead) until it is parsed

    def cache(self, transformed_code: str, number: int = 0, raw_code: str | None = None) -> str:
        lead, self.lead = self.lead, ""
        raw = raw_code if raw_code is not None else transformed_code
        name = super().cache(lead + transformed_code, number, raw)
        self._leading = (name, lead) if lead else None
        return name

    def get_code_name(self, raw_code: str, transformed_code: str, number: int) -> str:
        """The cell's file name as ipykernel makes it (warnings and ``inspect`` show it)."""
        digest = zlib.crc32(transformed_code.encode())
        return os.path.join(tempfile.gettempdir(), f"ipykernel_{os.getpid()}", f"{digest}.py")

    def ast_parse(self, source: str, filename: str = "<unknown>", symbol: str = "exec") -> Any:
        if self._leading is not None and self._leading[0] == filename:
            source = self._leading[1] + source
            self._leading = None
        return super().ast_parse(source, filename, symbol)


class KernelStandIn:
    """What libraries read of ``get_ipython().kernel`` to know they draw for a notebook.

    pandas only asks whether it is there; nothing here pretends to speak ZMQ.
    """

    implementation = "nbremote"
    session = None
    eventloop = None


class ZMQInteractiveShell(InteractiveShell):
    """The IPython shell a worker runs cells in, named as ipykernel's so that libraries that
    test the class name (pandas, rich) draw for a notebook, which is where the output goes.

    Errors that fail the cell are kept for the ``done`` frame; other tracebacks are sent.
    """

    display_pub_class = FramePublisher
    displayhook_class = FrameDisplayHook
    compiler_class = CellCompiler

    def __init__(self, outbox: Outbox, **kwargs: Any) -> None:
        self.outbox = outbox
        self.kernel = KernelStandIn()
        self.last_error: dict[str, Any] | None = None
        self.stdin: InputRelay | None = None  # a cell's input(), set by the worker
        config: Config = kwargs.pop("config", None) or Config()
        config.setdefault("IPKernelApp", Config())  # what older tqdm tests for a notebook
        super().__init__(config=config, **kwargs)
        self.set_hook("show_in_pager", page.as_hook(self._page), 99)

    def _page(self, data: Any, start: int = 0, *args: Any, **kwargs: Any) -> None:
        """The pager's text (``x?``, ``help``) as a ``page`` frame, as ipykernel payloads it."""
        bundle = data if isinstance(data, dict) else {"text/plain": str(data)}
        flush_streams()
        self.outbox.send(Op.PAGE, data=json_mime(bundle), start=max(0, int(start)))

    def run_remote_cell(self, code: str, settings: dict[str, Any] | None) -> ExecutionResult:
        """Run a notebook's cell as a kernel would (stored, so ``_`` and Out work)."""
        if settings:
            self.apply_inline(settings)
        if "" not in sys.path:
            # A kernel's cells import from its working folder (ipykernel puts '' first): so do
            # these, once the worker's own modules are imported (it starts with -P).
            sys.path.insert(0, "")
        self.last_error = None
        self.displayhook.exec_result = None  # a stale one would misfile this cell's errors
        # The body alone is the cell (In, _i, magics); the compiler counts the magic line.
        lead, body = _split_magic_line(code)
        compiler = self.compile
        assert isinstance(compiler, CellCompiler)  # its compiler_class
        compiler.lead = lead
        # input() and getpass ask the notebook for this cell, as ipykernel's _forward_input.
        saved = self.stdin.install() if self.stdin is not None else None
        try:
            return self._settled(self.run_cell(body, store_history=True))
        finally:
            compiler.lead = ""  # a blank cell is not compiled: the lead must not outlive it
            if saved is not None:
                InputRelay.restore(saved)

    def enable_gui(self, gui: str | None = None) -> None:
        """``%matplotlib inline`` (and ``%pylab``) as in ipykernel: figures go inline, which
        is the worker's backend already; a GUI event loop cannot show on a worker."""
        if gui not in (None, "inline"):
            raise UsageError(
                f"%matplotlib {gui}: a remote cell cannot open GUI windows; "
                "use %matplotlib inline (figures are shown in the notebook)"
            )
        self.active_eventloop = gui

    def _settled(self, result: ExecutionResult) -> ExecutionResult:
        if result.success and self.last_error is not None:
            self._send_error(self.last_error)  # taken for fatal, but the cell went on after it
            self.last_error = None
        return result

    def apply_inline(self, settings: dict[str, Any]) -> None:
        """Take the notebook's matplotlib inline settings (figure formats, ...), as ``%config``
        does: into the shell's config, for the backend if it starts later, and into the
        backend if it is running."""
        change = Config({"InlineBackend": settings})
        for configurable in self.configurables:
            configurable.update_config(change)

    def show_usage_error(self, exc: BaseException) -> None:
        """A magic's UsageError fails the cell without a traceback: the notebook's kernel shows
        it, as its own (one ``UsageError: ...`` line on stderr), when it raises it."""
        self.last_error = {
            "ename": "UsageError",
            "evalue": str(exc),
            "builtin": None,
            "traceback": [],
        }

    def _showtraceback(self, etype: type, evalue: BaseException, stb: list[str]) -> None:
        message = explain_memory_error(etype, str(evalue))
        if message != str(evalue) and stb:  # the limit it ran out of, on the error's last line
            stb = [*stb[:-1], f"{stb[-1].rstrip().removesuffix(str(evalue))} {message}"]
        error = {
            "ename": getattr(etype, "__name__", str(etype)),
            "evalue": message,
            "builtin": builtin_base(etype) if isinstance(etype, type) else None,
            "traceback": stb,
        }
        result = self.displayhook.exec_result
        # IPython records the cell's own error before showing it; before the code runs (a
        # syntax error) there is no result yet, and every error then fails the cell.
        fatal = result is None or any(
            evalue is error for error in (result.error_in_exec, result.error_before_exec)
        )
        if not fatal:
            # ipykernel fails a cell whose last expression could not be formatted: say so.
            self._send_error(error, during_result=self.displayhook.is_active)
            return
        if self.last_error is not None:
            self._send_error(self.last_error)
        self.last_error = error

    def _send_error(self, error: dict[str, Any], during_result: bool = False) -> None:
        flush_streams()
        self.outbox.send(Op.ERROR, **error, during_result=during_result)


def _split_magic_line(code: str) -> tuple[str, str]:
    """The client's ``%%remote`` line (with its newline) and the cell's body."""
    if not code.startswith(MAGIC_LINE):
        return "", code
    line, newline, body = code.partition("\n")
    return line + newline, body
