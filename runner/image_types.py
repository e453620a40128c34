"""What an image is to the runner: its stored definition, a built one as a worker needs it,
and the errors of making one. The cache that holds them is `nbremote_runner.images`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nbremote.wire.images import ImageStep

from .backends.base import WorkerStartError
from .errors import RunnerError


class ImageBuildError(WorkerStartError):
    """A step of an image failed; the message names the step and ends with its log's tail."""


class PythonUnavailable(RunnerError, ValueError):
    """The runner has no Python of the version an image asks for."""

    status = 422


@dataclass
class Definition:
    """An image the runner knows."""

    id: str
    steps: list[ImageStep]
    name: str | None = None
    created_at: float = field(default_factory=time.time)
    last_used: float | None = None

    @property
    def python_version(self) -> str | None:
        """The major.minor of its base, if it names one."""
        base = self.steps[0].options
        version = base.get("python_version") or base.get("add_python")
        return ".".join(version.split(".")[:2]) if version else None

    def to_json(self) -> str:
        """The definition as stored in ``defs/``."""
        document = asdict(self) | {"steps": [step.model_dump() for step in self.steps]}
        return json.dumps(document)

    @classmethod
    def from_json(cls, text: str) -> Definition:
        """A definition read back from ``defs/``."""
        document = json.loads(text)
        document["steps"] = [ImageStep.model_validate(step) for step in document["steps"]]
        return cls(**document)


@dataclass(frozen=True)
class Ready:
    """A built image, as a worker needs it."""

    id: str
    python: Path
    env: dict[str, str]
    files: Path  # add_local_dir content, linked into the worker's working directory
