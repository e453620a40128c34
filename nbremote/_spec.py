"""The `WorkerSpec` of a cell or a function, from the settings both share."""

from __future__ import annotations

import os
import sys
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
        python=kernel_python() if image is None else None,
    )


def kernel_python() -> str | None:
    """This kernel's interpreter when its runner is the embedded one (same host, same user), so
    that workers import what the kernel imports whichever virtualenv started that runner; None
    for any other runner (a path there means nothing)."""
    from . import _session

    current = _session._current
    embedded = current.embedded if current is not None else not os.environ.get("NBREMOTE_URL")
    return sys.executable if embedded else None
