"""Remote output frames reproduced where the caller is: the cell's output, or the terminal."""

from __future__ import annotations

import sys
from typing import Any

from .wire.codec import Header
from .wire.ops import Op


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


class RemoteResult:
    """A remote cell's last expression, as the worker formatted it. The shell's displayhook
    shows it like a local result (``execute_result``, ``Out[n]``); ``_`` and ``Out[n]`` hold this,
    not the value itself, which stays on the worker unless the cell bound it to a name."""

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
    """Reproduce one output frame (stream, display, result, clear_output, notice) here."""
    op = frame["op"]
    if op == Op.NOTICE:  # from the runner itself: a GPU queue position, a GPU cell's summary
        print(f"nbremote: {frame['text']}", file=sys.stderr, flush=True)
        return
    if op == Op.STREAM:
        stream = sys.stdout if frame["name"] == "stdout" else sys.stderr
        stream.write(frame["text"])
        stream.flush()
        return
    shell = _shell()
    if op == Op.RESULT and shell is not None:
        sys.stdout.flush()
        shell.displayhook(RemoteResult(frame["data"], frame["metadata"]))
        return
    if op in (Op.DISPLAY, Op.RESULT):
        sys.stdout.flush()
        if shell is None:
            print(frame["data"].get("text/plain", ""))
            return
        shell.display_pub.publish(
            data=frame["data"],
            metadata=frame["metadata"],
            transient=frame.get("transient") or None,
            update=frame.get("update", False),
        )
    elif op == Op.CLEAR_OUTPUT and shell is not None:
        shell.display_pub.clear_output(frame["wait"])
