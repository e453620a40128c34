"""A remote traceback rebuilt as local frames, so that it reads like the same error raised here.

The worker sends a function's error as the text `traceback.format_exception` wrote. Shown as
that text, it lacks the calling cell and `%debug` has nothing to walk. So the remote frames are
rebuilt: for each ``File "F", line N, in NAME`` a tiny code object with that file name, line
number and name is executed, the innermost raising the error. The exception then carries real
frames that map to the remote source: IPython's traceback shows the calling cell's frame, then
the remote ones with their source lines (the notebook's own cells are in the local linecache;
for any other file the line the worker quoted is used), and `%debug` walks them (their locals
stayed on the worker). nbremote's own frames between the two are left out of what is shown.
"""

from __future__ import annotations

import functools
import linecache
import os
import re
import traceback
from dataclasses import dataclass
from types import TracebackType
from typing import Any

_FRAME = re.compile(r'^  File "(?P<file>.*)", line (?P<line>\d+), in (?P<name>.*)$')
_CHAINED = (
    "\nDuring handling of the above exception, another exception occurred:\n",
    "\nThe above exception was the direct cause of the following exception:\n",
)
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_MAGIC_CALL = "get_ipython().run_"  # a magic's line as IPython rewrote it: no news to the user
_WORKER_SUFFIX = " (on the worker)"


@dataclass(frozen=True)
class RemoteFrame:
    """One frame of a remote traceback: where it was, and the line the worker quoted."""

    filename: str
    lineno: int
    name: str
    line: str


def parse(text: str) -> list[RemoteFrame]:
    """The frames of the last exception in a formatted traceback (earlier, chained ones are
    dropped: their text stays in the error's message of the chain, if any)."""
    for marker in _CHAINED:
        text = text.rpartition(marker)[2]
    frames: list[RemoteFrame] = []
    lines = text.splitlines()
    for index, row in enumerate(lines):
        match = _FRAME.match(row)
        if match is None:
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        quoted = following.strip() if following.startswith("    ") else ""
        frames.append(RemoteFrame(match["file"], int(match["line"]), match["name"], quoted))
    return frames


def _local_file(frame: RemoteFrame) -> str:
    """The file name whose linecache entry shows what ran on the worker at that line: the
    file itself where the local copy agrees with the worker's, else a name of its own."""
    here = linecache.getline(frame.filename, frame.lineno).strip()
    if here == frame.line or not frame.line:
        return frame.filename
    filename = frame.filename + _WORKER_SUFFIX
    cached = linecache.cache.get(filename)
    lines = list(cached[2]) if cached is not None and len(cached) > 2 else []
    lines += ["\n"] * (frame.lineno - len(lines))
    lines[frame.lineno - 1] = frame.line + "\n"
    # No mtime: linecache.checkcache keeps an entry that has none.
    linecache.cache[filename] = (0, None, lines, filename)
    return filename


def _code(frame: RemoteFrame, body: str) -> Any:
    filename = _local_file(frame)
    code = compile("\n" * (frame.lineno - 1) + body, filename, "exec")
    return code.replace(co_name=frame.name, co_qualname=frame.name)


def attach(exc: BaseException, frames: list[RemoteFrame]) -> BaseException:
    """Give ``exc`` a traceback made of ``frames`` (outermost first); ``exc`` returned."""
    if not frames:
        return exc
    call: Any = None
    for frame in reversed(frames):
        if call is None:
            code, scope = _code(frame, "raise __exc"), {"__exc": exc}
        else:
            code, scope = _code(frame, "__next()"), {"__next": call}
        # exec and partial add no Python frame of their own between the rebuilt ones.
        call = functools.partial(exec, code, scope)
    try:
        call()
    except BaseException as raised:
        assert raised is exc
        tb = raised.__traceback__
        exc.__traceback__ = tb.tb_next if tb is not None else None  # this function's own frame
    exc.__context__ = None
    return exc


def _internal(tb: TracebackType) -> bool:
    filename = tb.tb_frame.f_code.co_filename
    if filename.startswith((_PACKAGE, _ipython_package())) or filename.startswith("<decorator-gen"):
        return True
    return _MAGIC_CALL in linecache.getline(filename, tb.tb_lineno)


@functools.cache
def _ipython_package() -> str:
    import IPython

    return os.path.dirname(os.path.abspath(IPython.__file__)) + os.sep


def user_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without nbremote's and IPython's own frames: the user's code, and the remote
    frames rebuilt by `attach`."""
    kept: list[TracebackType] = []
    while tb is not None:
        if not _internal(tb):
            kept.append(tb)
        tb = tb.tb_next
    rebuilt = None
    for entry in reversed(kept):
        rebuilt = TracebackType(rebuilt, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return rebuilt


def render(exc: BaseException) -> list[str]:
    """How IPython shows ``exc``: the user's frames (and the remote ones) as a local error of
    the same class would be shown, without nbremote's frames nor the low-level errors it was
    translated from (``exc.__cause__`` stays set, for code that looks)."""
    tb = user_frames(exc.__traceback__)
    if tb is None:  # raised by the magic itself: the message is all there is to say
        return [f"{type(exc).__name__}: {exc}", *getattr(exc, "__notes__", ())]
    saved = exc.__cause__, exc.__suppress_context__
    exc.__cause__, exc.__suppress_context__ = None, True
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            return traceback.format_exception(type(exc), exc, tb)
        stb: list[str] = shell.InteractiveTB.structured_traceback(type(exc), exc, tb, tb_offset=0)
        return stb
    finally:
        exc.__cause__, exc.__suppress_context__ = saved
