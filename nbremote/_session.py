"""This kernel's session on a runner: one channel, requests on it, what its workers hold.

Every kernel (every Python process) has one `RemoteSession` with a random id: a kernel restart
is a new session, and so a new remote namespace, just as the local one is new. The kernel says
goodbye as its process exits (an ``atexit`` hook, one short request): the runner ends the session
and stops its workers at once. A kernel that dies without one (``kill -9``) leaves its session
detached for the runner's grace, and a new kernel may take it over with `RemoteSession.attach`
(``%remote attach``). Nothing of this touches the hot path: the channel the kernel holds open is
what the runner watches (`nbremote_runner.sessions` says how).
"""

from __future__ import annotations

import atexit
import os
import platform
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from ._client import Channel, RunnerClient
from ._direct import Leases
from ._namespace import Packed, pulls
from ._reconnect import NotSent, alive, connection_errors, drop_connections, forget_remote, recover
from ._sessions import check_python, say_goodbye
from ._stdin import answer_input
from .errors import RunnerError, VersionMismatch
from .wire.codec import Buffer, Header
from .wire.http import CreateSession, DescribeRunner, DescribeSession
from .wire.images import DescribeImage
from .wire.op_checks import problem
from .wire.ops import Op
from .wire.shm import usable

OnFrame = Callable[[Header, list[bytearray]], None]
Frame = tuple[Header, list[bytearray]]


@dataclass
class Request:
    """One request for the channel: its frame, the inputs a ``need`` may ask for, and a tag.

    Args:
        header: the frame's header (its ``id`` is set when it is sent).
        buffers: the frame's buffers.
        packed: what a ``need`` from the worker is answered from.
        spec_key: for cell requests, the worker spec whose held hashes the answer updates.
        tag: the caller's own bookkeeping (a map's batch, say).
    """

    header: Header
    buffers: Sequence[Buffer] = ()
    packed: Packed | None = None
    spec_key: str | None = None
    tag: Any = None
    image: Any = None  # an nbremote.Image the runner must know before this request


