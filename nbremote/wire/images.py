"""The wire's image models: an image is its steps, each step a cached layer named by its content.

`layer_ids` and `image_id` are computed alike by the client (to name an image before sending
it) and the runner (to find its layers in the cache).
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field, field_validator

from .http import ApiModel, FileHash, RelativePath

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
    "add_local_file",
    "workdir",
    "entrypoint",
    "run_function",
    "uv_sync",
]

BASE_STEPS = ("debian_slim", "from_registry", "from_dockerfile")


class ImageStep(ApiModel):
    """One step of an image; its content (all of it) is part of its layer's id."""

    kind: StepKind
    args: list[str] = Field(default_factory=list, description="packages, commands or modules")
    options: dict[str, str] = Field(default_factory=dict)
    files: dict[RelativePath, FileHash] = Field(
        default_factory=dict, description="relative path -> sha256 of the files the step copies"
    )

    def describe(self) -> str:
        """The step in a few words, as the build log and listings show it."""
        detail = " ".join(self.args) or " ".join(f"{k}={v}" for k, v in self.options.items())
        if self.kind == "pip_install_from_requirements":
            detail = f"({len(self.options.get('requirements', '').splitlines())} lines)"
        if self.kind in ("add_local_dir", "add_local_file"):
            detail = f"{self.options.get('local_path')} -> {self.options.get('remote_path')}"
        if self.kind in ("workdir", "run_function", "uv_sync"):  # not the function's source
            detail = self.options.get("path") or self.options.get("name", "")
        if self.kind == "entrypoint":
            detail = repr(self.args)
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


class CreateImage(ApiModel):
    """``POST /api/v1/images``: make an image known to the runner (built when first used)."""

    steps: list[ImageStep] = Field(min_length=1)
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    files: dict[FileHash, str] = Field(
        default_factory=dict, description="sha256 -> base64 content of the files steps copy"
    )

    @field_validator("steps")
    @classmethod
    def _one_base_first(cls, steps: list[ImageStep]) -> list[ImageStep]:
        bases = [number for number, step in enumerate(steps) if step.kind in BASE_STEPS]
        if bases != [0]:
            raise ValueError(
                "an image starts with one base step, and only its first step is one: begin "
                "with Image.debian_slim(), Image.from_registry() or Image.from_dockerfile()"
            )
        return steps


class DescribeLayer(ApiModel):
    """One layer of an image in the runner's cache."""

    step: str
    built: bool
    bytes: int = Field(description="what this layer adds on disk (0 if not built)")
    build_seconds: float | None = None


class DescribeImage(ApiModel):
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


class ListImagesResponse(ApiModel):
    """Every image the runner knows, most recently used first."""

    images: list[DescribeImage]


class PruneImages(ApiModel):
    """``POST /api/v1/images/prune``: free space, least recently used images first.

    Without limits, only what no image uses (failed builds, leftovers) is removed.
    """

    keep_bytes: int | None = Field(default=None, ge=0, description="shrink the cache to this")
    older_than_s: float | None = Field(default=None, ge=0, description="unused for this long")


class PruneImagesResponse(ApiModel):
    """What a prune removed."""

    removed: list[str]
    freed_bytes: int
    kept_bytes: int
