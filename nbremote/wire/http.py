"""The wire schema: every JSON document that crosses the runner's HTTP API.

Models are named by verb and resource (``CreateSession``, ``DescribeSession``), imported alike
by the client, the runner and the Jupyter server extension; the runner's OpenAPI document is
generated from them. The binary frames of the hot path are encoded by `nbremote.wire.codec` and
their headers described in `nbremote.wire.frames`; their ``spec`` object is `WorkerSpec`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)


class ApiModel(BaseModel):
    """The base of every document of the API: a field it does not know is refused."""

    # Built on first use, not at import: a process uses a few of the dozens of models here, and
    # building them all cost a fresh runner or kernel ~0.3 s of its start (measured, issue 23).
    model_config = ConfigDict(extra="forbid", defer_build=True)


# Content hashes name files on the runner: one that arrives from outside must be exactly a hash,
# never a path (``/etc/shadow``, ``../secrets.json``) nor longer than a file name may be.
CONTENT_HASH = re.compile(r"^[0-9a-f]{32}$")
FILE_HASH = re.compile(r"^[0-9a-f]{64}$")
ContentHash = Annotated[
    str,
    Field(
        pattern=CONTENT_HASH.pattern,
        description="a content hash (xxh3-128, 32 lowercase hex digits): of a volume file, "
        "as POST /volumes/{name}/blobs answers, or of a pickle",
    ),
]
FileHash = Annotated[
    str, Field(pattern=FILE_HASH.pattern, description="sha256 of a file (64 lowercase hex digits)")
]


def _relative_path(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or "\0" in path or ".." in parts or "" in parts:
        raise ValueError(f"{path[:80]!r} is not a plain relative path (a/b.txt, no '..')")
    return path


RelativePath = Annotated[str, AfterValidator(_relative_path)]


class ErrorDetail(ApiModel):
    """What went wrong, for a machine (``type``) and a person (``message``)."""

    type: str
    message: str


class ErrorResponse(ApiModel):
    """The body of every non-2xx answer."""

    error: ErrorDetail


class Health(ApiModel):
    """Answer of ``GET /api/v1/health``: the runner is up and ready."""

    status: str = "ok"
    version: str


class GpuChoice(ApiModel):
    """One acceptable set of GPUs: a type (``any``, or a name such as ``A100``), its memory
    variant, and how many (``A100-80GB:2``)."""

    type: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")
    memory_gb: int | None = Field(default=None, ge=1)
    count: int = Field(default=1, ge=1)

    def __str__(self) -> str:
        memory = f"-{self.memory_gb}GB" if self.memory_gb else ""
        return f"{self.type}{memory}" + (f":{self.count}" if self.count > 1 else "")


class GpuRequest(ApiModel):
    """A worker's GPUs: the first of ``choices`` the runner can give (``H100|A100-80GB``)."""

    choices: list[GpuChoice] = Field(min_length=1)

    def __str__(self) -> str:
        return "|".join(str(choice) for choice in self.choices)


class WorkerSpec(ApiModel):
    """What a warm worker is started with; workers are shared only between equal specs."""

    env: dict[str, str] = Field(default_factory=dict)
    gpu: GpuRequest | None = None
    volumes: dict[str, str] = Field(
        default_factory=dict, description="mount path -> name of the volume mounted there"
    )
    secrets: list[str] = Field(
        default_factory=list,
        description="names of the secrets in its environment ('inline:<digest>': from_dict)",
    )
    # Secret.from_dict values: they travel with the request (see `wire`) but are never
    # serialized back, so they stay out of keys, API answers, logs and reprs.
    inline_secrets: dict[str, dict[str, str]] = Field(
        default_factory=dict, exclude=True, repr=False
    )
    image: str | None = Field(default=None, description="an image id or name (None: the runner's)")
    python: str | None = Field(
        default=None,
        description="the kernel's interpreter, for workers of an embedded runner on its host "
        "(None: the runner's)",
    )
    # Resources and isolation (Modal's names): every backend enforces them on its containers.
    cpu: float | None = Field(default=None, gt=0, le=1024, description="CPU cores it may use")
    memory: int | None = Field(
        default=None, ge=1, le=2**24, description="MiB of memory; beyond it a call fails"
    )
    block_network: bool = Field(default=False, description="no network but its own loopback")
    single_use: bool = Field(default=False, description="a fresh worker for every input")
    restrict_modal_access: bool = Field(
        default=False, description="its code may not reach the runner (no Dict, Queue, volume)"
    )

    def key(self) -> str:
        """A stable string that identifies workers interchangeable for this spec."""
        return self.model_dump_json()

    def wire(self) -> dict[str, Any]:
        """The spec as a request carries it: with the values of inline secrets."""
        document = self.model_dump()
        if self.inline_secrets:
            document["inline_secrets"] = self.inline_secrets
        return document


class DescribeObject(ApiModel):
    """One name in a worker's namespace."""

    name: str
    type: str
    nbytes: int | None = None


class DescribeWorker(ApiModel):
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
    gpus: list[int] = Field(default_factory=list, description="indices of the GPUs it holds")


class CreateSession(ApiModel):
    """Open (or re-open) the runner-side session of one notebook kernel."""

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    notebook: str | None = None
    client: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="the kernel process opening it: only that one may end it or re-open it",
    )
    attach: bool = Field(
        default=False, description="take over a detached session of another (crashed) kernel"
    )


class EndSession(ApiModel):
    """A kernel says goodbye as it exits: its session ends now (if it still is its own)."""

    client: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")


class DescribeSession(ApiModel):
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
    attached: bool = Field(default=True, description="whether a kernel is connected to it")
    detached_at: float | None = Field(
        default=None, description="when its kernel went away (None while attached)"
    )
    ends_at: float | None = Field(
        default=None, description="when a detached session is dropped (after the runner's grace)"
    )