class RemoteSession:
    """A kernel's session on one runner.

    Args:
        client: the runner's API.
        notebook: what to call this session in listings (the notebook's path, if known).
    """

    def __init__(
        self, client: RunnerClient, notebook: str | None = None, embedded: bool = False
    ) -> None:
        self.client = client
        self.notebook = notebook
        # On the embedded runner, workers run this kernel's interpreter (`WorkerSpec.python`).
        self.embedded = embedded
        self.id = uuid.uuid4().hex
        self.client_id = uuid.uuid4().hex  # this process: the one its session belongs to
        self._goodbye_pid: int | None = None  # the process that will say goodbye, once opened
        self.worker_python: str | None = None
        # spec key -> (worker id, hashes that worker holds), as its last answer said
        self._held: dict[str, tuple[str, set[str]]] = {}
        self._channel: Channel | None = None
        self.sent_functions: set[str] = set()  # function hashes sent to this session's workers
        self._pending: dict[str, Request] = {}  # request id -> request awaiting its done
        self._stash: dict[str, deque[Frame]] = {}  # frames read for another waiting request
        self.leases = Leases(self, Request)  # workers leased to this kernel (`nbremote._direct`)
        # Re-entrant: a call made inside the loop over a map's results shares the channel.
        self._lock = threading.RLock()

    def _open(self) -> Channel:
        if self._channel is not None:
            if alive(self._channel):
                return self._channel
            recover(self)  # the runner went away since the last request (`nbremote._reconnect`)
        described = self._create()
        if not self.embedded:  # else its workers run this kernel's own Python
            check_python(described.python)
        self.worker_python = described.python
        self._channel = self.client.open_channel(self.id)
        self._channel.shm_dir = usable(described.shm_dir, described.host)
        return self._channel

    def _create(self, session_id: str | None = None, attach: bool = False) -> DescribeSession:
        """Open this kernel's session on the runner (created if new), or with ``attach`` take
        over ``session_id``. A session another kernel took over is left to it: this kernel goes
        on in a new one, and says so."""
        body = CreateSession(
            id=session_id or self.id, notebook=self.notebook, client=self.client_id, attach=attach
        )
        try:
            described = self.client.call("POST", "/api/v1/sessions", body, response=DescribeSession)
        except RunnerError as exc:
            if exc.kind != "SessionTaken" or attach:
                raise
            print(f"nbremote: {exc.message}", file=sys.stderr)
            forget_remote(self, uuid.uuid4().hex)
            return self._create()
        if self._goodbye_pid is None:
            self._goodbye_pid = os.getpid()
            atexit.register(self._goodbye)
        return described

    def attach(self, session_id: str) -> DescribeSession:
        """Take over the session ``session_id`` of a kernel that is gone, with its live remote
        namespace; this kernel's own session, if it had one, ends.

        Raises:
            RunnerError: no such session (``NotFound``), or its kernel is still there
                (``SessionTaken``).
            VersionMismatch: its workers run another Python than this kernel.
        """
        with self._lock, connection_errors(self):
            path = f"/api/v1/sessions/{session_id}"
            existing = self.client.call("GET", path, response=DescribeSession)
            if not self.embedded:  # else its workers run this kernel's own Python
                check_python(existing.python)
            opened = self._goodbye_pid is not None
            described = self._create(session_id, attach=True)
            previous = self.id
            forget_remote(self, session_id)
            if opened and previous != session_id:
                say_goodbye(self.client, previous, self.client_id)
            return described

    def _goodbye(self) -> None:
        """At exit: end this kernel's session on the runner now (never from a forked child)."""
        if self._goodbye_pid == os.getpid():
            say_goodbye(self.client, self.id, self.client_id)

    def held(self, spec_key: str) -> set[str]:
        """Content hashes the worker for this spec held after its last request."""
        return self._held.get(spec_key, ("", set()))[1]

    def ensure_image(self, image: Any, name: str | None = None) -> None:
        """Make the runner know ``image`` (once per image object and session), and check that
        its Python is this kernel's.

        Raises:
            RunnerError: the runner refused it (a Python it does not have, say).
            VersionMismatch: its Python is not this kernel's.
        """
        if self.id in image._registered:
            return
        if image.steps:
            body = image.create_request(name)
            described = self.client.call("POST", "/api/v1/images", body, response=DescribeImage)
        else:
            path = f"/api/v1/images/{image.object_id}"
            described = self.client.call("GET", path, response=DescribeImage)
        python = described.python_version
        if python is not None:
            local = ".".join(platform.python_version_tuple()[:2])
            if python != local:
                raise VersionMismatch(
                    f"image {image.object_id} runs Python {python} but this kernel runs {local}; "
                    "pickled code only travels between equal minor versions: use "
                    "Image.debian_slim() (the kernel's version) or a kernel on Python " + python
                )
        image._registered.add(self.id)

    def _send(self, channel: Channel, request: Request) -> str:
        if request.image is not None:
            self.ensure_image(request.image)
        # 32 hex digits, as uuid4().hex, in a fifth of its time (one hot-path call each).
        request_id = request.header["id"] = os.urandom(16).hex()
        if request.header["op"] == Op.PROMOTE:  # the exec it carries goes by the same id
            request.header["cell"]["id"] = request_id
        # Whether the worker may answer through shared memory (not for spawns: their result
        # may be collected by another process, and a mapped file can be taken only once).
        request.header["shm_ok"] = channel.shm_dir is not None and request.header["op"] != Op.SPAWN
        self._pending[request_id] = request
        try:
            channel.send(request.header, request.buffers)
        except OSError as exc:  # half a frame is no request: the runner never saw it
            del self._pending[request_id]
            raise NotSent(str(exc)) from exc
        return request_id

    def _next_done(
        self,
        channel: Channel,
        wanted: set[str],
        on_frame: OnFrame,
        until: tuple[str, ...] = (Op.DONE,),
    ) -> Frame:
        """Serve frames until a ``done`` (or another op of ``until``) for one of ``wanted``;
        frames of other pending requests (a call made while iterating a map, say) are kept for
        them.

        Raises:
            RunnerError: a frame for one of ``wanted`` cannot be read (a field missing, or of
                the wrong type); that request is cancelled, the session goes on.
        """
        while True:
            stash = self._stash
            stashed = next((rid for rid in wanted if stash.get(rid)), None) if stash else None
            if stashed is not None:
                frame, buffers = self._stash[stashed].popleft()
            else:
                frame, buffers = channel.recv()
            request_id = frame.get("id", "")
            request = self._pending.get(request_id) if isinstance(request_id, str) else None
            if request is None:
                continue  # a cancelled request's late frames (or one for no request)
            if request_id not in wanted:
                self._stash.setdefault(request_id, deque()).append((frame, buffers))
                continue
            wrong = problem(frame)
            if wrong is not None:
                raise self._refuse(channel, request_id, frame, wrong)
            if frame["op"] in until:
                if frame["op"] == Op.DONE:
                    self._settle(request_id, request, frame)
                return frame, buffers
            elif frame["op"] == Op.NEED and request.packed is not None:
                blobs, blob_buffers = request.packed.blobs(frame["hashes"])
                channel.send({**blobs, "id": request_id}, blob_buffers)
            elif frame["op"] == Op.INPUT:  # a cell's input(): asked with this kernel's own
                channel.send(answer_input(frame, request_id))
            else:
                on_frame(frame, buffers)

    def _refuse(self, channel: Channel, request_id: str, frame: Header, wrong: str) -> RunnerError:
        """Give up a request whose answer cannot be read: cancel it, and say why."""
        self._pending.pop(request_id, None)
        self._stash.pop(request_id, None)
        if not channel.broken:
            channel.send({"op": Op.CANCEL, "id": request_id})
        return RunnerError(
            "InvalidFrame",
            f"a {frame.get('op')!r} frame answering this request cannot be read ({wrong}): is "
            "the runner (or its worker) on a version of nbremote this kernel does not speak? The "
            "request was cancelled; upgrade the older of the two",
        )

    def _settle(self, request_id: str, request: Request, done: Header) -> None:
        """Forget a finished request; note what its worker holds now."""
        del self._pending[request_id]
        self._stash.pop(request_id, None)
        if "worker" in done and request.spec_key is not None:
            self._held[request.spec_key] = (done["worker"], set(done.get("held", [])))

    def call(self, request: Request, on_frame: OnFrame) -> Frame:
        """Send a request and serve it until its ``done``, which is returned.

        Output frames go to ``on_frame`` as they arrive; a ``need`` is answered from the
        request's ``packed`` inputs. Ctrl-C interrupts the remote code (the worker survives);
        a second Ctrl-C cancels it (its worker is killed if it ignored the first); a third
        abandons the request.
        """
        with self._lock, connection_errors(self):
            try:
                return self._call_once(request, on_frame)
            except NotSent:  # the channel broke as it was sent: a new one, once
                return self._call_once(request, on_frame)

    def _call_once(self, request: Request, on_frame: OnFrame) -> Frame:
        """One try at `call` (`NotSent`: the channel broke before the request was sent)."""
        channel = self._open()
        if request.header["op"] in (Op.CALL, Op.SPAWN):
            done = self.leases.call(channel, request, on_frame)
            if done is not None:
                return done
            if request.packed is not None and pulls(request.header, channel.shm_dir):
                header, buffers = request.packed.withhold(request.header, request.buffers)
                request = replace(request, header=header, buffers=buffers)
        request_id = self._send(channel, request)
        interrupts = 0
        while True:
            try:
                return self._next_done(channel, {request_id}, on_frame)
            except KeyboardInterrupt:
                interrupts += 1
                if interrupts > 2:  # the runner has not answered the cancel: let go
                    self._abandon(channel, [request_id])
                    raise
                # A second Ctrl-C cancels: the runner kills a worker that ignored the first,
                # and its done says so.
                op = Op.INTERRUPT if interrupts == 1 else Op.CANCEL
                channel.send({"op": op, "id": request_id})

    def stream(
        self, requests: Iterator[Request], window: int, on_frame: OnFrame
    ) -> Iterator[tuple[Request, Frame]]:
        """Keep up to ``window`` requests in flight; yield each with its ``done`` as it comes.

        Requests are drawn from the iterator only as slots free up, so neither a huge input
        iterator nor its results are ever held whole. Closing the generator (or an error in it,
        or Ctrl-C) cancels the requests still in flight.
        """
        with self._lock, connection_errors(self):
            channel = self._open()
            self.leases.end_all()  # a map may want every worker of the pool
            in_flight: dict[str, Request] = {}
            try:
                for request in requests:
                    in_flight[self._send(channel, request)] = request
                    while len(in_flight) >= window:
                        yield self._finish_one(channel, in_flight, on_frame)
                while in_flight:
                    yield self._finish_one(channel, in_flight, on_frame)
            except BaseException:
                self._abandon(channel, list(in_flight))
                raise

    def _finish_one(
        self, channel: Channel, in_flight: dict[str, Request], on_frame: OnFrame
    ) -> tuple[Request, Frame]:
        frame = self._next_done(channel, set(in_flight), on_frame)
        return in_flight.pop(frame[0]["id"]), frame

    def notify(self, header: Header) -> None:
        """Send a frame that has no answer (``cancel``)."""
        with self._lock, connection_errors(self):
            self._open().send({**header})

    def _abandon(self, channel: Channel, request_ids: list[str]) -> None:
        """Cancel requests on the runner and forget them here."""
        for request_id in request_ids:
            self._pending.pop(request_id, None)
            self._stash.pop(request_id, None)
            if not channel.broken:
                channel.send({"op": Op.CANCEL, "id": request_id})

    def describe(self) -> DescribeSession:
        """The runner's description of this session (workers, their memory, their objects)."""
        self._open()
        return self.client.call("GET", f"/api/v1/sessions/{self.id}", response=DescribeSession)

    def stop_app(self, app: str) -> None:
        """Stop this session's workers of ``app`` (running their ``@nr.exit()`` methods)."""
        with self._lock:
            self.leases.end_all()
            self.client.call("DELETE", f"/api/v1/sessions/{self.id}/workers?app={quote(app)}")

    def reset(self) -> None:
        """Stop this session's workers: the remote namespace starts empty again."""
        with self._lock:
            self.leases.end_all()
            if self._channel is not None:
                with connection_errors(self):
                    self._open()  # a runner that went away is found first (and says so)
                self.client.call("DELETE", f"/api/v1/sessions/{self.id}/workers")
            self._held.clear()

    def close(self) -> None:
        """Close the connections (the runner drops the session after its grace period)."""
        drop_connections(self)
        self.client.close()


_current: RemoteSession | None = None


def notebook_name() -> str | None:
    """The notebook's path if Jupyter told the kernel (``JPY_SESSION_NAME``)."""
    return os.environ.get("JPY_SESSION_NAME")


def current_session() -> RemoteSession:
    """This kernel's session, on the configured runner or the embedded one (started if need be)."""
    global _current
    if _current is None:
        from ._config import runner_client

        client, embedded = runner_client()
        _current = RemoteSession(client, notebook_name(), embedded)
    return _current


def connect(url: str, token: str | None) -> RemoteSession:
    """Point this kernel at another runner (the old session's workers are left to expire)."""
    global _current
    client = RunnerClient(url, token)
    try:
        # Fail now, with the reason, if it is wrong.
        client.call("GET", "/api/v1/runner", response=DescribeRunner)
    except BaseException:
        client.close()
        raise
    if _current is not None:
        _current.close()
    _current = RemoteSession(client, notebook_name())
    return _current
