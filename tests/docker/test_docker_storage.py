"""Volumes, secrets and limits on the docker backend: bind mounts, environment, cgroups."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from nbremote_runner.backends import Limits, WorkerRequest, WorkerStartError
from nbremote_runner.backends.docker import LABEL, DockerBackend
from nbremote_runner.frames import ConnectionClosed

import nbremote as nr
from nbremote import _session
from nbremote.wire.http import WorkerSpec

MOUNT = "/data"
app = nr.App("docker-storage-tests")
SECRET = "s3cret-value-only-in-env"


@pytest.fixture
def vol(docker_session: _session.RemoteSession) -> Iterator[nr.Volume]:
    with nr.Volume.ephemeral() as volume:
        yield volume


def test_a_volume_is_a_bind_mount_whose_commits_reach_the_notebook(vol: nr.Volume) -> None:
    @app.function(volumes={MOUNT: vol})
    def write(text: str) -> list[str]:
        Path(f"{MOUNT}/models").mkdir()
        Path(f"{MOUNT}/models/a.txt").write_text(text)
        vol.commit()
        return os.listdir(MOUNT)

    @app.function(volumes={MOUNT: vol})
    def read_back() -> str:
        return Path(f"{MOUNT}/models/a.txt").read_text()

    assert write.remote("weights v1") == ["models"]
    assert b"".join(vol.read_file("models/a.txt")) == b"weights v1"
    assert read_back.remote() == "weights v1"  # another container sees the commit


def test_a_secret_is_in_the_environment_and_nowhere_else(
    docker_session: _session.RemoteSession, docker_host: str
) -> None:
    @app.function(secrets=[nr.Secret.from_dict({"API_TOKEN": SECRET})])
    def token() -> tuple[str, str]:
        return os.environ["API_TOKEN"], os.environ["NBREMOTE_TASK_ID"]

    value, worker = token.remote()
    assert value == SECRET
    client = docker.DockerClient(base_url=docker_host)
    try:
        (container,) = client.containers.list(filters={"label": f"nbremote.worker={worker}"})
        config = container.attrs["Config"]
        shown = [*config["Entrypoint"], *(config["Cmd"] or []), *config["Labels"].values()]
        assert not [item for item in shown if SECRET in item]
        assert config["Labels"][LABEL]  # labelled with its runner
    finally:
        client.close()


async def _exec(backend: DockerBackend, limits: Limits, code: str) -> str:
    """Start a worker with ``limits``, run ``code`` in it; how the worker ended."""
    worker = await backend.start_worker(WorkerRequest(WorkerSpec(), limits=limits))
    try:
        frame = {"op": "exec", "id": "x", "code": code, "inputs": [], "outputs": []}
        worker.connection.send(frame, [])
        try:
            while True:
                header, _ = await asyncio.wait_for(worker.connection.receive(), 60)
                if header.get("op") == "done":
                    return "done"
        except ConnectionClosed:
            return await worker.exit_status()
    finally:
        await worker.stop()
        await backend.close()


def test_going_over_the_memory_limit_is_reported_as_an_oom_kill(
    docker_host: str, tmp_path: Path
) -> None:
    backend = DockerBackend(str(tmp_path), docker_host=docker_host)
    hog = "blocks = [b'x' * (16 << 20) for _ in range(40)]"  # 640 MiB, written
    status = asyncio.run(_exec(backend, Limits(memory_bytes=200 << 20), hog))
    assert status.startswith("killed by signal SIGKILL: the worker ran out of its 200 MiB")
    assert "memory limit (memory=200); raise memory=" in status


@pytest.mark.skipif(
    "memory" not in WorkerSpec.model_fields, reason="needs memory= on the wire (isolation work)"
)
def test_a_function_over_its_memory_limit_fails_saying_so(
    docker_session: _session.RemoteSession,
) -> None:
    @app.function(memory=200)
    def hog() -> int:
        return len([b"x" * (16 << 20) for _ in range(40)])

    with pytest.raises(nr.NbremoteError, match=r"ran out of its 200 MiB memory limit"):
        hog.remote()


def test_within_the_memory_limit_the_same_code_runs(docker_host: str, tmp_path: Path) -> None:
    backend = DockerBackend(str(tmp_path), docker_host=docker_host)
    hog = "blocks = [b'x' * (16 << 20) for _ in range(4)]"
    assert asyncio.run(_exec(backend, Limits(memory_bytes=400 << 20, cpus=0.5), hog)) == "done"


def test_a_gpu_worker_on_a_daemon_without_nvidia_says_what_is_missing(
    docker_host: str, tmp_path: Path
) -> None:
    backend = DockerBackend(str(tmp_path), docker_host=docker_host)
    if "nvidia" in backend.client.info().get("Runtimes", {}):
        pytest.skip("this daemon has NVIDIA's runtime: tests/integration/test_gpus_real.py")
    request = WorkerRequest(WorkerSpec(), devices=("0",))
    with pytest.raises(WorkerStartError, match="need NVIDIA's container toolkit"):
        asyncio.run(backend.start_worker(request))
    labelled = backend.client.containers.list(
        all=True, filters={"label": f"{LABEL}={backend.runner_id}"}
    )
    assert labelled == []  # nothing left behind
    asyncio.run(backend.close())


def test_containers_of_a_crashed_runner_are_removed_when_it_starts_again(
    docker_host: str, tmp_path: Path
) -> None:
    backend = DockerBackend(str(tmp_path), docker_host=docker_host)
    client = docker.DockerClient(base_url=docker_host)
    try:
        tag = asyncio.run(backend.images.ensure(None)).tag
        orphan = client.containers.create(
            tag, ["sleep", "60"], labels={LABEL: backend.runner_id}, network_mode="none"
        )
        other = client.containers.create(
            tag, ["sleep", "60"], labels={LABEL: "another-runner"}, network_mode="none"
        )
        DockerBackend(str(tmp_path), docker_host=docker_host)  # the same data dir, restarted
        left = {c.id for c in client.containers.list(all=True, filters={"label": LABEL})}
        assert orphan.id not in left and other.id in left
        other.remove(force=True)
    finally:
        client.close()
