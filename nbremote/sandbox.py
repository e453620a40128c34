"""``nr.Sandbox``: a container on the runner in which code runs commands, as Modal's sandboxes.

A sandbox is created on the runner (`nbremote.wire.sandboxes`) and lives until its entrypoint
exits, it is terminated, or its timeout; each ``exec`` starts a command in it, isolated as a
worker is (on the process backend: bubblewrap, the runner's files out of sight, its own ``/tmp``
and working directory shared by its commands). Output is read by long polls, so lines arrive as
they are written; stdin is written with ``write`` and sent by ``drain``, as in Modal.

Example::

    sb = nr.Sandbox.create(app=app, image=nr.Image.debian_slim().pip_install("numpy"))
    p = sb.exec("python", "-c", "import numpy; print(numpy.__version__)")
    print(p.stdout.read())
    sb.terminate()
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any, Literal

from . import _session
from ._client import RunnerClient
from .errors import NbremoteError
from .gpu import parse
from .secret import Secret, spec_secrets
from .volume import mounts_of
from .wire.sandboxes import (
    CreateSandbox,
    DescribeSandbox,
    DescribeSandboxProcess,
    ExecSandbox,
    Output,
    ReadOutput,
    SandboxFile,
    WaitProcess,
    WriteStdin,
)

API = "/api/v1/sandboxes"
POLL = 10.0  # seconds one read or wait may wait on the runner for news
MODES = ("r", "rb", "w", "wb", "a", "ab")


def _client() -> RunnerClient:
    return _session.current_session().client


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class StreamReader:
    """A process's stdout or stderr: ``read()`` all of it, or iterate over its lines as they
    are written. Text unless the sandbox was told ``text=False``."""

    def __init__(self, path: str, stream: Literal["stdout", "stderr"], text: bool) -> None:
        self._path = path
        self._stream = stream
        self._text = text
        self._offset = 0
        self._eof = False
        self._own: RunnerClient | None = None

    def _poll(self) -> bytes:
        if self._own is None:  # its own connection: a long poll must not hold up other calls
            client = _client()
            self._own = RunnerClient(client.url, client.token)
        answer = self._own.call(
            "POST",
            f"{self._path}/output",
            ReadOutput(stream=self._stream, offset=self._offset, wait=POLL),
            response=Output,
        )
        data = base64.b64decode(answer.data)
        self._offset = answer.offset + len(data)
        self._eof = answer.eof
        if self._eof:
            self._own.close()
            self._own = None
        return data

    def _chunks(self) -> Iterator[bytes]:
        while not self._eof:
            data = self._poll()
            if data:
                yield data

    def _out(self, data: bytes) -> Any:
        return data.decode(errors="replace") if self._text else data

    def read(self) -> Any:
        """Everything from here to the end of the stream (waits for the process to close it)."""
        return self._out(b"".join(self._chunks()))

    def __iter__(self) -> Iterator[Any]:
        """Its lines (newline included), each as soon as it is complete."""
        pending = b""
        for chunk in self._chunks():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield self._out(line + b"\n")
        if pending:
            yield self._out(pending)


class StreamWriter:
    """A process's stdin: ``write`` buffers, ``write_eof`` closes after the buffer, ``drain``
    sends (Modal's semantics)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._buffer = bytearray()
        self._eof = False

    def write(self, data: str | bytes | bytearray) -> None:
        if self._eof:
            raise NbremoteError("stdin was closed with write_eof(); nothing more can be written")
        self._buffer += data.encode() if isinstance(data, str) else data

    def write_eof(self) -> None:
        self._eof = True

    def drain(self) -> None:
        """Send what was written (and the end of input, after write_eof)."""
        data, self._buffer = bytes(self._buffer), bytearray()
        body = WriteStdin(data=_b64(data), eof=self._eof)
        _client().call("POST", f"{self._path}/stdin", body, response=DescribeSandboxProcess)


class ContainerProcess:
    """A command running in a sandbox (``Sandbox.exec``).

    Attributes:
        stdout, stderr: `StreamReader`s. stdin: a `StreamWriter`.
    """

    def __init__(self, sandbox_id: str, process_id: str, text: bool = True) -> None:
        self.object_id = process_id
        self._path = f"{API}/{sandbox_id}/processes/{process_id}"
        self.stdout = StreamReader(self._path, "stdout", text)
        self.stderr = StreamReader(self._path, "stderr", text)
        self.stdin = StreamWriter(self._path)
        self._returncode: int | None = None

    def _wait(self, seconds: float) -> int | None:
        if self._returncode is None:
            answer = _client().call(
                "POST",
                f"{self._path}/wait",
                WaitProcess(wait=seconds),
                response=DescribeSandboxProcess,
            )
            self._returncode = answer.returncode
        return self._returncode

    def poll(self) -> int | None:
        """Its exit code if it has ended, else None."""
        return self._wait(0)

    def wait(self) -> int:
        """Wait for it to end; its exit code (128 + N when killed by signal N)."""
        while (code := self._wait(POLL)) is None:
            pass
        return code

    @property
    def returncode(self) -> int | None:
        """Its exit code, once `wait` or `poll` saw it end."""
        return self._returncode


class Sandbox:
    """A sandbox on the runner (see the module's docstring); made by `create` or `from_id`."""

    def __init__(self, described: DescribeSandbox) -> None:
        self.object_id = described.id
        self._described = described
        self._path = f"{API}/{described.id}"
        main = ContainerProcess(described.id, "main") if described.command else None
        self._main = main
        if main is not None:
            self.stdout, self.stderr, self.stdin = main.stdout, main.stderr, main.stdin

    @classmethod
    def create(
        cls,
        *command: str,
        app: Any = None,
        image: Any = None,
        timeout: float = 300.0,
        workdir: str | None = None,
        gpu: Any = None,
        volumes: dict[str, Any] | None = None,
        secrets: list[Secret] | None = None,
        env: dict[str, str] | None = None,
        block_network: bool = False,
    ) -> Sandbox:
        """Create a sandbox running ``command`` (none: it waits for ``exec`` until terminated or
        its ``timeout`` in seconds).

        Args:
            app: the app it belongs to (Modal asks for one; here it names it in listings).
            image: an `nr.Image` whose environment it runs in (its venv first on PATH).
            workdir: the working directory of its commands (default ``/sandbox``).
            volumes: ``{path: nr.Volume}`` mounted there, committed when it ends.
            secrets: ``nr.Secret``s in its environment.
            block_network: no network but a loopback of its own.

        Example:
            >>> sb = nr.Sandbox.create("sleep", "60", timeout=120)  # doctest: +SKIP
        """
        session = _session.current_session()
        if image is not None:
            session.ensure_image(image)
        names, inline = spec_secrets(secrets or ())
        inline_env = {k: v for values in inline.values() for k, v in values.items()}
        request = CreateSandbox(
            command=[str(part) for part in command],
            app=getattr(app, "name", app),
            image=image.object_id if image is not None else None,
            timeout=timeout,
            workdir=workdir,
            gpu=parse(gpu, "Sandbox.create"),
            volumes=mounts_of(volumes, "Sandbox.create"),
            secrets=[name for name in names if name not in inline],
            env=inline_env | (env or {}),
            block_network=block_network,
        )
        return cls(session.client.call("POST", API, request, response=DescribeSandbox))

    @classmethod
    def from_id(cls, sandbox_id: str) -> Sandbox:
        """The sandbox with this id (``sb.object_id``), from any kernel of the runner."""
        return cls(_client().call("GET", f"{API}/{sandbox_id}", response=DescribeSandbox))

    def exec(
        self,
        *command: str,
        workdir: str | None = None,
        env: dict[str, str] | None = None,
        text: bool = True,
    ) -> ContainerProcess:
        """Start ``command`` in the sandbox; its process (stdout, stderr, stdin, wait)."""
        if not command:
            raise NbremoteError("Sandbox.exec needs a command: sb.exec('echo', 'hi')")
        body = ExecSandbox(command=[str(part) for part in command], workdir=workdir, env=env or {})
        started = _client().call(
            "POST", f"{self._path}/exec", body, response=DescribeSandboxProcess
        )
        return ContainerProcess(self.object_id, started.id, text)

    def _refresh(self, seconds: float) -> DescribeSandbox:
        self._described = _client().call(
            "POST", f"{self._path}/wait", WaitProcess(wait=seconds), response=DescribeSandbox
        )
        return self._described

    def wait(self, raise_on_termination: bool = True) -> None:
        """Wait for the sandbox to end (its entrypoint exits, it is terminated or times out).

        Raises:
            SandboxTimeoutError: it reached its timeout (unless ``raise_on_termination`` is False).
        """
        while self._refresh(POLL).state == "running":
            pass
        if self._described.state == "timed out" and raise_on_termination:
            raise SandboxTimeoutError(
                f"sandbox {self.object_id} reached its timeout of {self._described.timeout:g} s"
            )

    def poll(self) -> int | None:
        """Its return code once it has ended, else None."""
        return self._refresh(0).returncode

    @property
    def returncode(self) -> int | None:
        """Its entrypoint's exit code once it ended (137 terminated, 124 timed out), else None."""
        return self._described.returncode

    def terminate(self) -> None:
        """End the sandbox now: every command in it is killed."""
        _client().call("DELETE", self._path)
        self._refresh(0)

    def open(self, path: str, mode: str = "r") -> SandboxFileIO:
        """A file inside the sandbox, under its /tmp, working directory or volumes.

        Args:
            mode: ``r``, ``rb``, ``w``, ``wb``, ``a`` or ``ab``; what is written reaches the
                sandbox when the file is flushed or closed.
        """
        if mode not in MODES:
            raise ValueError(f"Sandbox.open mode {mode!r}: use one of {', '.join(MODES)}")
        data = b""
        if mode.startswith("r"):
            found = _client().call(
                "POST", f"{self._path}/files/read", SandboxFile(path=path), response=SandboxFile
            )
            data = base64.b64decode(found.data or "")
        return SandboxFileIO(self._path, path, mode, data)

    def __repr__(self) -> str:
        return f"Sandbox({self.object_id!r})"


class SandboxTimeoutError(NbremoteError, TimeoutError):
    """A sandbox reached its timeout (``modal.exception.SandboxTimeoutError``)."""


class SandboxFileIO:
    """A file of a sandbox, read whole when opened, or written when flushed or closed."""

    def __init__(self, sandbox_path: str, path: str, mode: str, data: bytes) -> None:
        self._sandbox_path = sandbox_path
        self.path = path
        self.mode = mode
        self._buffer = io.BytesIO(data)
        self._text = "b" not in mode
        self._append = mode.startswith("a")
        self.closed = False

    def _bytes(self, data: bytes) -> Any:
        return data.decode() if self._text else data

    def read(self, size: int = -1) -> Any:
        return self._bytes(self._buffer.read(size))

    def readline(self) -> Any:
        return self._bytes(self._buffer.readline())

    def __iter__(self) -> Iterator[Any]:
        while line := self._buffer.readline():
            yield self._bytes(line)

    def write(self, data: str | bytes) -> int:
        if self.mode.startswith("r"):
            raise io.UnsupportedOperation(f"{self.path} was opened for reading ({self.mode!r})")
        return self._buffer.write(data.encode() if isinstance(data, str) else data)

    def flush(self) -> None:
        """Send what was written since the last flush."""
        if self.mode.startswith("r"):
            return
        data = self._buffer.getvalue()
        self._buffer = io.BytesIO()
        body = SandboxFile(path=self.path, data=_b64(data), append=self._append)
        _client().call("POST", f"{self._sandbox_path}/files/write", body, response=SandboxFile)
        self._append = True  # what follows goes after what was sent

    def close(self) -> None:
        if not self.closed:
            self.flush()
            self.closed = True

    def __enter__(self) -> SandboxFileIO:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
