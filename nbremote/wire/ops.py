"""Frame ops: one `TypedDict` per op of the hot path.

Every peer may be hostile or of another version: a worker runs anyone's code, a runner may be
someone else's. The runner checks what it receives with the pydantic models of
`nbremote.wire.frames`; the client and the worker, which must stay light (the worker never
imports pydantic), check with the table of `nbremote.wire.op_checks`, derived once from the
TypedDicts here. A unit test holds these TypedDicts against the pydantic models, field by
field, so the two never drift apart.

(No ``from __future__ import annotations`` here: under it, Python 3.11 reads every
``NotRequired`` key as required.)
"""

import enum
from typing import Any, Literal, NotRequired, TypedDict

INPUT_LIMIT = 1 << 20
"""The longest answer to a cell's ``input()`` that the runner passes on (characters): far more
than anyone types or pastes at a prompt, far less than a worker must take from a client."""


# A call's ``form`` (`_CallFields.form`): how a batch's inputs are pickled.
VALUES = "values"  # each input its one positional argument (``f.map(xs)``)
ARGS = "args"  # each input the tuple of its positional arguments (``f.map(xs, ys)``, starmap)


def expand(inputs: list[Any], form: str | None) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """A batch's inputs as ``(args, kwargs)`` pairs, whatever its ``form`` (None: pairs).

    Raises:
        TypeError: an ``ARGS`` input is not a sequence of arguments.
    """
    if form == VALUES:
        return [((value,), {}) for value in inputs]
    if form == ARGS:
        return [(tuple(args), {}) for args in inputs]
    return inputs


class Op(enum.StrEnum):
    """Every op a frame may carry (a `str`: ``Op.DONE == "done"``, and JSON writes ``"done"``)."""

    EXEC = "exec"
    PULL = "pull"
    CALL = "call"
    SPAWN = "spawn"
    GET = "get"
    LEASE = "lease"
    PROMOTE = "promote"
    BLOBS = "blobs"
    INPUT_REPLY = "input_reply"
    INTERRUPT = "interrupt"
    CANCEL = "cancel"
    STOP = "stop"
    DICT = "dict"
    QUEUE = "queue"
    VOLUME = "volume"
    HELLO = "hello"
    STREAM = "stream"
    DISPLAY = "display"
    CLEAR_OUTPUT = "clear_output"
    RESULT = "result"
    ERROR = "error"
    PAGE = "page"
    STATUS = "status"
    NOTICE = "notice"
    NEED = "need"
    INPUT = "input"
    LEASED = "leased"
    ITEM = "item"
    WEB = "web"
    WEB_START = "web_start"
    WEB_BODY = "web_body"
    DONE = "done"


# -- parts of requests (mirroring nbremote.wire.frames) ----------------------------------------


class FramePool(TypedDict):
    key: str
    spec: NotRequired[dict[str, Any] | None]
    scaling: NotRequired[dict[str, Any] | None]


class FrameBind(TypedDict):
    key: str
    method: str
    nparams: int


class FrameFunction(TypedDict):
    name: str
    nbuf: int
    hash: NotRequired[str | None]
    bind: NotRequired[FrameBind | None]


class FrameRetries(TypedDict):
    max_retries: NotRequired[int]


class FrameBatch(TypedDict):
    """``@nr.batched``: the runner groups single inputs into calls of up to ``max_batch_size``
    inputs, waiting up to ``wait_ms`` for a batch to fill."""

    max_batch_size: int
    wait_ms: int


class FrameMember(TypedDict):
    """One caller's part of a batch the runner made: its argument buffers and inputs."""

    nbuf: int
    count: int


class FrameDeployed(TypedDict):
    app: str
    object: str


class FrameItem(TypedDict):
    name: str
    shell: NotRequired[bool]
    module: NotRequired[str | None]
    hash: NotRequired[str | None]
    nbuf: NotRequired[int]


class FrameBlob(TypedDict):
    name: str
    hash: str
    nbuf: int


class FrameError(TypedDict):
    ename: str
    evalue: str
    traceback: NotRequired[list[str]]


class FrameSource(TypedDict):
    path: str
    module: str
    hash: str
    text: str


# -- requests: what a kernel sends (to the runner, or to a leased worker), and the runner
# forwards to a worker -----------------------------------------------------------------------


class _Request(TypedDict):
    id: str
    shm_ok: NotRequired[bool]  # whether the answer may come through shared memory


