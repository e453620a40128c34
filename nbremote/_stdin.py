"""A remote cell's ``input()`` and ``getpass.getpass()``, asked with this kernel's own.

The worker sends the cell's prompt as an ``input`` frame (see ``nbremote_runner.worker_stdin``);
here the kernel's own ``input()`` or ``getpass.getpass()`` asks it, as the same cell's would
locally: under ipykernel that is the notebook's frontend, or ``StdinNotImplementedError`` where
the frontend takes no input. The answer goes back as ``input_reply``, or the error by name and
message, which ``input()`` raises on the worker (a Ctrl-C too: its ``KeyboardInterrupt``, as a
local ``input()`` raises it).
"""

from __future__ import annotations

from .wire.codec import Header
from .wire.ops import INPUT_LIMIT, Op


def answer_input(frame: Header, request_id: str) -> Header:
    """The ``input_reply`` to the ``input`` frame of request ``request_id``."""
    import getpass

    prompt = frame["prompt"]
    try:
        value = getpass.getpass(prompt) if frame["password"] else input(prompt)
    except (Exception, KeyboardInterrupt) as exc:
        return _error(request_id, type(exc).__name__, str(exc))
    value = value if isinstance(value, str) else str(value)
    if len(value) > INPUT_LIMIT:
        evalue = (
            f"the answer to input() is {len(value)} characters long, and a remote cell takes "
            f"at most {INPUT_LIMIT}: pass big text as a variable of the notebook instead"
        )
        return _error(request_id, "ValueError", evalue)
    return {"op": Op.INPUT_REPLY, "id": request_id, "value": value}


def _error(request_id: str, ename: str, evalue: str) -> Header:
    error = {"ename": ename[:200], "evalue": evalue[:INPUT_LIMIT], "traceback": []}
    return {"op": Op.INPUT_REPLY, "id": request_id, "error": error}
