"""This kernel's session on a runner: one channel, requests on it, what its workers hold.

Every kernel (every Python process) has one `RemoteSession` with a random id: a kernel restart
is a new session, and so a new remote namespace, just as the local one is new.
"""

from __future__ import annotations

import os
import platform
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from ._client import Channel, RunnerClient
from ._namespace import Packed
from ._protocol import Buffer, Header
from .errors import RunnerUnavailable, VersionMismatch

OnFrame = Callable[[Header, list[bytearray]], None]


def check_python(worker_python: str, local_python: str | None = None) -> None:
    """Refuse to exchange pickles with a worker on another Python minor version.

    Raises:
        VersionMismatch: saying which versions differ and what to do.
    """
    local_python = local_python or platform.python_version()
    if worker_python.split(".")[:2] != local_python.split(".")[:2]:
        raise VersionMismatch(
            f"the runner's workers run Python {worker_python} but this kernel runs "
            f"{local_python}; pickled code only travels between equal minor versions. Start the "
            f"runner with Python {'.'.join(local_python.split('.')[:2])}, or use a kernel on "
            f"Python {'.'.join(worker_python.split('.')[:2])}"
        )


class RemoteSession:
    """A kernel's session on one runner.

    Args:
        client: the runner's API.
        notebook: what to call this session in listings (the notebook's path, if known).
    """

    def __init__(self, client: RunnerClient, notebook: str | None = None) -> None:
        self.client = client
        self.notebook = notebook
        self.id = uuid.uuid4().hex
        self.worker_python: str | None = None
        # spec key -> (worker id, hashes that worker holds), as its last answer said
        self._held: dict[str, tuple[str, set[str]]] = {}
        self._channel: Channel | None = None
        self._lock = threading.Lock()

    def _open(self) -> Channel:
        if self._channel is not None and not self._channel.broken:
            return self._channel
        described = self.client.request(
            "POST", "/api/v1/sessions", {"id": self.id, "notebook": self.notebook}
        )
        check_python(described["python"])
        self.worker_python = described["python"]
        self._channel = self.client.open_channel(self.id)
        return self._channel

    def held(self, spec_key: str) -> set[str]:
        """Content hashes the worker for this spec held after its last request."""
        return self._held.get(spec_key, ("", set()))[1]

    def call(
        self,
        header: Header,
        buffers: Sequence[Buffer],
        on_frame: OnFrame,
        packed: Packed | None = None,
        spec_key: str = "",
    ) -> tuple[Header, list[bytearray]]:
        """Send a request and serve it until its ``done``, which is returned.

        Output frames go to ``on_frame`` as they arrive; a ``need`` is answered from ``packed``.
        Ctrl-C interrupts the remote code (the worker survives); a second one abandons the
        request.
        """
        with self._lock:
            channel = self._open()
            request_id = header["id"] = uuid.uuid4().hex
            channel.send(header, buffers)
            try:
                done, out = self._serve(channel, request_id, on_frame, packed)
            except (ConnectionError, OSError) as exc:
                raise RunnerUnavailable(
                    f"lost the connection to the runner at {self.client.url} while waiting ({exc})"
                ) from exc
            if "worker" in done:
                self._held[spec_key] = (done["worker"], set(done.get("held", [])))
            return done, out

    def _serve(
        self, channel: Channel, request_id: str, on_frame: OnFrame, packed: Packed | None
    ) -> tuple[Header, list[bytearray]]:
        interrupted = False
        while True:
            try:
                frame, buffers = channel.recv()
            except KeyboardInterrupt:
                if interrupted:
                    channel.close()
                    raise
                interrupted = True
                channel.send({"op": "interrupt", "id": request_id})
                continue
            if frame.get("id") != request_id:
                continue
            op = frame["op"]
            if op == "done":
                return frame, buffers
            if op == "need" and packed is not None:
                blobs, blob_buffers = packed.blobs(frame["hashes"])
                channel.send({**blobs, "id": request_id}, blob_buffers)
            else:
                on_frame(frame, buffers)

    def describe(self) -> Any:
        """The runner's description of this session (workers, their memory, their objects)."""
        self._open()
        return self.client.request("GET", f"/api/v1/sessions/{self.id}")

    def reset(self) -> None:
        """Stop this session's workers: the remote namespace starts empty again."""
        with self._lock:
            if self._channel is not None:
                self.client.request("DELETE", f"/api/v1/sessions/{self.id}/workers")
            self._held.clear()

    def close(self) -> None:
        """Close the connections (the runner drops the session after its grace period)."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        self.client.close()


_current: RemoteSession | None = None


def notebook_name() -> str | None:
    """The notebook's path if Jupyter told the kernel (``JPY_SESSION_NAME``)."""
    return os.environ.get("JPY_SESSION_NAME")


def current_session() -> RemoteSession:
    """This kernel's session, on the configured runner or the embedded one (started if need be)."""
    global _current
    if _current is None:
        from ._config import resolve_runner

        url, token = resolve_runner()
        _current = RemoteSession(RunnerClient(url, token), notebook_name())
    return _current


def connect(url: str, token: str | None) -> RemoteSession:
    """Point this kernel at another runner (the old session's workers are left to expire)."""
    global _current
    client = RunnerClient(url, token)
    try:
        client.request("GET", "/api/v1/runner")  # fail now, with the reason, if it is wrong
    except BaseException:
        client.close()
        raise
    if _current is not None:
        _current.close()
    _current = RemoteSession(client, notebook_name())
    return _current