class ExecFrame(_Request):
    op: Literal["exec"]
    code: str
    inputs: list[FrameItem]
    outputs: list[str]
    deletes: NotRequired[list[str]]
    spec: NotRequired[dict[str, Any] | None]
    fresh: NotRequired[bool]
    timeout: NotRequired[float | None]
    execution_count: NotRequired[int | None]
    sources: NotRequired[list[FrameSource]]
    inline: NotRequired[dict[str, Any] | None]
    discover: NotRequired[bool]
    star: NotRequired[list[str]]
    reprs: NotRequired[bool]  # the done also brings each output's repr (a job run's record)


class PromoteFrame(_Request):
    """Store a cell as a scheduled job instead of running it. ``cell`` is the ``exec`` request
    the cell would send (its inputs by hash, no buffers): the runner asks with ``need`` for
    the payloads it does not hold yet, which come as ``blobs``. ``job`` is `JobSettings`."""

    op: Literal["promote"]
    cell: ExecFrame
    job: dict[str, Any]


class PullFrame(_Request):
    op: Literal["pull"]
    names: list[str]
    spec: NotRequired[dict[str, Any] | None]


class _CallFields(_Request):
    pool: FramePool
    function: FrameFunction
    count: NotRequired[int]
    first: NotRequired[int]
    timeout: NotRequired[float | None]
    retries: NotRequired[FrameRetries | None]
    concurrency: NotRequired[int | None]
    deployed: NotRequired[FrameDeployed | None]
    gen: NotRequired[bool]  # a generator: each value comes as an ``item`` frame (remote_gen)
    batch: NotRequired[FrameBatch | None]  # the kernel's: a batched function (see FrameBatch)
    batched: NotRequired[list[FrameMember] | None]  # the runner's to a worker: who is in it
    # How the inputs are pickled: pairs of (args, kwargs) (None), or a map's leaner "values"
    # (each input's one positional argument) or "args" (each input's positional arguments).
    form: NotRequired[Literal["values", "args"] | None]
    # Big buffers sent by digest, [index, digest, size] each: the worker pulls those it does not
    # keep (`nbremote.wire.pulled`).
    pulled: NotRequired[list[list[int | str]] | None]


class CallFrame(_CallFields):
    op: Literal["call"]


class SpawnFrame(_CallFields):
    op: Literal["spawn"]
    call_id: str


class GetFrame(_Request):
    op: Literal["get"]
    call_id: str
    timeout: NotRequired[float | None]


class LeaseFrame(_Request):
    op: Literal["lease"]
    pool: FramePool


class BlobsFrame(_Request):
    op: Literal["blobs"]
    items: list[FrameBlob]


class InputReplyFrame(_Request):
    """What the person typed for a cell's ``input`` (``value``), or why there is nothing
    (``error``: the kernel's frontend takes no input, say), raised from ``input()`` remotely."""

    op: Literal["input_reply"]
    value: NotRequired[str | None]
    error: NotRequired[FrameError | None]


class SignalFrame(_Request):
    op: Literal["interrupt", "cancel", "stop"]  # stop: the runner's to a worker


class DictFrame(_Request):
    op: Literal["dict"]
    name: str
    action: str
    create: NotRequired[bool]
    nkey: NotRequired[int | None]


class QueueFrame(_Request):
    op: Literal["queue"]
    name: str
    action: str
    create: NotRequired[bool]
    sizes: NotRequired[list[int] | None]
    n: NotRequired[int]
    timeout: NotRequired[float | None]


class VolumeFrame(_Request):
    op: Literal["volume"]
    name: str
    action: str
    create: NotRequired[bool]
    checkouts: NotRequired[list[str]]


class FrameWebScope(TypedDict):
    """An HTTP request as an ASGI scope's fields (headers as latin-1 text pairs)."""

    method: str
    path: str
    root_path: str
    query_string: str
    headers: list[list[str]]


class WebFrame(_Request):
    """The runner's to a worker: serve one HTTP request of a web endpoint. Buffers: the deployed
    function's payload (``function.nbuf`` of them), then the request body (one). Answered by
    ``web_start``, ``web_body`` frames as the app sends them, then ``done`` (an answer of one
    chunk: the ``done`` alone, its ``answer`` the start, its one buffer the body). The payload
    is sent to a worker once (``nbuf`` 0 after that): the worker keeps it by ``function.hash``,
    and asks for it (``need``) if it has not."""

    op: Literal["web"]
    function: FrameFunction
    web: dict[str, Any]  # nbremote.wire.endpoints.WebSettings
    scope: FrameWebScope
    concurrency: NotRequired[int]  # requests the worker may take at once (its pool's max_inputs)


class HelloFrame(TypedDict):
    """A worker's first frame to the runner (``pid``, ``python``), or a kernel's to a leased
    worker (``token``)."""

    op: Literal["hello"]
    token: NotRequired[str]
    pid: NotRequired[int]
    python: NotRequired[str]


