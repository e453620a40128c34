"""The embedded runner's first worker starts before the runner's imports (`backends.early`):
it must be the very worker the backend would have started, sandbox included, or none at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from nbremote_runner.backends.sandbox import unavailable

from tests.conftest import run_python

FIRST_CELL = """
import os
from IPython.testing.globalipapp import start_ipython
shell = start_ipython()
shell.run_line_magic("load_ext", "nbremote")
shell.run_cell_magic("remote", "", '''
import os
sees_home = os.path.exists(os.path.join(os.environ["HOME_UNDER_TEST"], "runner.json"))
pid = os.getpid()
''')
print(shell.user_ns["sees_home"], shell.user_ns["pid"])
"""

# In a fresh interpreter: the early worker's launch changes the process's umask.
ADOPTION = """
import asyncio, os, sys
from pathlib import Path
import psutil
from nbremote_runner.backends import WorkerRequest, early
data_dir = Path(sys.argv[1])
early.launch_spare(data_dir)
first = early._launched
from nbremote_runner.backends.process import ProcessBackend
from nbremote.wire.http import WorkerSpec
from nbremote.wire.shm import create_dir

async def main():
    backend = ProcessBackend(str(data_dir), create_dir(str(os.getpid())))
    spec = WorkerSpec(env={"ASKED": "yes"}) if sys.argv[2] == "env" else WorkerSpec()
    worker = await backend.start_worker(WorkerRequest(spec))
    env = psutil.Process(worker.stats().pid).environ()
    print(worker.id == first.worker_id, env.get("ASKED"), first.proc.poll() is None)
    await worker.stop()

asyncio.run(main())
"""


@pytest.mark.skipif(unavailable() is not None, reason=f"no sandbox here: {unavailable()}")
def test_the_first_cell_of_a_fresh_embedded_runner_runs_in_a_sandbox(
    nbremote_home: Path, tmp_path: Path
) -> None:
    env = {"HOME_UNDER_TEST": str(nbremote_home)}
    sees_home, pid = run_python(FIRST_CELL, tmp_path, env).split()
    assert (nbremote_home / "runner.json").exists()
    assert sees_home == "False"  # the data dir, with the token, is hidden from user code
    assert int(pid) < 10  # a PID namespace of its own


def test_the_backend_adopts_the_early_worker_for_the_default_spec(tmp_path: Path) -> None:
    code = f"import sys; sys.argv[1:] = [{str(tmp_path)!r}, 'default']\n" + ADOPTION
    assert run_python(code, tmp_path).split() == ["True", "None", "True"]


def test_a_first_worker_of_another_spec_is_started_for_it_and_the_early_one_stopped(
    tmp_path: Path,
) -> None:
    code = f"import sys; sys.argv[1:] = [{str(tmp_path)!r}, 'env']\n" + ADOPTION
    assert run_python(code, tmp_path).split() == ["False", "yes", "False"]
