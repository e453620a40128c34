"""The wire schema: every JSON document that crosses the runner's HTTP API.

Models are named by verb and resource (``CreateSession``, ``DescribeSession``), imported alike
by the client, the runner and the Jupyter server extension; the runner's OpenAPI document is
generated from them. The binary frames of the hot path are described in ``nbremote._protocol``;
their ``spec`` object is `WorkerSpec`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Model):
    """What went wrong, for a machine (``type``) and a person (``message``)."""

    type: str
    message: str


class ErrorResponse(_Model):
    """The body of every non-2xx answer."""

    error: ErrorDetail


class Health(_Model):
    """Answer of ``GET /api/v1/health``: the runner is up and ready."""

    status: str = "ok"
    version: str


class WorkerSpec(_Model):
    """What a warm worker is started with; workers are shared only between equal specs."""

    env: dict[str, str] = Field(default_factory=dict)
    image: str | None = Field(default=None, description="an image id or name (None: the runner's)")

    def key(self) -> str:
        """A stable string that identifies workers interchangeable for this spec."""
        return self.model_dump_json()


class DescribeObject(_Model):
    """One name in a worker's namespace."""

    name: str
    type: str
    nbytes: int | None = None


class DescribeWorker(_Model):
    """A warm worker: its process and what it holds."""

    id: str
    pid: int
    spec: WorkerSpec
    started_at: float
    uptime_s: float
    rss_bytes: int | None
    busy: bool
    cells_run: int
    objects: list[DescribeObject]


class CreateSession(_Model):
    """Open (or re-open) the runner-side session of one notebook kernel."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    notebook: str | None = None


class DescribeSession(_Model):
    """A notebook's session: its warm workers and the Python they run."""

    id: str
    notebook: str | None
    created_at: float
    python: str = Field(description="Python version of the session's default worker environment")
    workers: list[DescribeWorker]
    host: str | None = Field(default=None, description="the runner machine's boot id")
    shm_dir: str | None = Field(
        default=None, description="where clients on the runner's machine may put big buffers"
    )


class ListSessionsResponse(_Model):
    """All sessions the runner holds."""

    sessions: list[DescribeSession]


class DescribeRunner(_Model):
    """The runner itself."""

    version: str
    backend: str
    python: str
    pid: int
    data_dir: str
    started_at: float
    idle_timeout_s: float | None
    sessions: int
    workers: int
    cells_run: int


class FunctionScaling(_Model):
    """How many warm workers a function may have, and how long idle ones live."""

    max_containers: int | None = Field(default=None, ge=1, description="default: one per core")
    min_containers: int = Field(default=0, ge=0)
    scaledown_window: float = Field(default=60.0, gt=0)
    max_inputs: int = Field(default=1, ge=1, description="inputs one worker takes at once")


class DeployObject(_Model):
    """A function or class of an app, pickled by value, as ``nbremote deploy`` sends it."""

    name: str
    kind: str = Field(pattern="^(function|class)$")
    methods: list[str] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)
    payload: str = Field(description="the pickle's parts back to back, base64")
    sizes: list[int]
    hash: str


class DeployApp(_Model):
    """``PUT /api/v1/apps/{name}``: deploy (or redeploy) an app's functions and classes."""

    objects: list[DeployObject]


class DescribeAppObject(_Model):
    """A deployed function or class, without its payload."""

    name: str
    kind: str
    methods: list[str]
    settings: dict[str, Any]
    hash: str


class DescribeApp(_Model):
    """A deployed app."""

    name: str
    deployed_at: float
    objects: list[DescribeAppObject]
    workers: int


class ListAppsResponse(_Model):
    """Every deployed app."""

    apps: list[DescribeApp]


StepKind = Literal[
    "debian_slim",
    "from_registry",
    "from_dockerfile",
    "pip_install",
    "uv_pip_install",
    "pip_install_from_requirements",
    "run_commands",
    "env",
    "apt_install",
    "add_local_python_source",
    "add_local_dir",
]


class ImageStep(_Model):
    """One step of an image; its content (all of it) is part of its layer's id."""

    kind: StepKind
    args: list[str] = Field(default_factory=list, description="packages, commands or modules")
    options: dict[str, str] = Field(default_factory=dict)
    files: dict[str, str] = Field(
        default_factory=dict, description="relative path -> sha256 of the files the step copies"
    )

    def describe(self) -> str:
        """The step in a few words, as the build log and listings show it."""
        detail = " ".join(self.args) or " ".join(f"{k}={v}" for k, v in self.options.items())
        if self.kind == "pip_install_from_requirements":
            detail = f"({len(self.options.get('requirements', '').splitlines())} lines)"
        if self.kind == "add_local_dir":
            detail = f"{self.options.get('local_path')} -> {self.options.get('remote_path')}"
        words = self.kind.replace("_", " ")
        return f"{words} {detail}".strip()


def layer_ids(steps: list[ImageStep]) -> list[str]:
    """Each step's layer id: a hash of its parent's id and its own content."""
    ids: list[str] = []
    parent = ""
    for step in steps:
        document = json.dumps([parent, step.model_dump()], sort_keys=True)
        parent = hashlib.sha256(document.encode()).hexdigest()[:24]
        ids.append(parent)
    return ids


def image_id(steps: list[ImageStep]) -> str:
    """The image's id: its last layer's id."""
    return f"im-{layer_ids(steps)[-1]}"


class CreateImage(_Model):
    """``POST /api/v1/images``: make an image known to the runner (built when first used)."""

    steps: list[ImageStep] = Field(min_length=1)
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    files: dict[str, str] = Field(
        default_factory=dict, description="sha256 -> base64 content of the files steps copy"
    )


class DescribeLayer(_Model):
    """One layer of an image in the runner's cache."""

    step: str
    built: bool
    bytes: int = Field(description="what this layer adds on disk (0 if not built)")
    build_seconds: float | None = None


class DescribeImage(_Model):
    """An image the runner knows, and how much of it is built."""

    id: str
    name: str | None
    python_version: str | None
    built: bool
    bytes: int
    created_at: float
    last_used: float | None
    in_use: int = Field(description="workers running on it now")
    layers: list[DescribeLayer]


class ListImagesResponse(_Model):
    """Every image the runner knows, most recently used first."""

    images: list[DescribeImage]


class PruneImages(_Model):
    """``POST /api/v1/images/prune``: free space, least recently used images first.

    Without limits, only what no image uses (failed builds, leftovers) is removed.
    """

    keep_bytes: int | None = Field(default=None, ge=0, description="shrink the cache to this")
    older_than_s: float | None = Field(default=None, ge=0, description="unused for this long")


class PruneImagesResponse(_Model):
    """What a prune removed."""

    removed: list[str]
    freed_bytes: int
    kept_bytes: int
