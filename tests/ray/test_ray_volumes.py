"""Volumes on the ray backend: working copies on a folder every node sees (`--ray-volume-root`),
bound at their mount path on whichever node a worker runs; refused, saying why, without one.
The refusal is tested on a runner that started a local Ray instance of its own (no
``--ray-address``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbremote as nr
from nbremote import _session
from tests.conftest import TOKEN, RunningRunner, start_runner

from .conftest import _script

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
MOUNT = "/nbremote-ray-data"  # made inside each worker's sandbox, never on the host
app = nr.App("ray-volume-tests")


def remote(shell: InteractiveShell, cell: str, line: str = "") -> Any:
    return shell.run_cell_magic("remote", line, cell)


def test_a_cell_on_one_node_writes_a_volume_a_function_on_another_node_reads(
    ray_shell: InteractiveShell, ray_session: _session.RemoteSession
) -> None:
    with nr.Volume.ephemeral() as vol:

        @app.function(volumes={MOUNT: vol})
        def look() -> tuple[str, str]:
            import os

            return Path(f"{MOUNT}/note.txt").read_text(), os.environ["NBREMOTE_RAY_NODE_ID"]

        ray_shell.user_ns["vol"] = vol
        write = (
            f"import os\nopen('{MOUNT}/note.txt', 'w').write('from a cell')\nvol.commit()\n"
            "writer = os.environ['NBREMOTE_RAY_NODE_ID']"
        )
        remote(ray_shell, write, f"--volume {vol.name}:{MOUNT}")
        text, reader = look.remote()
        assert text == "from a cell"
        assert reader != ray_shell.user_ns["writer"]  # another node saw what the cell wrote
        assert b"".join(vol.read_file("note.txt")) == b"from a cell"  # and so does the notebook
    assert not Path(MOUNT).exists()


@pytest.fixture
def local_ray_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningRunner]:
    """A ray runner without ``--ray-address`` (a local Ray instance in the runner's process,
    under a temp dir of its own) and without a volume root."""
    folder = Path(tempfile.mkdtemp(prefix="nbray-local-"))  # short: Ray's sockets live under it
    monkeypatch.setenv("RAY_TMPDIR", str(folder))
    running = start_runner(tmp_path / "data", TOKEN, "--backend", "ray")
    try:
        yield running
    finally:
        running.stop()
        _script().stop(folder)  # whatever of that Ray instance outlived its runner
        shutil.rmtree(folder, ignore_errors=True)


def test_a_local_ray_runner_runs_a_call_and_refuses_a_volume_saying_why(
    local_ray_runner: RunningRunner,
) -> None:
    session = _session.connect(local_ray_runner.url, local_ray_runner.token)
    try:
        with nr.Volume.ephemeral() as volume:

            @app.function
            def node() -> tuple[str, str | None]:
                import os

                return os.environ["NBREMOTE_RAY_NODE_ID"], os.environ.get("RAY_TMPDIR")

            @app.function(volumes={"/data": volume})
            def listing() -> list[str]:
                import os

                return os.listdir("/data")

            node_id, ray_folder = node.remote()
            assert len(node_id) == 56 and ray_folder == os.environ["RAY_TMPDIR"]  # its own Ray
            with pytest.raises(
                nr.NbremoteError,
                match=r"volumes \(/data\) on the ray backend need storage every node sees: "
                r"start the runner with --ray-volume-root",
            ):
                listing.remote()
    finally:
        session.reset()
        session.close()
        _session._current = None
