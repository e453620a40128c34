"""The backends by name, as ``nbremote runner --backend NAME`` chooses one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..images import Images
from .base import Backend
from .process import ProcessBackend


def make_backend(
    name: str,
    data_dir: str,
    shm_dir: str | None,
    images: Images | None = None,
    private: Sequence[Path] = (),
    embedded: bool = False,
    docker_host: str | None = None,
    docker_network: str = "none",
    ray_address: str | None = None,
    ray_volume_root: Path | None = None,
) -> Backend:
    """The backend called ``name``, or a ValueError listing those that exist. ``images``: the
    shared registry whose images it prepares; ``private``: files of the runner its workers must
    not see (besides the data dir); ``embedded``: a kernel's embedded runner, whose workers run
    the interpreter their kernel names; ``docker_host``/``docker_network``: the docker backend's
    daemon (None: ``DOCKER_HOST``) and its containers' network; ``ray_address``: the ray
    backend's cluster (None: a local Ray instance); ``ray_volume_root``: its volumes' folder
    (`RayBackend`)."""
    if name == "docker":  # imported here: the docker SDK only where it is used
        from .docker import DockerBackend

        return DockerBackend(data_dir, images, docker_host, docker_network)
    if name == "ray":  # Ray only where it is used (an optional extra)
        from .ray import RayBackend

        return RayBackend(ray_address, volume_root=ray_volume_root, images=images)
    backends = {"process": ProcessBackend}
    if name not in backends:
        raise ValueError(f"unknown backend {name!r}; available: docker, process, ray")
    return backends[name](data_dir, shm_dir, images, private=private, kernel_interpreters=embedded)
