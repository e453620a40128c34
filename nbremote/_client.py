"""Talking to a runner: JSON control calls over HTTP, and the frame channel of the hot path.

Both are plain blocking sockets driven from the caller's thread: a call, its output and its
answer never hop between threads, which keeps a warm round trip well under a millisecond and
makes output land in the cell that asked for it. An ``https://`` runner gets the same sockets
wrapped in TLS, verified against the system's CA bundle, or the PEM file ``NBREMOTE_CA_BUNDLE``
names (a team's private CA, say).

JSON calls send and read the models of `nbremote.wire.http` (`RunnerClient.call`): a request is
checked before it leaves, and an answer that does not fit its model (a runner of another version)
fails here, naming the field, rather than as a KeyError somewhere in the caller. An answer may
carry fields this client does not know: a newer runner adds fields, which is backward compatible,
so they are dropped here (the runner still refuses unknown fields in the requests it receives).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, TypeVar, overload
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from .errors import AuthenticationError, RunnerError, RunnerUnavailable
from .wire.codec import Buffer, FrameReader, Header, send_frame

CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 30.0
UPLOAD_CHUNK = 1 << 20
CA_BUNDLE_ENV = "NBREMOTE_CA_BUNDLE"

M = TypeVar("M", bound=BaseModel)


def _first_error(exc: ValidationError) -> str:
    """The first fault of a validation as the runner words it: ``field.path: message``."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{field}: {first['msg']}"


def build(model: type[M], **fields: Any) -> M:
    """A request body, checked before it is sent.

    Raises:
        RunnerError: a field does not fit: the ``ValidationError`` the runner would answer (422)
            with the same message, so a bad name reads the same whether caught here or there.

    Example:
        >>> build(CreateVolume, name="data").name  # doctest: +SKIP
        'data'
    """
    try:
        return model(**fields)
    except ValidationError as exc:
        raise RunnerError("ValidationError", _first_error(exc)) from None


def client_context() -> ssl.SSLContext:
    """A TLS context that verifies runners against ``NBREMOTE_CA_BUNDLE`` or the system CAs.

    Raises:
        RunnerUnavailable: ``NBREMOTE_CA_BUNDLE`` names a file that is not a readable PEM bundle.
    """
    bundle = os.environ.get(CA_BUNDLE_ENV) or None
    try:
        return ssl.create_default_context(cafile=bundle)
    except (OSError, ValueError) as exc:
        raise RunnerUnavailable(
            f"{CA_BUNDLE_ENV}={bundle} is not a readable PEM file of CA certificates ({exc}); "
            f"point it at the CA that signed the runner's certificate, or unset it"
        ) from None


class _HandshakeTimeout(TimeoutError):
    """The TCP connection was made but no TLS handshake followed (a plain-HTTP runner, say)."""


class _HTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection made by `RunnerClient._socket`: the handshake is bounded by
    ``CONNECT_TIMEOUT`` even where the request itself may wait forever."""

    def __init__(self, client: RunnerClient, timeout: float | None) -> None:
        super().__init__(client.host, client.port, timeout=timeout, context=client.tls)
        self._client = client

    def connect(self) -> None:
        self.sock = self._client._socket()
        self.sock.settimeout(self.timeout)


class Channel:
    """An upgraded connection to one session: frames both ways.

    A Ctrl-C in the middle of a frame being received is safe (the reader resumes); one in the
    middle of a frame being sent breaks the channel, which the owner then replaces.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = FrameReader(sock)
        self.broken = False
        # The digests of big buffers the other side keeps (a leased worker's: nbremote._direct).
        self.shm_held: set[str] | None = None
        self.ahead: dict[int, str] | None = None  # the next frame's digests, computed already

    @property
    def shm_dir(self) -> str | None:
        """The runner's shared-memory folder, once it is known to share this machine: big
        buffers go through it both ways, and a frame naming any other file is refused."""
        return self.reader.shm_dir

    @shm_dir.setter
    def shm_dir(self, value: str | None) -> None:
        self.reader.shm_dir = value

    def send(self, header: Header, buffers: Sequence[Buffer] = ()) -> None:
        """Send one frame."""
        try:
            ahead, self.ahead = self.ahead, None
            send_frame(self.sock, header, buffers, self.shm_dir, self.shm_held, ahead)
        except BaseException:
            self._forget_held()
            self.close()
            raise

    def _forget_held(self) -> None:
        """The connection broke (a worker refuses a digest it no longer keeps by closing it):
        what the other side keeps is no longer known."""
        if self.shm_held is not None:
            self.shm_held.clear()

    def recv(self) -> tuple[Header, list[bytearray]]:
        """Wait for the next frame."""
        try:
            return self.reader.read()
        except (OSError, ConnectionError):
            self._forget_held()
            self.close()
            raise

    def close(self) -> None:
        """Close the connection; the channel cannot be used again."""
        self.broken = True
        self.sock.close()


