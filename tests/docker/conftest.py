"""Fixtures of the docker backend's tests: a real dockerd, the base image, a docker runner.

`scripts/dockerd.sh` starts a dockerd (Debian's docker.io, overlay2, no bridge) unless one
answers already; its data root outlives the run, so the base image it builds once (a minimal
Debian with this Python, about a minute: no registry is needed) is found by its tag afterwards.
Where no daemon can be had (no docker.io, not root), every test here is skipped, saying why.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from nbremote import _session
from tests.conftest import TOKEN, RunningRunner, clean_shell, session_on, start_runner

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "dockerd.sh"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this folder is a docker test (``-m "not docker"`` leaves them out), given
    the time of the base image's build (about a minute, once per machine) on top of its own."""
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.docker)
            item.add_marker(pytest.mark.timeout(300))


@pytest.fixture(scope="session")
def docker_host() -> Iterator[str]:
    """A dockerd's address (``DOCKER_HOST`` for this run), with the base image built."""
    started = subprocess.run(["sh", str(SCRIPT)], capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        pytest.skip(f"no Docker daemon for the docker backend: {started.stderr.strip()}")
    host = started.stdout.strip().splitlines()[-1]
    before = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = host
    import docker
    from nbremote_runner.backends.docker_base import BaseImageError, ensure_base
    from nbremote_runner.backends.docker_images import DockerImages

    client = docker.DockerClient(base_url=host)
    try:
        ensure_base(client)  # once per machine: then found by its tag
        # The default image and the worker's volume too, before a runner waits for them.
        asyncio.run(DockerImages(client, None).ensure(None))
    except BaseImageError as exc:
        pytest.skip(f"no base image for the docker backend: {exc}")
    finally:
        client.close()
    yield host
    if before is None:
        os.environ.pop("DOCKER_HOST", None)
    else:
        os.environ["DOCKER_HOST"] = before


@pytest.fixture(scope="session")
def docker_runner(
    docker_host: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningRunner]:
    """One docker-backend runner shared by the tests of a run."""
    data = tmp_path_factory.mktemp("docker-runner")
    running = start_runner(data, TOKEN, "--backend", "docker", "--docker-host", docker_host)
    yield running
    # The daemon outlives the run: the images of this run's tests go with the runner.
    running.cli("images", "prune", "--keep-bytes", "0")
    running.stop()


@pytest.fixture
def docker_session(docker_runner: RunningRunner) -> Iterator[_session.RemoteSession]:
    """This process's session on the docker runner, new for each test."""
    yield from session_on(docker_runner)


@pytest.fixture
def docker_shell(
    ipython: InteractiveShell, docker_session: _session.RemoteSession
) -> InteractiveShell:
    """A clean IPython shell whose ``%%remote`` cells run in containers."""
    return clean_shell(ipython)
