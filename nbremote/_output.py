"""Remote output frames reproduced where the caller is: the cell's output, or the terminal.

Each goes through the kernel's own machinery, so the notebook holds what a local cell leaves:
a result through the displayhook, rich output through the display publisher, a traceback the
cell showed and went on through the shell's ``_showtraceback`` (an error output), the pager's
text through IPython's pager (a page payload in ipykernel).
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from typing import Any

from . import _status
from .errors import remote_error
from .wire.codec import Header
from .wire.ops import Op


def notebook_shell() -> Any:
    """The running IPython shell, or None (a script, a terminal without IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


class RemoteResult:
    """A remote cell's last expression, as the worker formatted it. The shell's displayhook
    shows it like a local result (``execute_result``, ``Out[n]``), in order with the cell's other
    output; once the cell is done, `settle_result` puts the value itself in its place in ``_``
    and ``Out[n]`` (this stays there only for a value that cannot be pickled)."""

    def __init__(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        self.data = data
        self.metadata = metadata

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.data, self.metadata

    def __repr__(self) -> str:
        return str(self.data.get("text/plain", ""))


def show(frame: Header, buffers: list[bytearray]) -> None:
    """Reproduce one output frame (stream, display, result, clear_output, notice) here; a
    status frame goes to the cell's transient status line (`nbremote._status`), which the
    first frame of the cell's own output takes away."""
    op = frame["op"]
    if op == Op.STATUS:  # from the runner while the cell waits ("starting a worker"): transient
        _status.say(frame["text"])
        return
    _status.output_starts()
    if op == Op.NOTICE:  # from the runner itself: a GPU queue position, a GPU cell's summary
        print(f"nbremote: {frame['text']}", file=sys.stderr, flush=True)
        return
    if op == Op.STREAM:
        stream = sys.stdout if frame["name"] == "stdout" else sys.stderr
        stream.write(frame["text"])
        stream.flush()
        return
    shell = notebook_shell()
    if op == Op.ERROR:
        _show_error(shell, frame)
        return
    if op == Op.PAGE:
        _page(shell, frame)
        return
    if op == Op.RESULT and shell is not None:
        sys.stdout.flush()
        shell.displayhook(RemoteResult(frame["data"], frame["metadata"]))
        return
    if op in (Op.DISPLAY, Op.RESULT):
        sys.stdout.flush()
        if shell is None:
            print(frame["data"].get("text/plain", ""))
            return
        if frame.get("after_error"):
            _show_after_error(shell, frame)
            return
        _publish(shell, frame)
    elif op == Op.CLEAR_OUTPUT and shell is not None:
        shell.display_pub.clear_output(frame["wait"])


def _publish(shell: Any, frame: Header) -> None:
    shell.display_pub.publish(
        data=frame["data"],
        metadata=frame["metadata"],
        transient=frame.get("transient") or None,
        update=frame.get("update", False),
    )


_after_error: list[Header] = []  # displays waiting for the kernel to show the cell's error


def _show_after_error(shell: Any, frame: Header) -> None:
    """A display the remote cell made after its error (a figure its inline backend flushed as
    the cell ended): the kernel shows the error when the magic raises it, then runs the
    ``post_execute`` hooks, where a local cell's figure would show; so does this one."""
    if not _after_error:
        shell.events.register("post_execute", _flush_after_error)
    _after_error.append(frame)


def _flush_after_error() -> None:
    shell = notebook_shell()
    shell.events.unregister("post_execute", _flush_after_error)
    frames = list(_after_error)
    _after_error.clear()
    for frame in frames:
        _publish(shell, frame)


def _show_error(shell: Any, frame: Header) -> None:
    """A traceback the remote cell showed without failing, shown by the shell as its own."""
    traceback = frame["traceback"]
    if shell is None:
        print("\n".join(traceback), file=sys.stderr, flush=True)
        return
    error = remote_error(frame["ename"], frame["evalue"], traceback, frame.get("builtin"))
    sys.stdout.flush()
    sys.stderr.flush()
    shell._showtraceback(type(error), error, traceback)
    if frame.get("during_result") and hasattr(shell, "_last_traceback_during_displayhook"):
        # ipykernel fails a cell whose last expression could not be formatted: so does this one.
        shell._last_traceback_during_displayhook = True


def _page(shell: Any, frame: Header) -> None:
    if shell is None:
        print(frame["data"].get("text/plain", ""))
        return
    from IPython.core import page

    sys.stdout.flush()
    page.page(frame["data"], frame.get("start", 0))


def inline_settings(shell: Any) -> dict[str, Any] | None:
    """The notebook's matplotlib inline settings for a remote cell, if the notebook has any of
    its own (``%config InlineBackend.figure_format = 'svg'``, ``set_matplotlib_formats``).

    What ``%config`` wrote (kept in the shell's config until the backend starts), with the running
    backend's values over it; None when the notebook never touched them, so that a ``%config``
    run inside a remote cell lasts.
    """
    config = getattr(shell, "config", None)
    settings = dict(config["InlineBackend"]) if config and "InlineBackend" in config else {}
    backend_module = sys.modules.get("matplotlib_inline.config")
    backend = getattr(backend_module, "InlineBackend", None)
    if backend is not None and backend.initialized():
        touched = bool(settings)  # then all of them: a setting put back to its default too
        running = backend.instance()
        for name, default in _INLINE_DEFAULTS.items():
            value = getattr(running, name)
            if touched or value != default:
                settings[name] = value
        settings.pop("figure_format", None)  # figure_formats says it, and wins
    return _json_only(settings) or None


_INLINE_DEFAULTS: dict[str, Any] = {
    "figure_formats": {"png"},
    "print_figure_kwargs": {"bbox_inches": "tight"},
    "rc": {},
    "close_figures": True,
}


def _json_only(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings a frame can carry (sets as lists; what JSON cannot write is left here)."""
    import json

    kept = {}
    for name, value in settings.items():
        value = sorted(value) if isinstance(value, set) else value
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        kept[name] = value
    return kept


def settle_result(namespace: MutableMapping[str, Any], value: Any) -> None:
    """Put a remote cell's result value where the displayhook put its `RemoteResult`: in ``_``
    (or ``__``, ``___`` if later results moved it there), ``_<n>`` and ``Out[n]``."""
    out = namespace.get("Out")
    if not isinstance(out, dict) or not out:
        return
    count = max(out)
    placeholder = out[count]
    if not isinstance(placeholder, RemoteResult):
        return
    out[count] = value
    # The displayhook keeps its own _, __, ___, and the shell a hidden copy of what it pushed;
    # where they differ from the namespace's it takes `_` for the user's own and stops updating
    # it: all three change.
    shell = notebook_shell()
    hidden = getattr(shell, "user_ns_hidden", {})
    displayhook = getattr(shell, "displayhook", None)
    for name in ("_", "__", "___", f"_{count}"):
        for where in (namespace, hidden):
            if where.get(name) is placeholder:
                where[name] = value
        if getattr(displayhook, name, None) is placeholder:
            setattr(displayhook, name, value)