class RunnerClient:
    """A runner's HTTP API, one JSON call at a time.

    Args:
        url: the runner's base URL, e.g. ``http://127.0.0.1:8765`` or
            ``https://gpu-box.example.com:8765``.
        token: its bearer token, if it has one.
    """

    def __init__(self, url: str, token: str | None) -> None:
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self.timeout = REQUEST_TIMEOUT  # for each JSON call (a kernel's goodbye waits less)
        # Where the runner is now, if it may move (the embedded one restarts on a new port):
        # asked when a connection is refused, and the request goes there instead.
        self.find_runner: Callable[[], tuple[str, str | None]] | None = None
        self._point(url, token)

    def _point(self, url: str, token: str | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RunnerUnavailable(
                f"not a runner URL: {url!r} (expected http://HOST:PORT or https://HOST:PORT)"
            )
        self.url = url.rstrip("/")
        self.token = token
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = client_context() if parts.scheme == "https" else None

    def _moved(self) -> bool:
        """Whether the runner moved (`find_runner` found it elsewhere, or started it anew
        there): the client points at it from now on."""
        if self.find_runner is None:
            return False
        url, token = self.find_runner()
        if (url.rstrip("/"), token) == (self.url, self.token):
            return False
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._point(url, token)
        return True

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        if self.tls is not None:
            return _HTTPSConnection(self, timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _socket(self) -> socket.socket:
        """A new connection to the runner, TLS for https (each step within CONNECT_TIMEOUT).

        Raises:
            OSError: it cannot be made (`ssl.SSLError` for a refused certificate).
        """
        sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is None:
            return sock
        try:
            return self.tls.wrap_socket(sock, server_hostname=self.host)
        except TimeoutError as exc:
            sock.close()
            raise _HandshakeTimeout(f"no TLS handshake within {CONNECT_TIMEOUT:g} s") from exc
        except BaseException:
            sock.close()
            raise

    def _unreachable(self, exc: BaseException) -> RunnerUnavailable:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return RunnerUnavailable(
                f"the runner at {self.url} presented a certificate this machine does not trust "
                f"({exc.verify_message}). If a private CA signed it, set {CA_BUNDLE_ENV} to "
                "that CA's certificate (a PEM file); the URL's host must be a name the "
                "certificate holds"
            )
        if isinstance(exc, ssl.SSLError | _HandshakeTimeout):
            return RunnerUnavailable(
                f"TLS with the runner at {self.url} failed ({exc}). Does it serve https "
                "(started with --certfile and --keyfile)? If not, use an http:// URL"
            )
        return RunnerUnavailable(
            f"cannot reach the runner at {self.url} ({exc}). Is it running? Start one with "
            "`nbremote runner`, or point NBREMOTE_URL (or %remote connect) at a running one"
        )

    def _check(self, status: int, body: bytes) -> None:
        if status < 400:
            return
        try:
            error = json.loads(body)["error"]
            kind, message = error["type"], error["message"]
        except (ValueError, KeyError, TypeError):
            kind, message = f"HTTP {status}", body[:200].decode(errors="replace")
        if status == 401:
            raise AuthenticationError(
                f"the runner at {self.url} refused the token ({message}); set NBREMOTE_TOKEN or "
                "use %remote connect URL --token TOKEN with the token the runner printed"
            )
        raise RunnerError(kind, message)

    def _exchange(self, method: str, path: str, body: dict[str, Any] | BaseModel | None) -> bytes:
        """Send one JSON request on the kept-alive connection; the answer's body.

        Raises:
            RunnerUnavailable, AuthenticationError, RunnerError: as for `request`.
        """
        if isinstance(body, BaseModel):
            body = body.model_dump(mode="json")
        payload = json.dumps(body).encode() if body is not None else None
        with self._lock:
            retried = moved = False
            while True:  # a kept-alive connection may have been closed meanwhile: once more
                fresh = self._conn is None
                conn = self._conn = self._conn or self._connection(self.timeout)
                try:
                    conn.request(method, path, payload, self._headers())
                    response = conn.getresponse()
                    data = response.read()
                    break
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    self._conn = None
                    # Refused, or a new connection reset (a killed runner's listener still
                    # queued it as it closed): no live runner is there. If one runs elsewhere
                    # now, the old one is gone, so the request may go to the new one.
                    gone = (
                        (ConnectionRefusedError, ConnectionResetError)
                        if fresh
                        else ConnectionRefusedError
                    )
                    if isinstance(exc, gone) and not moved:
                        moved = True
                        if self._moved():
                            continue
                    final = ConnectionRefusedError | TimeoutError | ssl.SSLCertVerificationError
                    if retried or isinstance(exc, final):
                        raise self._unreachable(exc) from exc
                    retried = True
        self._check(response.status, data)
        return data

    def request(
        self, method: str, path: str, body: dict[str, Any] | BaseModel | None = None
    ) -> Any:
        """Call the API untyped: the decoded JSON answer (None for 204). For documents no
        model describes (``/openapi.json``) and for tests that send what a client never would;
        the client's own calls go through `call`.

        Raises:
            RunnerUnavailable: connection refused, reset or timed out.
            AuthenticationError: the token was refused.
            RunnerError: any other error answer.
        """
        data = self._exchange(method, path, body)
        return json.loads(data) if data else None

    @overload
    def call(
        self, method: str, path: str, body: BaseModel | None = None, response: None = None
    ) -> None: ...

    @overload
    def call(
        self, method: str, path: str, body: BaseModel | None = None, *, response: type[M]
    ) -> M: ...

    def call(
        self,
        method: str,
        path: str,
        body: BaseModel | None = None,
        response: type[M] | None = None,
    ) -> M | None:
        """Call the API with a model as the body; the answer read as ``response`` (None: the
        answer's body, if any, is not read: a 204).

        Example:
            >>> client.call("GET", "/api/v1/gpus", response=ListGpusResponse)  # doctest: +SKIP

        Raises:
            RunnerUnavailable, AuthenticationError: as for `request`.
            RunnerError: an error answer, or (``UnexpectedAnswer``) one that does not fit
                ``response``: a runner of another nbremote version.
        """
        data = self._exchange(method, path, body)
        return None if response is None else self.read(response, data, f"{method} {path}")

    def read(self, model: type[M], data: bytes, what: str) -> M:
        """An answer's body as ``model``.

        Fields ``model`` does not know, at any depth, are dropped: a newer runner may add some.

        Raises:
            RunnerError: (``UnexpectedAnswer``) a field is missing or of the wrong type, named.
        """
        try:
            # The models forbid extra fields, for the runner's sake (a typo in a request is a
            # 422); an answer overrides that here, the one place answers are read.
            return model.model_validate_json(data, extra="ignore")
        except ValidationError as exc:
            raise RunnerError(
                "UnexpectedAnswer",
                f"the runner at {self.url} answered {what} with a document that is not a "
                f"{model.__name__} ({_first_error(exc)}): is it another version of nbremote "
                "than this client's? Install the same version on both sides",
            ) from None

    def stream(self, path: str, method: str = "GET") -> Iterator[bytes]:
        """The body of an answer as it arrives (logs that keep coming), on a connection of its own.

        Raises:
            RunnerUnavailable, AuthenticationError, RunnerError: as for `request`.
        """
        conn = self._connection(None)
        try:
            try:
                conn.request(method, path, headers=self._headers())
                response = conn.getresponse()
            except OSError as exc:
                raise self._unreachable(exc) from exc
            if response.status >= 400:
                self._check(response.status, response.read())
            while chunk := response.read1(65536):
                yield chunk
        finally:
            conn.close()

    def upload(
        self,
        path: str,
        file: IO[bytes],
        size: int,
        progress: Callable[[int], object],
        response: type[M],
    ) -> M:
        """POST ``size`` bytes read from ``file`` as they are read (never whole in memory), on
        a connection of its own; the answer read as ``response``.

        Raises:
            RunnerUnavailable, AuthenticationError, RunnerError: as for `request`.
        """
        conn = self._connection(None)
        try:
            conn.putrequest("POST", path)
            headers = {**self._headers(), "Content-Type": "application/octet-stream"}
            for key, value in {**headers, "Content-Length": str(size)}.items():
                conn.putheader(key, value)
            conn.endheaders()
            left = size
            # The runner refused early (its answer follows).
            with contextlib.suppress(ConnectionError, ssl.SSLEOFError):
                while left:
                    chunk = file.read(min(UPLOAD_CHUNK, left))
                    if not chunk:
                        raise ValueError(f"the file ended {left} bytes short of its size")
                    conn.send(chunk)
                    left -= len(chunk)
                    progress(len(chunk))
            answer = conn.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc) from exc
        finally:
            conn.close()
        self._check(answer.status, data)
        return self.read(response, data, f"POST {path}")

    def close(self) -> None:
        """Close the kept-alive HTTP connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> RunnerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open_channel(self, session_id: str) -> Channel:
        """Upgrade a new connection to the session's frame channel."""
        try:
            try:  # under TLS an SSLSocket, which carries frames as a socket does
                sock = self._socket()
            except ConnectionRefusedError:
                if not self._moved():
                    raise
                sock = self._socket()
        except OSError as exc:
            raise self._unreachable(exc) from exc
        lines = [
            f"GET /api/v1/sessions/{session_id}/channel HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Connection: Upgrade",
            "Upgrade: nbremote-frames",
            *(f"{key}: {value}" for key, value in self._headers().items()),
        ]
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError("the runner closed the connection")
                head += chunk
        except OSError as exc:
            sock.close()
            raise self._unreachable(exc) from exc
        head, _, rest = head.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            sock.close()
            self._check(status, rest)
            raise RunnerError(f"HTTP {status}", "the runner did not upgrade the channel")
        sock.settimeout(None)  # a cell may run for hours
        channel = Channel(sock)
        channel.reader.feed(rest)
        return channel
