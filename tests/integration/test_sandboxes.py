"""``nr.Sandbox`` against a real runner: bubblewrap containers, commands with streamed output and
stdin, files inside, terminate and timeout, and what a sandbox may not reach."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nbremote_runner.backends.sandbox import unavailable

import nbremote as nr
from nbremote._client import RunnerClient
from nbremote._session import RemoteSession, current_session
from nbremote.errors import RunnerError
from tests.conftest import RunningRunner, run_python

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=f"no bwrap: {unavailable()}")
app = nr.App("test-sandboxes")


def _session_client() -> RunnerClient:
    return current_session().client


@pytest.fixture
def sandbox(remote_session: RemoteSession) -> Iterator[nr.Sandbox]:
    sb = nr.Sandbox.create(app=app, timeout=120)
    yield sb
    sb.terminate()


def test_exec_runs_commands_with_their_output_stdin_and_exit_code(sandbox: nr.Sandbox) -> None:
    echo = sandbox.exec("echo", "hello")
    assert echo.stdout.read() == "hello\n"
    assert echo.wait() == 0 and echo.returncode == 0

    cat = sandbox.exec("cat")
    cat.stdin.write("from stdin\n")
    cat.stdin.write(b"and bytes")
    cat.stdin.write_eof()
    cat.stdin.drain()
    assert cat.stdout.read() == "from stdin\nand bytes"
    assert cat.wait() == 0

    failing = sandbox.exec("sh", "-c", "echo oops >&2; exit 3")
    assert failing.stderr.read() == "oops\n"
    assert failing.wait() == 3


def test_output_arrives_while_the_process_still_runs(sandbox: nr.Sandbox) -> None:
    process = sandbox.exec("sh", "-c", "echo first; read line; echo got $line")
    lines = iter(process.stdout)
    assert next(lines) == "first\n"
    assert process.poll() is None  # it is waiting for its stdin: the line came before the end
    process.stdin.write("more\n")
    process.stdin.drain()
    assert next(lines) == "got more\n"
    assert list(lines) == []
    assert process.wait() == 0


def test_the_entrypoint_ending_ends_the_sandbox(remote_session: RemoteSession) -> None:
    sb = nr.Sandbox.create("sh", "-c", "echo out; exit 5", app=app)
    sb.wait()
    assert sb.returncode == 5 and sb.poll() == 5
    assert sb.stdout.read() == "out\n"
    with pytest.raises(RunnerError, match="has exited"):
        sb.exec("true")


def test_terminate_kills_every_command(remote_session: RemoteSession) -> None:
    sb = nr.Sandbox.create("sleep", "600", app=app)
    sleeper = sb.exec("sleep", "600")
    assert sb.poll() is None
    sb.terminate()
    assert sleeper.wait() == 128 + 9  # killed
    assert sb.poll() == 137 and sb.returncode == 137


def test_the_timeout_kills_it(remote_session: RemoteSession) -> None:
    sb = nr.Sandbox.create("sleep", "600", app=app, timeout=1)
    with pytest.raises(nr.exception.SandboxTimeoutError, match="timeout of 1 s"):
        sb.wait()
    assert sb.returncode == 124


def test_files_written_with_open_are_seen_by_commands_and_back(sandbox: nr.Sandbox) -> None:
    with sandbox.open("/tmp/note.txt", "w") as file:
        file.write("written from the notebook\n")
    assert sandbox.exec("cat", "/tmp/note.txt").stdout.read() == "written from the notebook\n"
    with sandbox.open("/tmp/note.txt", "a") as file:
        file.write("appended")
    assert sandbox.exec("sh", "-c", "echo made > out.bin").wait() == 0  # in its workdir
    assert sandbox.open("/sandbox/out.bin", "rb").read() == b"made\n"
    assert sandbox.open("/tmp/note.txt").read().endswith("notebook\nappended")


def test_from_id_reaches_the_same_sandbox(sandbox: nr.Sandbox) -> None:
    assert sandbox.exec("sh", "-c", "echo kept > /tmp/mark").wait() == 0
    again = nr.Sandbox.from_id(sandbox.object_id)
    assert again.exec("cat", "/tmp/mark").stdout.read() == "kept\n"
    with pytest.raises(RunnerError, match="no sandbox"):
        nr.Sandbox.from_id("sb-0000000000000000")


def test_file_data_that_is_not_base64_is_a_422_not_a_500(sandbox: nr.Sandbox) -> None:
    """Found by the API fuzz: characters that are not ASCII at all made the runner fail."""
    client = current_session().client
    path = f"/api/v1/sandboxes/{sandbox.object_id}/files/write"
    for data in ("\u00a1if\u00fd\u0006U", "not base64!"):
        with pytest.raises(RunnerError, match="not base64"):
            client.request("POST", path, {"path": "/tmp/x", "data": data})


def test_open_reaches_no_file_outside_the_sandbox(sandbox: nr.Sandbox, tmp_path: Path) -> None:
    host = tmp_path / "host.txt"
    host.write_text("the host's")
    link = f"ln -s {host} /tmp/link && ln -s {tmp_path} /tmp/folder"
    assert sandbox.exec("sh", "-c", link).wait() == 0
    for path in ("/etc/passwd", "/tmp/link", "/tmp/folder/host.txt", str(host)):
        with pytest.raises(RunnerError):
            sandbox.open(path).read()
    for path in ("/tmp/link", "/tmp/folder/host.txt"):
        with pytest.raises(RunnerError, match="symbolic link"), sandbox.open(path, "w") as file:
            file.write("overwritten")
    with pytest.raises(ValueError, match=r"not an absolute path without '\.\.'"):
        sandbox.open("/tmp/../etc/passwd")
    with pytest.raises(RunnerError, match="not an absolute path"):  # the runner refuses it too
        _session_client().request(
            "POST", f"/api/v1/sandboxes/{sandbox.object_id}/files/read", {"path": "/tmp/../etc/x"}
        )
    assert host.read_text() == "the host's"


def test_a_sandbox_sees_no_runner_file_and_blocks_the_network_when_asked(
    remote_session: RemoteSession, runner: RunningRunner
) -> None:
    sb = nr.Sandbox.create(app=app, block_network=True)
    try:
        listing = sb.exec("ls", "-A", str(runner.data_dir))
        assert listing.stdout.read() == ""  # the data dir is an empty folder in there
        code = "import socket; print(sorted(n for _, n in socket.if_nameindex()))"
        assert sb.exec(sys.executable, "-c", code).stdout.read() == "['lo']\n"
        env = sb.exec("env").stdout.read()
        assert "NBREMOTE_TOKEN" not in env and str(runner.token) not in env
    finally:
        sb.terminate()


def test_image_volumes_and_secrets_reach_its_commands(remote_session: RemoteSession) -> None:
    image = nr.Image.debian_slim().pip_install("six==1.16.0").env({"GREETING": "from the image"})
    volume = nr.Volume.from_name("sandbox-test-volume", create_if_missing=True)
    secret = nr.Secret.from_dict({"SANDBOX_SECRET": "s3cret"})
    sb = nr.Sandbox.create(app=app, image=image, volumes={"/data": volume}, secrets=[secret])
    code = (
        "import os, six, sys; print(six.__version__, os.environ['GREETING'], sys.prefix, sep='|')"
    )
    version, greeting, prefix = sb.exec("python", "-c", code).stdout.read().strip().split("|")
    assert (version, greeting) == ("1.16.0", "from the image")
    assert prefix not in (sys.prefix, sys.base_prefix)  # the image's venv, first on PATH
    write = sb.exec("sh", "-c", "echo $SANDBOX_SECRET > /data/note.txt")
    assert write.wait() == 0
    sb.terminate()  # its volumes are committed as it ends
    assert b"".join(volume.read_file("note.txt")) == b"s3cret\n"


# Modal's guide (Sandboxes), as written there but for the import.
GUIDE_SANDBOX = """
import nbremote as modal

app = modal.App.lookup("sandbox-app", create_if_missing=True)

# Create a sandbox
sb = modal.Sandbox.create(
    image=modal.Image.debian_slim().pip_install("numpy"),
    app=app,
)

# Execute commands
p = sb.exec("python", "-c", "import numpy; print(numpy.__version__)")
print(p.stdout.read())

# Clean up
sb.terminate()
"""


def test_modals_sandbox_example_runs_as_a_script(runner: RunningRunner, tmp_path: Path) -> None:
    import numpy

    env = {"NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": str(runner.token)}
    assert run_python(GUIDE_SANDBOX, tmp_path, env, timeout=300).strip() == numpy.__version__
