"""Every frame header a kernel or a worker sends is checked before the runner acts on it.

Without this, a frame missing a field raised deep inside a task that nobody awaited: its caller
waited forever, or the frame went on to the worker and ended it. Now a bad frame is answered at
once with an error ``done`` naming the field (``ename`` "ValidationError", ``evalue``
"<field>: <what is wrong>"), and goes no further. A frame without a usable ``id`` is answered
with ``"id": null``: its sender cannot match the answer to a request, but whoever reads the raw
stream sees why nothing happened.

The models are the wire schema's frame headers (`nbremote.wire.frames`), one discriminated union on
``op`` built once here. Measured (one core of a loaded 2-core box): ~3 µs for a ``call`` frame,
~6 µs for an ``exec`` frame with five inputs, ~1 µs for a worker's Dict request.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from nbremote.wire.codec import Header
from nbremote.wire.frames import ClientFrame, WorkerRequestFrame
from nbremote.wire.ops import Op

# Built at the first frame, not at import: a fresh runner answers its first client sooner, and
# builds them while its spare worker boots (issue 23).
_LATER = ConfigDict(defer_build=True)
CLIENT_FRAMES: TypeAdapter[Any] = TypeAdapter(ClientFrame, config=_LATER)
WORKER_FRAMES: TypeAdapter[Any] = TypeAdapter(WorkerRequestFrame, config=_LATER)
_SHOWN = 3  # errors named in one answer; the rest are counted


def rejected(request_id: Any, evalue: str) -> Header:
    """The error ``done`` for a frame that is not valid (``id`` null if it has no usable one)."""
    return {
        "op": Op.DONE,
        "id": request_id if isinstance(request_id, str) else None,
        "ok": False,
        "held": [],
        "error": {"ename": "ValidationError", "evalue": evalue, "traceback": []},
    }


def _where(loc: tuple[int | str, ...], tagged: bool) -> str:
    """``("call", "pool", "key")`` -> ``pool.key``; list positions as ``inputs[0].name``."""
    parts = loc[1:] if tagged and loc else loc  # the first part names the union's member
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "op"


def describe(exc: ValidationError) -> str:
    """``field: message`` for each error (the first few), as one line."""
    lines = []
    for error in exc.errors()[:_SHOWN]:
        kind = error["type"]
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            ctx = error.get("ctx") or {}
            got = f"unknown op {ctx['tag']!r}" if "tag" in ctx else "missing"
            expected = ctx.get("expected_tags", "")
            lines.append(f"op: {got}" + (f" (expected one of {expected})" if expected else ""))
            continue
        lines.append(f"{_where(error['loc'], True)}: {error['msg']}")
    more = exc.error_count() - _SHOWN
    return "; ".join(lines) + (f"; and {more} more" if more > 0 else "")


def check(adapter: TypeAdapter[Any], header: Header, buffers: list[Any]) -> Header | None:
    """None if ``header`` (with its ``buffers``) is a valid frame; else the error ``done``
    that answers it."""
    try:
        frame = adapter.validate_python(header)
    except ValidationError as exc:
        return rejected(header.get("id"), describe(exc))
    problem = frame.buffers_error(len(buffers))
    return rejected(header.get("id"), problem) if problem is not None else None
