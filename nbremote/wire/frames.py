"""Frame headers: one model per op of the hot path's binary frames (`nbremote.wire.codec`).

Each frame carries a JSON header. The runner checks every header a kernel or a worker sends
against these models before acting on it, so that a malformed frame gets an error naming its
field instead of hanging its caller or killing a worker. Types are strict (JSON gives them
exactly: no "1" for 1); fields the runner does not read pass through to the worker untouched.
Validated on every call: keep them flat and cheap.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .ops import INPUT_LIMIT


class _FramePart(BaseModel):
    # Built on first use (the runner's frame checks build them all then): building them at import
    # cost a fresh runner ~0.2 s before it could answer its first client (issue 23).
    model_config = ConfigDict(extra="ignore", strict=True, defer_build=True)


class _Frame(_FramePart):
    id: str
    shm_ok: bool = False  # whether the answer may come through shared memory

    def buffers_error(self, count: int) -> str | None:
        """What is wrong with a frame of this header and ``count`` buffers (None: nothing)."""
        return None


def _too_few(field: str, needed: int, count: int) -> str | None:
    if needed > count:
        return f"{field}: says {needed} buffers, but the frame has {count}"
    return None


class FramePool(_FramePart):
    """The warm pool a call runs in: ``key`` is ``app:name:...``."""

    key: str = Field(pattern=r"^[^:]*:")
    spec: dict[str, Any] | None = None
    scaling: dict[str, Any] | None = None


class FrameBind(_FramePart):
    """A method call: which instance (``key``), which method, how many constructor buffers."""

    key: str
    method: str
    nparams: int = Field(ge=0)


class FrameFunction(_FramePart):
    """The function of a call: pickled in ``nbuf`` buffers, or known by ``hash``."""

    name: str
    nbuf: int = Field(ge=0)
    hash: str | None = None
    bind: FrameBind | None = None


class FrameRetries(_FramePart):
    """A call's retry policy (`nbremote.Retries` as JSON)."""

    max_retries: int = Field(default=0, ge=0, le=10)


class FrameBatch(_FramePart):
    """``@nr.batched``'s settings (Modal's bounds: a batch of 1 to 1000, a wait under 10 min)."""

    max_batch_size: int = Field(ge=1, le=1000)
    wait_ms: int = Field(ge=0, lt=600_000)


class FrameMember(_FramePart):
    """One caller's part of a batch the runner made (the runner's own field: never a client's)."""

    nbuf: int = Field(ge=0)
    count: int = Field(ge=1)


class FrameDeployed(_FramePart):
    """A call of a deployed app's function or class."""

    app: str
    object: str


class FrameItem(_FramePart):
    """A named value of a cell: the shell (``get_ipython()``, each side's own), an imported
    module, or a pickled value (``nbuf`` buffers, or none if the worker holds ``hash`` already)."""

    name: str
    shell: bool = False  # get_ipython(): the other side binds its own shell
    module: str | None = None
    hash: str | None = None
    nbuf: int = Field(default=0, ge=0)


class FrameBlob(_FramePart):
    """A value a worker asked for by ``hash``, in ``nbuf`` buffers."""

    name: str
    hash: str
    nbuf: int = Field(ge=0)


class FrameSource(_FramePart):
    """A local module's source file, sent along with a cell that imports it."""

    path: str
    module: str
    hash: str
    text: str


class ExecFrame(_Frame):
    """``exec``: run a cell on the session's worker."""

    op: Literal["exec"]
    code: str
    inputs: list[FrameItem]
    outputs: list[str]
    deletes: list[str] = []
    spec: dict[str, Any] | None = None
    fresh: bool = False
    timeout: float | None = Field(default=None, gt=0)
    execution_count: int | None = None
    sources: list[FrameSource] = []
    inline: dict[str, Any] | None = None  # the notebook's matplotlib inline settings
    discover: bool = False  # also bring back names bound by means the analysis cannot see
    star: list[str] = []  # modules the cell star-imports: their names come back as imports
    reprs: bool = False  # the done also brings each output's repr (a job run's record)

    def buffers_error(self, count: int) -> str | None:
        return _too_few("inputs", sum(item.nbuf for item in self.inputs), count)


