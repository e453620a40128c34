"""The `WorkerSpec` of a cell or a function, from the settings both share."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from typing import Any, Protocol

from .secret import Secret, spec_secrets
from .wire.http import GpuRequest, WorkerSpec


class SpecSettings(Protocol):
    """The settings a cell's flags (`CellOptions`) and a function's options share."""

    @property
    def env(self) -> dict[str, str]: ...
    @property
    def gpu(self) -> GpuRequest | None: ...
    @property
    def volumes(self) -> dict[str, str]: ...  # mount path -> volume name
    @property
    def secrets(self) -> Sequence[Secret]: ...
    @property
    def image(self) -> Any: ...  # an nbremote.Image, or None for the runner's own environment
    @property
    def cpu(self) -> float | None: ...
    @property
    def memory(self) -> int | None: ...


def worker_spec(settings: SpecSettings, **isolation: Any) -> WorkerSpec:
    """What a worker for these settings is started with (inline secret values included);
    ``isolation``: its isolation flags beyond ``cpu`` and ``memory`` (`WorkerSpec`'s names)."""
    names, inline = spec_secrets(settings.secrets)
    image = settings.image
    isolation = {"cpu": settings.cpu, "memory": settings.memory, **isolation}
    return WorkerSpec(
        **{key: value for key, value in isolation.items() if value},
        env=settings.env,
        gpu=settings.gpu,
        volumes=settings.volumes,
        secrets=names,
        inline_secrets=inline,
        image=image.object_id if image is not None else None,
        python=kernel_python() if image is None else None,
    )


def resource_limit(value: Any, name: str, where: str) -> Any:
    """A ``cpu=`` or ``memory=`` as the limit it sets: a number, or Modal's ``(request,
    limit)``, of which the runner enforces the limit (it reserves nothing).

    Raises:
        ValueError: not a positive number, or a pair of them.
    """
    if isinstance(value, tuple) and len(value) == 2:
        value = value[1]
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return math.ceil(value) if name == "memory" else float(value)
    raise ValueError(
        f"{where}: {name}={value!r}: give a positive number "
        + ("of MiB (memory=2048)" if name == "memory" else "of cores (cpu=2.0)")
        + " or a (request, limit) pair"
    )


def kernel_python() -> str | None:
    """This kernel's interpreter when its runner is the embedded one (same host, same user), so
    that workers import what the kernel imports whichever virtualenv started that runner; None
    for any other runner (a path there means nothing)."""
    from . import _session

    current = _session._current
    embedded = current.embedded if current is not None else not os.environ.get("NBREMOTE_URL")
    return sys.executable if embedded else None