# -- answers: what a worker or the runner sends back for a request ---------------------------


class _Answer(TypedDict):
    id: NotRequired[str | None]  # None: no request to show it to (the kernel drops it)


class StreamFrame(_Answer):
    op: Literal["stream"]
    name: str
    text: str


class DisplayFrame(_Answer):
    op: Literal["display"]
    data: dict[str, Any]
    metadata: dict[str, Any]
    transient: NotRequired[dict[str, Any] | None]
    update: NotRequired[bool]
    after_error: NotRequired[bool]  # made after the cell's error: shown after it


class ResultFrame(_Answer):
    op: Literal["result"]
    data: dict[str, Any]
    metadata: dict[str, Any]


class ErrorFrame(_Answer):
    """A traceback the cell showed and went on (the one that fails it comes in ``done``)."""

    op: Literal["error"]
    ename: str
    evalue: str
    traceback: list[str]
    builtin: NotRequired[str | None]
    during_result: NotRequired[bool]  # raised formatting the last expression


class PageFrame(_Answer):
    """What the cell sent to IPython's pager (``x?``, ``help``): a mime bundle."""

    op: Literal["page"]
    data: dict[str, Any]
    start: NotRequired[int]


class ClearOutputFrame(_Answer):
    op: Literal["clear_output"]
    wait: bool


class StatusFrame(_Answer):
    op: Literal["status", "notice"]
    text: str


class NeedFrame(_Answer):
    op: Literal["need"]
    hashes: list[str]


class InputFrame(_Answer):
    """A cell called ``input()`` (or ``getpass``): ask the person, as the kernel would."""

    op: Literal["input"]
    prompt: str
    password: bool


class LeasedFrame(_Answer):
    op: Literal["leased"]
    address: str
    token: str


class ItemFrame(_Answer):
    """A generator's next value (``remote_gen``), pickled in the frame's buffers."""

    op: Literal["item"]
    index: int


class WebStartFrame(_Answer):
    """The start of a web request's response: status and headers (latin-1 text pairs). With
    ``more``, its one buffer is the body's first chunk (``more`` as in ``web_body``): a response
    of one chunk is one frame."""

    op: Literal["web_start"]
    status: int
    headers: list[list[str]]
    more: NotRequired[bool]


class WebBodyFrame(_Answer):
    """A chunk of a web request's response body (its one buffer); ``more``: others follow."""

    op: Literal["web_body"]
    more: bool


class DoneFrame(_Answer):
    """The end of a request; what else it says depends on the request (read by its caller)."""

    op: Literal["done"]
    ok: bool
    error: NotRequired[FrameError | None]
    held: NotRequired[list[str] | None]
    worker: NotRequired[str | None]
    outputs: NotRequired[list[dict[str, Any]] | None]
    deleted: NotRequired[list[str] | None]
    unreturnable: NotRequired[list[dict[str, Any]] | None]
    errors: NotRequired[dict[str, Any] | None]
    call_id: NotRequired[str | None]
    reprs: NotRequired[dict[str, str] | None]
    answer: NotRequired[dict[str, Any]]  # a web request's ``status`` and ``headers``: one frame


FRAMES: dict[str, type] = {
    Op.EXEC: ExecFrame,
    Op.PULL: PullFrame,
    Op.CALL: CallFrame,
    Op.SPAWN: SpawnFrame,
    Op.GET: GetFrame,
    Op.LEASE: LeaseFrame,
    Op.PROMOTE: PromoteFrame,
    Op.BLOBS: BlobsFrame,
    Op.INPUT_REPLY: InputReplyFrame,
    Op.INTERRUPT: SignalFrame,
    Op.CANCEL: SignalFrame,
    Op.STOP: SignalFrame,
    Op.DICT: DictFrame,
    Op.QUEUE: QueueFrame,
    Op.VOLUME: VolumeFrame,
    Op.HELLO: HelloFrame,
    Op.STREAM: StreamFrame,
    Op.DISPLAY: DisplayFrame,
    Op.CLEAR_OUTPUT: ClearOutputFrame,
    Op.RESULT: ResultFrame,
    Op.ERROR: ErrorFrame,
    Op.PAGE: PageFrame,
    Op.STATUS: StatusFrame,
    Op.NOTICE: StatusFrame,
    Op.NEED: NeedFrame,
    Op.INPUT: InputFrame,
    Op.LEASED: LeasedFrame,
    Op.ITEM: ItemFrame,
    Op.WEB: WebFrame,
    Op.WEB_START: WebStartFrame,
    Op.WEB_BODY: WebBodyFrame,
    Op.DONE: DoneFrame,
}
"""The one typed definition of each op."""
