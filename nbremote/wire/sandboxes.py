"""The wire schema of sandboxes: a container the runner keeps, in which a client runs commands.

``POST /sandboxes`` creates one (`CreateSandbox`), ``POST /sandboxes/{id}/exec`` starts a command
in it (`ExecSandbox`), whose output the client reads by offset with long polls
(`ReadOutput`: what is there beyond the offset, or whatever arrives within ``wait`` seconds), and
whose stdin it writes (`WriteStdin`). Files inside it travel whole, base64 in JSON
(`SandboxFile`). Bytes are base64 throughout: every document is JSON and validated on receipt.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from .http import ApiModel, GpuRequest

SANDBOX_ID = re.compile(r"^sb-[0-9a-f]{16}$")
SandboxId = Annotated[str, Field(pattern=SANDBOX_ID.pattern)]
# What becomes an argv or an environment: no NUL (the OS takes none), no '=' in a name.
Argument = Annotated[str, Field(max_length=65536, pattern=r"^[^\x00]*$")]
Command = Annotated[list[Argument], Field(max_length=4096)]
Environment = dict[Annotated[str, Field(pattern=r"^[^\x00=]+$", max_length=1024)], Argument]


def _absolute_path(path: str) -> str:
    parts = path.split("/")
    if not path.startswith("/") or "\0" in path or ".." in parts or len(path) > 4096:
        raise ValueError(f"{path[:80]!r} is not an absolute path without '..'")
    return path


AbsolutePath = Annotated[str, AfterValidator(_absolute_path)]


class CreateSandbox(ApiModel):
    """A sandbox to create: its entrypoint (none: it idles until terminated or timed out)."""

    command: Command = Field(default_factory=list)
    app: str | None = Field(default=None, max_length=200)
    image: str | None = Field(default=None, description="an image id or name (None: the runner's)")
    timeout: float = Field(default=300.0, gt=0, le=7 * 86400, description="seconds, then killed")
    workdir: AbsolutePath | None = Field(default=None, description="None: /sandbox")
    gpu: GpuRequest | None = None
    volumes: dict[AbsolutePath, str] = Field(default_factory=dict)
    secrets: list[str] = Field(default_factory=list)
    env: Environment = Field(default_factory=dict)
    block_network: bool = False


class DescribeSandbox(ApiModel):
    """A sandbox as the runner holds it."""

    id: SandboxId
    app: str | None
    command: list[str]
    workdir: str
    created_at: float
    timeout: float
    state: Literal["running", "exited", "terminated", "timed out"]
    returncode: int | None = Field(description="its entrypoint's, once it has ended")


class ExecSandbox(ApiModel):
    """A command to start in a running sandbox."""

    command: Command = Field(min_length=1)
    workdir: AbsolutePath | None = None
    env: Environment = Field(default_factory=dict)


class DescribeSandboxProcess(ApiModel):
    """A command started in a sandbox (id ``main``: its entrypoint)."""

    id: str = Field(pattern=r"^(main|p[0-9]+)$")
    returncode: int | None


class ReadOutput(ApiModel):
    """Output of a process from ``offset`` on (``wait``: seconds to wait for some, at most)."""

    stream: Literal["stdout", "stderr"]
    offset: int = Field(default=0, ge=0)
    wait: float = Field(default=0.0, ge=0, le=30)


class Output(ApiModel):
    """What a process wrote: ``data`` (base64) starts at ``offset``; ``eof``: nothing follows."""

    data: str
    offset: int
    eof: bool


class WriteStdin(ApiModel):
    """Bytes for a process's stdin (base64); ``eof``: close it after them."""

    data: str = Field(default="", max_length=64 << 20)
    eof: bool = False


class WaitProcess(ApiModel):
    """Wait up to ``wait`` seconds for a process to end."""

    wait: float = Field(default=0.0, ge=0, le=30)


class SandboxFile(ApiModel):
    """A file inside a sandbox: read (no ``data``) or written whole or appended (base64)."""

    path: AbsolutePath
    data: str | None = Field(default=None, max_length=96 << 20)
    append: bool = False
