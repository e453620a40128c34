"""Images on the docker backend: a Docker image per chain, a layer per step, cached by content."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import docker
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import nbremote as nr
from nbremote.errors import RemoteError
from tests.conftest import RunningRunner


def remote(shell: InteractiveShell, cell: str, line: str = "") -> str:
    """Run a %%remote cell; what it printed on stdout and stderr (the build log too)."""
    with capture_output() as captured:
        shell.run_cell_magic("remote", line, cell)
    return captured.stdout + captured.stderr


def unique() -> dict[str, str]:
    """An env step that makes an image of this test's own (new layers from there on)."""
    return {"NBREMOTE_TEST_RUN": uuid.uuid4().hex}


def test_cache_hit_and_one_step_rebuild(docker_shell: InteractiveShell) -> None:
    docker_shell.user_ns["img"] = (
        nr.Image.debian_slim().env(unique()).run_commands("echo built > /marker.txt")
    )
    cell = "import os\nmarker = open('/marker.txt').read()\nrun = os.environ['NBREMOTE_TEST_RUN']"
    log = remote(docker_shell, cell, "--image img")
    assert "step 3/3 run commands echo built > /marker.txt" in log
    assert docker_shell.user_ns["marker"] == "built\n"
    assert len(docker_shell.user_ns["run"]) == 32  # the env step's variable

    log = remote(docker_shell, "again = open('/marker.txt').read()", "--image img --fresh")
    assert docker_shell.user_ns["again"] == "built\n" and "run commands" not in log  # no build

    docker_shell.run_cell("img2 = img.run_commands('echo second > /second.txt')")
    log = remote(
        docker_shell,
        "both = open('/marker.txt').read(), open('/second.txt').read()",
        "--image img2",
    )
    assert "step 3/4 cached: run commands echo built > /marker.txt" in log
    assert "step 4/4 run commands echo second > /second.txt" in log
    assert docker_shell.user_ns["both"] == ("built\n", "second\n")


def test_apt_local_files_and_sources_really_go_in(
    docker_shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "dockerpkg"
    package.mkdir()
    (package / "__init__.py").write_text("ANSWER = 42\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "table.csv").write_text("a,b\n1,2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    docker_shell.user_ns["img"] = (
        nr.Image.debian_slim()
        .apt_install("jq")  # not in the base: installed by apt-get in the image
        .add_local_python_source("dockerpkg")
        .add_local_dir(tmp_path / "data", "/srv/data")
    )
    cell = (
        "import dockerpkg, subprocess\n"
        "answer = dockerpkg.ANSWER\n"
        "table = open('/srv/data/table.csv').read()\n"
        "jq = subprocess.run(['jq', '.a'], input=b'{\"a\": 7}', capture_output=True).stdout"
    )
    remote(docker_shell, cell, "--image img")
    assert docker_shell.user_ns["answer"] == 42
    assert docker_shell.user_ns["table"] == "a,b\n1,2\n"
    assert docker_shell.user_ns["jq"] == b"7\n"


def test_registry_images_local_or_pulled_dockerfiles_and_python_versions(
    docker_shell: InteractiveShell, docker_host: str, tmp_path: Path
) -> None:
    client = docker.DockerClient(base_url=docker_host)
    try:
        client.images.get("nbremote/base:py3.11").tag("local/python", "mine")
    finally:
        client.close()
    docker_shell.user_ns["img"] = nr.Image.from_registry("local/python:mine").env(unique())
    remote(docker_shell, "import sys\nversion = sys.version_info[:2]", "--image img")
    assert docker_shell.user_ns["version"] == (3, 11)

    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM nbremote/base:py3.11\nRUN echo {uuid.uuid4().hex} > /df.txt\n")
    docker_shell.user_ns["built"] = nr.Image.from_dockerfile(dockerfile)
    remote(docker_shell, "from_file = open('/df.txt').read()", "--image built")
    assert docker_shell.user_ns["from_file"] == dockerfile.read_text().split()[-3] + "\n"

    docker_shell.user_ns["bad"] = nr.Image.from_registry("nbremote-test/not-there:1")
    with pytest.raises(RemoteError, match=r"from_registry\('nbremote-test/not-there:1'\): pulling"):
        remote(docker_shell, "x = 1", "--image bad")

    fake = "printf '#!/bin/sh\\necho 3.10\\n' > /usr/local/bin/python3"  # another Python
    docker_shell.user_ns["other"] = nr.Image.debian_slim().env(unique()).run_commands(fake)
    with pytest.raises(RemoteError, match=r"has Python 3\.10, but the kernel .* run Python 3\.11"):
        remote(docker_shell, "x = 1", "--image other")


def test_images_ls_shows_docker_sizes_and_prune_removes_them(
    docker_shell: InteractiveShell, docker_runner: RunningRunner, docker_host: str
) -> None:
    docker_shell.user_ns["img"] = (
        nr.Image.debian_slim().env(unique()).run_commands("head -c 3000000 /dev/zero > /blob")
    )
    remote(docker_shell, "x = 1", "--image img")
    image_id = docker_shell.user_ns["img"].object_id
    listed = docker_runner.cli("images", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    (described,) = [i for i in json.loads(listed.stdout) if i["id"] == image_id]
    assert described["built"] and described["layers"][2]["bytes"] >= 3_000_000

    docker_shell.run_line_magic("remote", "reset")  # its container goes: the image is unused
    removed = docker_runner.cli("images", "rm", image_id)
    assert removed.returncode == 0, removed.stderr
    assert image_id not in docker_images(docker_host)  # its image went; the default one stays

    docker_shell.user_ns["other"] = nr.Image.debian_slim().env(unique())
    remote(docker_shell, "x = 1", "--image other")
    other = docker_shell.user_ns["other"].object_id
    assert other in docker_images(docker_host)
    docker_shell.run_line_magic("remote", "reset")
    pruned = docker_runner.cli("images", "prune", "--keep-bytes", "0")
    assert pruned.returncode == 0, pruned.stderr
    assert other not in docker_images(docker_host)


def docker_images(host: str) -> set[str]:
    """The registry ids of the images (nbremote/img:...) the daemon holds."""
    client = docker.DockerClient(base_url=host)
    try:
        return {i.labels.get("nbremote.image", "") for i in client.images.list(name="nbremote/img")}
    finally:
        client.close()
