"""The `WorkerSpec` of a cell or a function, from the settings both share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .secret import Secret, spec_secrets
from .wire.http import GpuRequest, WorkerSpec


def worker_spec(
    env: dict[str, str],
    gpu: GpuRequest | None,
    volumes: dict[str, str],
    secrets: Sequence[Secret],
    image: Any,
) -> WorkerSpec:
    """What a worker for these settings is started with (inline secret values included)."""
    names, inline = spec_secrets(secrets)
    return WorkerSpec(
        env=env,
        gpu=gpu,
        volumes=volumes,
        secrets=names,
        inline_secrets=inline,
        image=image.object_id if image is not None else None,
    )
