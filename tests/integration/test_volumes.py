"""Volumes on a real runner: mounted in real workers (bubblewrap), committed, reloaded, shared."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import nbremote as nr
from nbremote import _session
from nbremote._session import RemoteSession
from tests.conftest import TOKEN, RunningRunner, start_runner

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
MOUNT = "/nbremote-test-data"  # made inside each worker's sandbox, never on the host
app = nr.App("volume-tests")


@pytest.fixture
def vol(remote_session: RemoteSession) -> Iterator[nr.Volume]:
    with nr.Volume.ephemeral() as volume:
        yield volume


def read(volume: nr.Volume, path: str) -> bytes:
    return b"".join(volume.read_file(path))


def test_write_commit_then_read_in_another_container_and_the_notebook(vol: nr.Volume) -> None:
    @app.function(volumes={MOUNT: vol})
    def write(text: str) -> str:
        Path(f"{MOUNT}/models/a.txt").parent.mkdir()
        Path(f"{MOUNT}/models/a.txt").write_text(text)
        vol.commit()
        return os.environ.get("NBREMOTE_TASK_ID", str(os.getpid()))  # which worker

    @app.function(volumes={MOUNT: vol})
    def look() -> tuple[str, str]:
        worker = os.environ.get("NBREMOTE_TASK_ID", str(os.getpid()))
        return Path(f"{MOUNT}/models/a.txt").read_text(), worker

    writer = write.remote("weights v1")
    text, reader = look.remote()
    assert text == "weights v1" and reader != writer
    assert read(vol, "models/a.txt") == b"weights v1"
    [entry] = vol.listdir("/models")
    assert (entry.path, entry.type, entry.size) == (
        "models/a.txt",
        nr.volume.FileEntryType.FILE,
        10,
    )
    assert not Path(MOUNT).exists()


def test_uncommitted_writes_are_invisible_until_commit_and_reload(
    shell: InteractiveShell, vol: nr.Volume
) -> None:
    @app.function(volumes={MOUNT: vol}, max_containers=1)
    def peek(reload: bool) -> str | None:
        if reload:
            vol.reload()
        path = Path(f"{MOUNT}/note.txt")
        return path.read_text() if path.exists() else None

    shell.user_ns["vol"] = vol
    cell = f"--volume {vol.name}:{MOUNT}"
    shell.run_cell_magic("remote", cell, f"open('{MOUNT}/note.txt', 'w').write('draft')")
    assert peek.remote(False) is None  # a container started after the write, before a commit
    with pytest.raises(nr.RunnerError, match="no file"):
        read(vol, "note.txt")
    shell.run_cell_magic("remote", cell, "vol.commit()")
    assert peek.remote(False) is None  # its copy is as it was when it started
    assert peek.remote(True) == "draft"
    assert read(vol, "note.txt") == b"draft"


def test_reload_keeps_the_containers_own_uncommitted_changes(vol: nr.Volume) -> None:
    @app.function(volumes={MOUNT: vol}, max_containers=1)
    def step(action: str) -> dict[str, str]:
        if action == "edit":
            Path(f"{MOUNT}/mine.txt").write_text("mine, not committed")
        if action == "reload":
            vol.reload()
        return {p.name: p.read_text() for p in Path(MOUNT).iterdir()}

    assert step.remote("edit") == {"mine.txt": "mine, not committed"}
    source = Path(os.environ.get("TMPDIR", "/tmp")) / f"theirs-{vol.name}.txt"
    source.write_text("theirs")
    vol.put_file(source, "theirs.txt")
    assert step.remote("reload") == {"mine.txt": "mine, not committed", "theirs.txt": "theirs"}


def test_clean_stop_commits_and_a_crash_does_not(shell: InteractiveShell, vol: nr.Volume) -> None:
    cell = f"--volume {vol.name}:{MOUNT}"
    shell.run_cell_magic("remote", cell, f"open('{MOUNT}/kept.txt', 'w').write('kept')")
    shell.run_line_magic("remote", "reset")  # stops the worker cleanly
    assert read(vol, "kept.txt") == b"kept"
    shell.run_cell_magic("remote", cell, f"open('{MOUNT}/lost.txt', 'w').write('lost')")
    with pytest.raises(nr.WorkerDied):
        shell.run_cell_magic("remote", cell, "import os; os._exit(3)")
    assert [entry.path for entry in vol.listdir("/")] == ["kept.txt"]


def test_a_map_over_many_workers_writes_one_file_each(vol: nr.Volume) -> None:
    @app.function(volumes={MOUNT: vol}, max_containers=4)
    def part(i: int) -> str:
        Path(f"{MOUNT}/parts").mkdir(exist_ok=True)
        Path(f"{MOUNT}/parts/{i:02d}.txt").write_text(str(i * i))
        vol.commit()
        time.sleep(0.5)  # long enough that the map scales out instead of one warm worker doing all
        return os.environ.get("NBREMOTE_TASK_ID", str(os.getpid()))

    pids = set(part.map(range(12)))
    assert len(pids) > 1
    entries = vol.listdir("parts")
    assert [entry.path for entry in entries] == [f"parts/{i:02d}.txt" for i in range(12)]
    assert read(vol, "parts/11.txt") == b"121"


def test_paths_that_escape_the_volume_are_refused(vol: nr.Volume, tmp_path: Path) -> None:
    (tmp_path / "x").write_text("x")
    for path in ("../x", "a/../../x"):
        with pytest.raises(nr.RunnerError, match=r"'\.\.' would leave the volume"):
            vol.put_file(tmp_path / "x", path)
        with pytest.raises(nr.RunnerError, match="leave the volume"):
            vol.listdir(path)

    @app.function(volumes={MOUNT: vol})
    def link(target: str) -> None:
        Path(f"{MOUNT}/link").unlink(missing_ok=True)  # the last (refused) one, if any
        os.symlink(target, f"{MOUNT}/link")
        vol.commit()

    with pytest.raises(nr.RemoteError, match="links to the absolute path '/etc/passwd'"):
        link.remote("/etc/passwd")
    with pytest.raises(nr.RemoteError, match="outside the volume"):
        link.remote("../../etc")
    link.remote("x")  # a relative link that stays inside is kept
    assert [(e.path, e.type.value) for e in vol.listdir("/")] == [("link", "link")]


def test_mount_paths_are_checked(vol: nr.Volume, shell: InteractiveShell) -> None:
    for path, message in [
        ("/usr/share/models", "is a system path"),
        ("models", "must be an absolute path"),
        ("/a/../b", "plain absolute path"),
    ]:
        with pytest.raises(nr.NbremoteError, match=message):
            app.function(volumes={path: vol})(len)
    with pytest.raises(nr.NbremoteError, match="clash"):
        app.function(volumes={"/data": vol, "/data/inner": vol})(len)
    with pytest.raises(UsageError, match="NAME:/path"):
        shell.run_cell_magic("remote", "--volume models", "pass")

    @app.function(volumes={"/home/no-such-folder-here": vol})
    def under_home() -> None: ...

    with pytest.raises(nr.RemoteError, match="will not create folders on the host"):
        under_home.remote()
    assert not Path("/home/no-such-folder-here").exists()


def test_a_missing_volume_names_those_there_are(vol: nr.Volume) -> None:
    with pytest.raises(
        nr.RunnerError, match=rf"no volume named 'absent' \(there are: .*{vol.name}"
    ):
        nr.Volume.from_name("absent")

    @app.function(volumes={MOUNT: nr.Volume("absent")})
    def uses_absent() -> None: ...

    with pytest.raises(nr.RemoteError, match="no volume named 'absent'"):
        uses_absent.remote()


def test_batch_upload_copy_and_remove(vol: nr.Volume, tmp_path: Path) -> None:
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    (tmp_path / "dir" / "one.txt").write_text("1")
    (tmp_path / "dir" / "sub" / "two.txt").write_text("22")
    (tmp_path / "single.bin").write_bytes(b"\0" * 3_000_000)
    with vol.batch_upload() as batch:
        batch.put_directory(tmp_path / "dir", "/data")
        batch.put_file(tmp_path / "single.bin", "/blobs/single.bin")
    paths = [entry.path for entry in vol.listdir("/", recursive=True)]
    assert paths == [
        "blobs", "blobs/single.bin", "data", "data/one.txt", "data/sub", "data/sub/two.txt",
    ]  # fmt: skip
    with pytest.raises(nr.RunnerError, match="exists"), vol.batch_upload() as batch:
        batch.put_file(tmp_path / "single.bin", "/blobs/single.bin")
    vol.copy_files(["data/one.txt", "data/sub"], "blobs")
    assert read(vol, "blobs/sub/two.txt") == b"22" and read(vol, "blobs/one.txt") == b"1"
    with pytest.raises(nr.RunnerError, match="not empty"):
        vol.remove_file("data")
    vol.remove_file("data", recursive=True)
    assert [entry.path for entry in vol.listdir("/")] == ["blobs"]
    assert len(read(vol, "blobs/single.bin")) == 3_000_000


def _cli(runner: RunningRunner, *args: str) -> str:
    env = {**os.environ, "NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": runner.token or ""}
    result = subprocess.run(
        [sys.executable, "-m", "nbremote", *args], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_cli(runner: RunningRunner, tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"weights")
    _cli(runner, "volumes", "create", "cli-volume")
    try:
        _cli(runner, "volumes", "put", "cli-volume", str(tmp_path / "w.bin"), "/models/")
        files = json.loads(_cli(runner, "volumes", "files", "cli-volume", "-r", "--json"))
        assert [(f["path"], f["size"]) for f in files] == [("models", 0), ("models/w.bin", 7)]
        listed = json.loads(_cli(runner, "volumes", "ls", "--json"))
        mine = next(v for v in listed if v["name"] == "cli-volume")
        assert (mine["files"], mine["size"]) == (1, 7) and mine["modified_at"] > 0
        _cli(runner, "volumes", "get", "cli-volume", "models/w.bin", str(tmp_path / "back.bin"))
        assert (tmp_path / "back.bin").read_bytes() == b"weights"
        _cli(runner, "volumes", "get", "cli-volume", "/models", str(tmp_path / "out"))
        assert (tmp_path / "out" / "models" / "w.bin").read_bytes() == b"weights"
    finally:
        _cli(runner, "volumes", "rm", "cli-volume")
    assert "cli-volume" not in _cli(runner, "volumes", "ls")


def test_restart_keeps_volumes(fresh_runner: RunningRunner, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("survives")
    _session.connect(fresh_runner.url, fresh_runner.token)
    nr.Volume.from_name("kept", create_if_missing=True).put_file(tmp_path / "f", "f")
    _session.current_session().close()
    fresh_runner.stop()
    again = start_runner(fresh_runner.data_dir)
    try:
        _session.connect(again.url, again.token)
        assert read(nr.Volume.from_name("kept"), "f") == b"survives"
    finally:
        _session.current_session().close()
        _session._current = None
        again.stop()


def test_a_full_disk_fails_the_upload_and_keeps_the_last_version(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # The runner in a sandbox of its own whose data dir is a 4 MiB tmpfs.
    bwrap = [
        shutil.which("bwrap") or "bwrap", "--die-with-parent", "--dev-bind", "/", "/",
        "--size", str(4 << 20), "--tmpfs", str(data), "--",
    ]  # fmt: skip
    running = start_runner(data, TOKEN, wrap=bwrap)
    try:
        _session.connect(running.url, TOKEN)
        vol = nr.Volume.from_name("small", create_if_missing=True)
        (tmp_path / "ok").write_bytes(b"1" * 1_000_000)
        (tmp_path / "big").write_bytes(b"2" * 8_000_000)
        vol.put_file(tmp_path / "ok", "ok")
        with pytest.raises(nr.RunnerError, match="disk is full"):
            vol.put_file(tmp_path / "big", "big")
        assert [entry.path for entry in vol.listdir("/")] == ["ok"]
        assert read(vol, "ok") == b"1" * 1_000_000
    finally:
        _session.current_session().close()
        _session._current = None
        running.stop()