class PromoteFrame(_Frame):
    """``promote``: store a cell as a scheduled job (see `nbremote.wire.ops.PromoteFrame`);
    ``job`` is checked as `nbremote.wire.http.JobSettings` by the runner."""

    op: Literal["promote"]
    cell: ExecFrame
    job: dict[str, Any]


class PullFrame(_Frame):
    """``pull``: send named values of a worker's namespace back."""

    op: Literal["pull"]
    names: list[str]
    spec: dict[str, Any] | None = None


class _CallFields(_Frame):
    pool: FramePool
    function: FrameFunction
    count: int = Field(default=1, ge=0)
    first: int = Field(default=0, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    retries: FrameRetries | None = None
    concurrency: int | None = Field(default=None, ge=1)
    deployed: FrameDeployed | None = None
    gen: bool = False
    batch: FrameBatch | None = None
    batched: list[FrameMember] | None = None
    form: Literal["values", "args"] | None = None
    pulled: list[list[int | str]] | None = None  # [index, digest, size]: `wire.pulled`

    def buffers_error(self, count: int) -> str | None:
        bind = self.function.bind
        needed = self.function.nbuf + (bind.nparams if bind is not None else 0)
        return _too_few("function.nbuf", needed, count)


class CallFrame(_CallFields):
    """``call``: call a function on a batch of ``count`` inputs, in its pool."""

    op: Literal["call"]


class SpawnFrame(_CallFields):
    """``spawn``: a call whose result is collected later by ``call_id``."""

    op: Literal["spawn"]
    call_id: str


class GetFrame(_Frame):
    """``get``: the result of a spawned call, waiting up to ``timeout`` seconds."""

    op: Literal["get"]
    call_id: str
    timeout: float | None = Field(default=None, ge=0)


class LeaseFrame(_Frame):
    """``lease``: lend one of the pool's workers to this (same-host) kernel."""

    op: Literal["lease"]
    pool: FramePool


class BlobsFrame(_Frame):
    """``blobs``: the values a worker said it ``need``-s, for the request ``id``."""

    op: Literal["blobs"]
    items: list[FrameBlob]

    def buffers_error(self, count: int) -> str | None:
        return _too_few("items", sum(item.nbuf for item in self.items), count)


class FrameError(_FramePart):
    """An error by name and message (its traceback, if any, is the sender's own)."""

    ename: str = Field(max_length=200)
    evalue: str = Field(max_length=INPUT_LIMIT)
    traceback: list[str] = []


class InputReplyFrame(_Frame):
    """``input_reply``: what the person typed for a cell's ``input()`` (``value``), or the
    error that ``input()`` raises on the worker (the frontend takes no input, say)."""

    op: Literal["input_reply"]
    value: str | None = Field(default=None, max_length=INPUT_LIMIT)
    error: FrameError | None = None


class SignalFrame(_Frame):
    """``interrupt`` or ``cancel`` the request ``id``."""

    op: Literal["interrupt", "cancel"]


class DictFrame(_Frame):
    """A request on a runner-held `nbremote.Dict` (key buffers first, ``nkey`` of them)."""

    op: Literal["dict"]
    name: str
    action: Literal[
        "lookup", "put", "get", "contains", "pop", "len", "clear", "delete", "keys", "items"
    ]
    create: bool = False
    nkey: int | None = Field(default=None, ge=0)

    def buffers_error(self, count: int) -> str | None:
        if self.action in ("put", "get", "contains", "pop") and not count:
            return f"buffers: a Dict {self.action!r} needs the key's buffers"
        return _too_few("nkey", self.nkey or 0, count)


class QueueFrame(_Frame):
    """A request on a runner-held `nbremote.Queue` (``sizes``: buffers per value put)."""

    op: Literal["queue"]
    name: str
    action: Literal["lookup", "put", "get", "len", "delete"]
    create: bool = False
    sizes: list[int] | None = None
    n: int = Field(default=1, ge=0)
    timeout: float | None = Field(default=None, ge=0)

    def buffers_error(self, count: int) -> str | None:
        if self.action != "put":
            return None
        if self.sizes is None:
            return "sizes: a Queue put needs the number of buffers of each value"
        if any(size < 1 for size in self.sizes) or sum(self.sizes) != count:
            return f"sizes: {self.sizes} does not add up to the frame's {count} buffers"
        return None


class VolumeFrame(_Frame):
    """A worker's request on a mounted `nbremote.Volume` (``checkouts``: its copies of it)."""

    op: Literal["volume"]
    name: str
    action: Literal["lookup", "commit", "reload"]
    create: bool = False
    checkouts: list[str] = []


# A header's name is a token (RFC 9110); its value has no control characters: a worker runs
# anyone's code, and a CR or LF from it must never reach the HTTP caller's response.
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$"
HEADER_VALUE = r"^[^\x00-\x08\x0a-\x1f\x7f]{0,8192}$"
# The same, checked without a model per header (the hot path): fullmatch, since ``$`` would
# also match before a final line break.
_NAME = re.compile(HEADER_NAME[1:-1])
_VALUE = re.compile(HEADER_VALUE[1:-1])


class WebHeader(_FramePart):
    """One response header (the rule `checked_pairs` applies)."""

    name: str = Field(pattern=HEADER_NAME)
    value: str = Field(pattern=HEADER_VALUE)


class WebStartFrame(_Frame):
    """``web_start``: a worker's start of an HTTP response (see `nbremote.wire.ops`)."""

    op: Literal["web_start"]
    status: int = Field(ge=100, le=599)
    headers: list[list[str]] = Field(max_length=256)
    more: bool | None = None  # given: the frame's one buffer is the body's first chunk

    def buffers_error(self, count: int) -> str | None:
        wanted = 0 if self.more is None else 1
        return None if count == wanted else f"buffers: {count}, not {wanted}"

    @classmethod
    def read(
        cls, header: dict[str, Any], count: int
    ) -> tuple[int, list[tuple[str, str]], bool | None]:
        """A worker's ``web_start`` of ``count`` buffers, checked: its status, headers and
        ``more``. Checked by hand (a request's hot path; the model costs as much as the rest of
        the frame's trip), by the model when that fails, for the message.

        Raises:
            ValueError: the frame is not a ``web_start`` as the model says (a ValidationError).
        """
        status, headers, more = header.get("status"), header.get("headers"), header.get("more")
        if not (
            type(status) is int
            and 100 <= status <= 599
            and type(headers) is list
            and len(headers) <= 256
            and (more is None or type(more) is bool)
            and type(header.get("id")) is str
        ):
            frame = cls.model_validate(header)
            status, headers, more = frame.status, frame.headers, frame.more
        wanted = 0 if more is None else 1
        if count != wanted:
            raise ValueError(f"buffers: {count}, not {wanted}")
        return status, checked_pairs(headers), more


def checked_pairs(headers: list[Any]) -> list[tuple[str, str]]:
    """HTTP headers as ``[name, value]`` lists, checked and made pairs.

    Raises:
        ValueError: one is not a name and a value, or has characters a header may not have.
    """
    pairs = []
    for pair in headers:
        if type(pair) is not list or len(pair) != 2:
            raise ValueError(f"headers: {pair!r:.80} is not a [name, value] pair")
        name, value = pair
        if type(name) is not str or type(value) is not str:
            raise ValueError(f"headers: {pair!r:.80} is not a [name, value] pair of strings")
        if _NAME.fullmatch(name) is None or _VALUE.fullmatch(value) is None:
            raise ValueError(f"headers: {name[:64]!r} has characters a header may not have")
        pairs.append((name, value))
    return pairs


class WebBodyFrame(_Frame):
    """``web_body``: a chunk of the response body, in the frame's one buffer."""

    op: Literal["web_body"]
    more: bool

    def buffers_error(self, count: int) -> str | None:
        return None if count == 1 else f"buffers: a body chunk is one buffer, not {count}"


WebAnswerFrame = Annotated[WebStartFrame | WebBodyFrame, Field(discriminator="op")]
"""What a worker sends while it serves a ``web`` request (before its ``done``)."""

WorkerRequestFrame = Annotated[DictFrame | QueueFrame | VolumeFrame, Field(discriminator="op")]
"""What a worker asks the runner itself (answered by ``Runner.serve_worker``)."""

ClientFrame = Annotated[
    ExecFrame
    | PullFrame
    | CallFrame
    | SpawnFrame
    | GetFrame
    | LeaseFrame
    | PromoteFrame
    | BlobsFrame
    | InputReplyFrame
    | SignalFrame
    | DictFrame
    | QueueFrame,
    Field(discriminator="op"),
]
"""Every frame a kernel sends on its session's channel (``volume`` requests come from workers
only: they name a worker's own working copies)."""