class ListSessionsResponse(ApiModel):
    """All sessions the runner holds."""

    sessions: list[DescribeSession]


class DescribeRunner(ApiModel):
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


class FunctionScaling(ApiModel):
    """How many warm workers a function may have, and how long idle ones live."""

    max_containers: int | None = Field(default=None, ge=1, description="default: one per core")
    min_containers: int = Field(default=0, ge=0)
    scaledown_window: float = Field(default=60.0, gt=0)
    max_inputs: int = Field(default=1, ge=1, description="inputs one worker takes at once")


class DeployObject(ApiModel):
    """A function or class of an app, pickled by value, as ``nbremote deploy`` sends it."""

    name: str
    kind: str = Field(pattern="^(function|class)$")
    methods: list[str] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)
    payload: str = Field(
        pattern=r"^[A-Za-z0-9+/]*={0,2}$", description="the pickle's parts back to back, base64"
    )
    sizes: list[Annotated[int, Field(ge=0)]]
    hash: ContentHash

    @model_validator(mode="after")
    def _sizes_add_up(self) -> DeployObject:
        decoded = len(self.payload) * 3 // 4 - self.payload[-2:].count("=")
        if len(self.payload) % 4 or sum(self.sizes) != decoded:
            raise ValueError(
                f"payload: {decoded} bytes of base64 (length a multiple of 4), but the sizes of "
                f"its parts add up to {sum(self.sizes)}"
            )
        return self


class DeployApp(ApiModel):
    """``PUT /api/v1/apps/{name}``: deploy (or redeploy) an app's functions and classes."""

    objects: list[DeployObject]


class DescribeAppObject(ApiModel):
    """A deployed function or class, without its payload."""

    name: str
    kind: str
    methods: list[str]
    settings: dict[str, Any]
    hash: str


class DescribeApp(ApiModel):
    """A deployed app."""

    name: str
    deployed_at: float
    objects: list[DescribeAppObject]
    workers: int


class FunctionStats(ApiModel):
    """A function's load now (Modal's ``FunctionStats``): inputs waiting for a worker (or for
    their ``@nr.batched`` batch), and its workers, live or starting."""

    backlog: int
    num_total_runners: int


class ListAppsResponse(ApiModel):
    """Every deployed app."""

    apps: list[DescribeApp]


class DescribeGpuHolder(ApiModel):
    """Who holds a GPU: a notebook's cell worker, a function's or a deployed app's worker."""

    worker: str | None = Field(description="the worker's id (None while it starts)")
    kind: str = Field(pattern="^(cell|function|app)$")
    session: str | None = None
    notebook: str | None = None
    name: str | None = Field(default=None, description="the function, class or app")
    idle: bool = Field(description="idle function workers are stopped to make room")


class DescribeGpu(ApiModel):
    """One GPU of the runner, with its latest reading."""

    index: int
    name: str
    uuid: str | None = None
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    utilization_percent: float | None = None
    holder: DescribeGpuHolder | None = None


class DescribeGpuWait(ApiModel):
    """A request waiting for GPUs, in queue order."""

    position: int
    request: str = Field(description="the GPU spec, as in --gpu")
    holder: DescribeGpuHolder


class ListGpusResponse(ApiModel):
    """``GET /api/v1/gpus``: the runner's GPUs, who holds them, who waits; why none if none."""

    source: str = Field(description="nvml, declared (nbremote runner --gpus), fake-nvml or none")
    gpus: list[DescribeGpu]
    waiting: list[DescribeGpuWait] = Field(default_factory=list)
    unavailable: str | None = Field(default=None, description="why there are no GPUs")


class CreateVolume(ApiModel):
    """``POST /api/v1/volumes``: create a named volume."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    exist_ok: bool = Field(default=False, description="answer 200 if it exists (else 409)")


class DescribeVolume(ApiModel):
    """A volume: its current version, size and last commit."""

    name: str
    created_at: float
    modified_at: float = Field(description="when its current version was committed")
    version: int
    files: int
    size: int = Field(description="bytes in its files")


class ListVolumesResponse(ApiModel):
    """Every volume."""

    volumes: list[DescribeVolume]


class VolumeEntry(ApiModel):
    """A file, folder or link in a volume (path relative to its root)."""

    path: str
    type: str = Field(pattern="^(file|directory|link)$")
    size: int
    mtime: float


class ListVolumeFilesResponse(ApiModel):
    """Entries under a path of a volume's current version."""

    entries: list[VolumeEntry]


class DescribeBlob(ApiModel):
    """An uploaded file's content, stored by hash until a commit names it."""

    hash: ContentHash
    size: int


class CopyFiles(ApiModel):
    """Copy files or folders within a volume (into ``destination`` if it is a folder)."""

    sources: list[str]
    destination: str


class CommitVolume(ApiModel):
    """``POST /api/v1/volumes/{name}/versions``: a new version from the current one."""

    put: dict[str, ContentHash] = Field(
        default_factory=dict, description="path -> uploaded blob hash"
    )
    remove: list[str] = Field(default_factory=list)
    recursive: bool = Field(default=False, description="removing a folder removes its content")
    copy_files: list[CopyFiles] = Field(default_factory=list)
    force: bool = Field(default=True, description="put may replace existing files")


class SetSecret(ApiModel):
    """``PUT /api/v1/secrets/{name}``: create or replace a secret (its values are write-only)."""

    values: dict[str, str] = Field(repr=False)


class DescribeSecret(ApiModel):
    """A secret: names of its keys and dates, never its values."""

    name: str
    keys: list[str]
    created_at: float
    updated_at: float


class ListSecretsResponse(ApiModel):
    """Every secret, without values."""

    secrets: list[DescribeSecret]
