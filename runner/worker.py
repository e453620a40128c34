"""The worker: runs one notebook's cells in a persistent IPython namespace.

A backend starts it as ``python -P -m nbremote_runner.worker --fd N`` with one end of a socket to
the runner on descriptor N. It imports the standard library, IPython and nbremote's frame and
pickle helpers only (never the runner), so that it starts fast inside any container.

Frames (see `nbremote.wire.codec`):
  runner -> worker   exec {code, inputs, outputs, deletes, execution_count, discover, inline} ·
                     blobs · input_reply {value | error} · pull {names}
  worker -> runner   hello · need {hashes} · input {prompt, password} · stream · display ·
                     item {index} (a generator's value) ·
                     clear_output · result · error · page · done
  lease: the worker serves a same-host client's calls from that client's own socket (see
  `nbremote_runner.worker_lease`) until it lets go

A request the worker cannot serve (a field missing, an unknown op, a frame it must refuse) is
answered with an error ``done`` and the worker goes on: nothing a frame says ends it.

Inputs arrive as one set of content-hashed payloads, references between them kept (see
`nbremote_runner.worker_values`, which holds them by hash between cells, re-hashed before reuse).
After a successful cell the worker sends back, as one set again, the outputs the client named;
and unless they are exact (``--out``; ``discover`` false), every input whose hash the cell
changed, by whatever means, and every name the cell bound, rebound or deleted where the
client's analysis cannot see, found by comparing the namespace's ids before and after. So both
sides hold the same values afterwards.
"""

from __future__ import annotations

import os
import platform
import queue
import select
import signal
import socket
import sys
import threading
import time
import uuid
from collections import ChainMap
from collections.abc import Collection, Mapping, Sequence
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any

from nbremote.errors import SerializationError
from nbremote.wire.codec import FrameReader, Header
from nbremote.wire.names import RESULT
from nbremote.wire.op_checks import FrameInvalid
from nbremote.wire.ops import Op
from nbremote.wire.pulled import PullFailed, fill
from nbremote.wire.reprs import short_reprs
from nbremote.wire.serialize import dumps, loads
from nbremote.wire.transport import use_worker_transport

from .worker_inbox import Inbox, checked_reply
from .worker_io import FrameStream, Outbox, capture_fd, flush_streams, start_flusher
from .worker_lease import HELD, serve_lease
from .worker_patterns import bound, load_inputs, pack, run_inputs
from .worker_shell import ZMQInteractiveShell
from .worker_sources import LocalSources
from .worker_stdin import InputRelay
from .worker_values import HeldValues, rebound
from .worker_values import InputError as _InputError
from .worker_workdir import enter_workdir

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

_SUMMARY_LIMIT = 200


class Worker:
    """Serves frames from the runner until the socket closes."""

    def __init__(self, sock: socket.socket, outbox: Outbox) -> None:
        from traitlets.config import Config

        self.sock = sock  # to the runner
        # Shared-memory files are taken from the runner's folder only (see nbremote.wire.shm).
        self.runner_reader = FrameReader(sock, shm_dir=outbox.shm_dir)
        self.reader = self.runner_reader  # where the request being served comes from
        self.outbox = outbox
        config = Config({"HistoryManager": {"enabled": False}})
        self.shell = ZMQInteractiveShell.instance(outbox=outbox, config=config)
        self.shell.stdin = InputRelay(self._ask_input)
        self.values = HeldValues()  # what the worker holds by content hash
        self.functions: dict[str, Any] = {}  # content hash -> function called here
        self.sources = LocalSources()  # the notebook's local modules, sent with cells
        self.running = False
        self._deferred: list[bool] | None = None  # an interrupt that came mid-send (see below)
        self.cells_run = 0
        self._store_lock = threading.Lock()
        self.inbox = Inbox()
        self._threads: ThreadPoolExecutor | None = None
        self._handlers = {
            Op.EXEC: self.exec_cell,
            Op.PULL: self.pull,
            Op.CALL: self.call,
            Op.LEASE: self.lease,
            Op.WEB: self.web,
            Op.CANCEL: self.cancel,
        }
        self._web: Any = None  # the endpoint apps (`worker_web`), once a web request came
        self._web_here = False  # their loop runs on this thread and reads the socket
        use_worker_transport(self.store_request)
        signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        # The runner interrupts the running cell; between cells there is nothing to interrupt.
        if self.running and self._deferred is not None:
            self._deferred.append(True)  # never mid-frame: the runner would read garbage
        elif self.running:
            raise KeyboardInterrupt

    def store_request(self, header: Header, buffers: Sequence[Any]) -> tuple[Header, list[Any]]:
        """A Dict or Queue request of the running code, answered by the runner on this socket.

        While the main thread runs the user's code, nobody else reads the socket and the asker
        reads the answer itself; otherwise (concurrent inputs on pool threads, a web app's
        threads) the serve loop reads it and hands it over.
        """
        op = header.pop("op")
        main = threading.current_thread() is threading.main_thread()
        if self.running or (main and not self._web_here):
            with self._store_lock:  # the code may use its Dicts from several threads
                self.outbox.send(op, buffers, via=self.sock, **header)
                return checked_reply(*self.runner_reader.read())
        reply_id = uuid.uuid4().hex
        if main:  # on the web loop, which reads the socket: requests before the answer wait
            self.outbox.send(op, buffers, to=reply_id, via=self.sock, **header)
            reply = self.inbox.reply(self.runner_reader, reply_id)
            if self.inbox.ready(self.runner_reader):  # no readiness of the socket will say so
                self._web.wake()
            return reply
        box: queue.Queue[tuple[Header, list[Any]]] = queue.Queue(maxsize=1)
        self.inbox.replies[reply_id] = box
        try:
            self.outbox.send(op, buffers, to=reply_id, via=self.sock, **header)
            return box.get()
        finally:
            del self.inbox.replies[reply_id]

    def serve(self) -> None:
        """Announce this worker, then answer requests one at a time (once it serves a web
        endpoint, from that endpoint's event loop, on this thread: `worker_web.WebApps.run`)."""
        self.outbox.send(Op.HELLO, pid=os.getpid(), python=platform.python_version())
        while self._serve_ready():
            if self._web is not None and self.reader is self.runner_reader:
                self._web_here = True
                fd = self.sock.fileno()
                self._web.run(fd, self._serve_ready, self.inbox.ready(self.reader))
                return

    def _serve_ready(self) -> bool:
        """Serve the next request (serving web: those that have come, never waiting for more);
        False: the worker must stop."""
        web = self._web_here
        if web and not (self.inbox.ready(self.reader) or _readable(self.sock)):
            return True  # what woke the loop was read meanwhile (with a Dict's answer)
        while True:
            try:
                request = self.inbox.next_request(self.reader, web)
            except ConnectionError:
                return False
            if request is not None:  # else another thread's answer, handed over
                header, buffers, refused = request
                if header.get("op") == Op.STOP:  # leave, the socket open for @nr.exit()'s Dicts
                    return False
                self._handle(header, buffers, refused)
                del header, buffers, request  # the buffers live on only in what was bound
            if not (web and self.inbox.ready(self.reader)):
                return True

    def _handle(self, header: Header, buffers: list[bytearray], refused: str = "") -> None:
        """Serve one request; one it cannot serve gets an error ``done``, never an exception."""
        handlers = self._handlers
        request_id = header.get("id")
        self.outbox.serve(request_id if isinstance(request_id, str) else None, False)
        try:
            handler = handlers.get(header.get("op"))  # type: ignore[arg-type]
            if refused or handler is None:
                reason = refused or f"op: unknown op {header.get('op')!r} ({', '.join(handlers)})"
                raise _InputError("ValidationError", reason)
            self.outbox.serve(request_id, bool(header.get("shm_ok")))
            if handler != self.exec_cell:  # code may run: the last cell's hashes are not sure
                self.values.fresh.clear()
            handler(header, buffers)
        except Exception as exc:
            self.fail(header, exc)
        finally:
            self.outbox.serve(None)

    def fail(self, header: Header, exc: Exception) -> None:
        """Answer a request that could not be served with an error ``done`` naming why."""
        if isinstance(exc, _InputError):
            error = exc.error
        elif isinstance(exc, FrameInvalid):  # refused on receipt (a leased client's call)
            error = _InputError("ValidationError", str(exc)).error
        elif isinstance(exc, KeyError | TypeError | ValueError | IndexError):
            field = f"{exc.args[0]}: missing" if isinstance(exc, KeyError) else repr(exc)
            evalue = f"the {header.get('op')!r} request cannot be served: {field}"
            error = _InputError("ValidationError", evalue).error
        else:
            error = _InputError(type(exc).__name__, str(exc)).error
        self.outbox.send(Op.DONE, ok=False, error=error)

    def lease(self, header: Header, buffers: list[bytearray]) -> None:
        """Serve a same-host client's calls straight from its socket (see `worker_lease`)."""
        serve_lease(self, header)

    def web(self, header: Header, buffers: list[bytearray]) -> None:
        """Serve an HTTP request of a web endpoint (`worker_web`: answered from its own loop)."""
        if self._web is None:
            from .worker_web import WebApps  # only a worker that serves an endpoint loads it

            self._web = WebApps(self.outbox)
        item = header["function"]
        parts = buffers[: item["nbuf"]]  # sent once per worker: then known by its hash
        body = bytes(buffers[item["nbuf"]]) if len(buffers) > item["nbuf"] else b""
        self._web.serve(header, body, lambda: self._function(item, parts))

    def cancel(self, header: Header, buffers: list[bytearray]) -> None:
        """The caller of a web request hung up: stop it (nothing else is cancelled this way)."""
        if self._web is not None:
            self._web.cancel(header["id"])

    # -- inputs --------------------------------------------------------------------------------

    def _receive_inputs(
        self, inputs: list[Header], buffers: list[bytearray]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        return self.values.receive(self.shell.user_ns, inputs, buffers, self._ask_for)

    def _ask_for(self, hashes: list[str]) -> tuple[Header, list[bytearray]]:
        """The payloads of values this worker no longer holds, asked for by hash."""
        self.outbox.send(Op.NEED, hashes=hashes)
        return self.inbox.blobs(self.reader)

    def _ask_input(self, prompt: str, password: bool) -> Header:
        """The kernel's answer to a cell's ``input()`` (see `worker_stdin`)."""
        flush_streams()  # what the cell printed comes before its prompt, as in a kernel
        self.outbox.send(Op.INPUT, prompt=prompt, password=password)
        header, _ = self.inbox.blobs(self.reader, Op.INPUT_REPLY)
        return header

    # -- outputs -------------------------------------------------------------------------------

    def _send_back(
        self,
        names: list[str],
        before: dict[str, str],
        changed: bool = False,
        kept: Collection[str] = (),
        result: object = None,
        star: Collection[str] = (),
    ) -> tuple[list[Header], list[Any], list[Header]]:
        ns: Mapping[str, Any] = self.shell.user_ns
        if result is not None:  # the last expression's value: the notebook's _ and Out[n]
            names, ns = [*names, RESULT], ChainMap({RESULT: result}, self.shell.user_ns)
        return self.values.send_back(ns, names, before, changed, kept, star)

    def _summary(self) -> list[Header]:
        hidden = self.shell.user_ns_hidden
        summary = []
        for name, value in self.shell.user_ns.items():
            if name.startswith("_") or name in hidden or isinstance(value, ModuleType):
                continue
            nbytes = getattr(value, "nbytes", None)
            summary.append(
                {
                    "name": name,
                    "type": type(value).__name__,
                    "nbytes": nbytes if isinstance(nbytes, int) else sys.getsizeof(value),
                }
            )
            if len(summary) == _SUMMARY_LIMIT:
                break
        return summary

    def _done(
        self, ok: bool, error: Header | None = None, buffers: Sequence[Any] = (), **fields: Any
    ) -> None:
        self.values.prune(self.shell.user_ns)
        self.outbox.send(
            Op.DONE,
            buffers,
            ok=ok,
            error=error,
            held=list(self.values.cache),
            cells_run=self.cells_run,
            namespace=self._summary(),
            **fields,
        )

    # -- requests ------------------------------------------------------------------------------

    def exec_cell(self, header: Header, buffers: list[bytearray]) -> None:
        """Bind the inputs, run the code, send back the outputs (only if it succeeded)."""
        self.sources.sync(header.get("sources") or ())
        try:
            values, before = self._receive_inputs(header["inputs"], buffers)
        except SerializationError as exc:
            self._done(False, _InputError("SerializationError", str(exc)).error)
            return
        except _InputError as exc:
            self._done(False, exc.error)
            return
        ns = self.shell.user_ns
        ns.update(values)
        self.values.agreed.update(before)
        ids = {name: id(value) for name, value in ns.items()} if header.get("discover") else None
        shell = self.shell
        # The notebook's prompt number: IPython names the cell `Cell In[n]` after it.
        shell.execution_count = header.get("execution_count") or shell.execution_count
        self.cells_run += 1
        self.running = True
        try:
            # Stored like a local cell: `_` and Out work, and a trailing ';' silences the result.
            result = shell.run_remote_cell(header["code"], header.get("inline"))
        finally:
            self.running = False
        flush_streams()
        if not result.success:  # other tracebacks it showed went out as `error` frames
            error = shell.last_error or {
                "ename": "Error",
                "evalue": repr(result.error_in_exec),
                "traceback": [],
            }
            self._done(False, error)
            return
        outputs = list(header["outputs"])
        deleted = [name for name in header.get("deletes", []) if name not in ns]
        if ids is not None:  # also what the cell bound or deleted where the analysis cannot see
            bound, gone = rebound(ns, self.shell.user_ns_hidden, ids)
            outputs += bound
            deleted += [name for name in gone if name not in deleted]
        # Inputs still bound to the object they arrived as were changed in place, if at all: the
        # notebook changes its own object too, so that its other names for it see the change.
        kept = [name for name, value in values.items() if ns.get(name) is value]
        items, out_buffers, unreturnable = self._send_back(
            outputs, before, ids is not None, kept, result.result, header.get("star") or ()
        )
        if header.get("reprs"):  # a job run's record shows them: the runner never unpickles
            shown = {"reprs": short_reprs(ns, [item["name"] for item in items])}
        else:
            shown = {}
        self._done(
            True,
            None,
            out_buffers,
            outputs=items,
            unreturnable=unreturnable,
            deleted=deleted,
            **shown,
        )

    def pull(self, header: Header, buffers: list[bytearray]) -> None:
        """Send named values back as they are in the namespace."""
        absent = [name for name in header["names"] if name not in self.shell.user_ns]
        if absent:
            names = ", ".join(absent)
            self._done(False, _InputError("NameError", f"not defined on the worker: {names}").error)
            return
        items, out_buffers, unreturnable = self._send_back(header["names"], {})
        self._done(True, None, out_buffers, outputs=items, unreturnable=unreturnable, deleted=[])

    def _function(self, item: Header, parts: list[bytearray]) -> Any:
        """The function to call: sent along, or kept from an earlier call, or asked for."""
        if not parts and item["hash"] not in self.functions:
            self.outbox.send(Op.NEED, hashes=[item["hash"]])
            _, parts = self.inbox.blobs(self.reader)
        if parts:
            self.functions[item["hash"]] = loads(item["name"], parts)
        return self.functions[item["hash"]]

    def _resolve_call(self, header: Header, buffers: list[bytearray]) -> tuple[Any, list[Any]]:
        """The callable and its inputs (read here, in the thread that reads the socket)."""
        if "pulled" in header:  # big arguments sent by digest (`nbremote.wire.pulled`)
            fill(header["pulled"], buffers, HELD, self._ask_for)
        item = header["function"]
        fn, position = bound(self._function(item, buffers[: item["nbuf"]]), item, buffers)
        return fn, load_inputs(header, buffers[position:])

    def call(self, header: Header, buffers: list[bytearray]) -> None:
        """Call a function on a batch of inputs; send back a result or an error per input.

        A function that takes concurrent inputs (``@nr.concurrent``) runs on a pool thread, so
        that this loop goes on reading the next request meanwhile.
        """
        try:
            fn, inputs = self._resolve_call(header, buffers)
        except (SerializationError, PullFailed) as exc:
            error = _InputError(type(exc).__name__, str(exc)).error
            self.outbox.send(Op.DONE, ok=False, error=error)
            return
        concurrency = int(header.get("concurrency") or 1)
        if concurrency == 1:
            self._run_call(fn, inputs, header)
            return
        if self._threads is None:
            from concurrent.futures import ThreadPoolExecutor  # only for @nr.concurrent

            self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix="nbremote-input")
        request = (header["id"], bool(header.get("shm_ok")))
        self._threads.submit(self._run_guarded, fn, inputs, header, request)

    def _run_guarded(
        self, fn: Any, inputs: list[Any], header: Header, request: tuple[str, bool]
    ) -> None:
        """`_run_call` on a pool thread, where an exception would be lost, and its caller with
        it: it becomes the request's error ``done``."""
        try:
            self._run_call(fn, inputs, header, request)
        except Exception as exc:
            self.fail(header, exc)
            self.outbox.serve(None)

    def _run_call(
        self, fn: Any, inputs: list[Any], header: Header, request: tuple[str, bool] | None = None
    ) -> None:
        if request is not None:  # on a pool thread
            self.outbox.serve(*request)
        started = time.perf_counter()
        inline = request is None  # on the main thread: SIGINT may interrupt it
        self.running = self.running or inline
        try:
            batch = run_inputs(fn, inputs, header, self._send_item)
        except KeyboardInterrupt:
            cancelled = _InputError("CancelledError", "the call was cancelled").error
            self.outbox.send(Op.DONE, ok=False, error=cancelled)
            return
        finally:
            self.running = self.running and not inline
        flush_streams()
        parts, fields = pack(batch, header)
        # No namespace summary here: a call's round trip must stay in the microseconds.
        elapsed = time.perf_counter() - started
        self.outbox.send(Op.DONE, parts, ok=True, retire=batch.retire, elapsed=elapsed, **fields)
        if request is not None:
            self.outbox.serve(None)

    def _send_item(self, index: int, value: Any) -> None:
        """A generator's value, sent as it is yielded (`worker_patterns.stream`)."""
        payload = dumps(f"value #{index} it yielded", value)
        self._deferred = []
        try:
            flush_streams()  # what it printed before yielding comes first, as it would here
            self.outbox.send(Op.ITEM, payload.parts, index=index)
        finally:
            interrupted, self._deferred = self._deferred, None
        if interrupted:  # the caller closed its iterator (a cancel) while this was sent
            raise KeyboardInterrupt


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def main() -> None:
    """Entry point: ``python -P -m nbremote_runner.worker --fd N`` (a socket it inherits) or
    ``--connect PATH`` (a Unix socket it connects to: a container's, which inherits nothing)."""
    if "--connect" in sys.argv:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(sys.argv[sys.argv.index("--connect") + 1])
    else:
        sock = socket.socket(fileno=int(sys.argv[sys.argv.index("--fd") + 1]))
    sock.setblocking(True)
    outbox = Outbox(sock)
    log = os.fdopen(os.dup(2), "w", buffering=1)  # the worker's own errors go to the runner's log
    stdout, stderr = FrameStream(outbox, "stdout"), FrameStream(outbox, "stderr")
    capture_fd(1, stdout)
    capture_fd(2, stderr)
    sys.stdout, sys.stderr = stdout, stderr
    start_flusher([stdout, stderr])
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    started = time.perf_counter()
    try:
        worker = Worker(sock, outbox)
        if os.environ.get("NBREMOTE_WORKDIR"):  # the image's workdir(), under the worker's folder
            enter_workdir()
        worker.serve()
        if "nbremote.wire.classes" in sys.modules:  # the runner said stop: a clean stop
            outbox.serve("exit")  # the id of the @nr.exit() methods' Dict, Queue, Volume calls
            sys.modules["nbremote.wire.classes"].shutdown()
    except BaseException as exc:
        uptime = time.perf_counter() - started
        print(f"nbremote worker {os.getpid()} failed after {uptime:.1f}s: {exc!r}", file=log)
        raise


if __name__ == "__main__":
    main()
