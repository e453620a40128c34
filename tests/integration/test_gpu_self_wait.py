"""A notebook never waits on itself for a GPU: its own idle workers (cells and functions) give
way, saying which and what is lost, and while its own busy workers hold what a cell needs the
waiting line names them. On a runner declaring two A100s (``--gpus A100-80GB:2``)."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Iterator

import pytest

import nbremote as nr
from nbremote import _session
from nbremote._cell import CellOptions, run_cell
from nbremote._client import RunnerClient
from nbremote.errors import RunnerError
from nbremote.gpu import parse

from ..conftest import TOKEN, RunningRunner, start_runner
from .test_gpus import TIMES, Notebook

GONE = "its remote namespace is gone"


@pytest.fixture(scope="module")
def two_a100s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRunner]:
    """A runner whose inventory is two A100s."""
    folder = tmp_path_factory.mktemp("self-wait")
    running = start_runner(folder / "data", TOKEN, "--gpus", "A100-80GB:2")
    yield running
    running.stop()


@pytest.fixture
def notebook(two_a100s: RunningRunner) -> Iterator[Notebook]:
    """A notebook on that runner, its session ended afterwards (even if a cell still waits)."""
    opened = Notebook(two_a100s)
    yield opened
    with two_a100s.client() as client, contextlib.suppress(RunnerError):
        # Not through the session: a cell still waiting holds its lock.
        client.request("DELETE", f"/api/v1/sessions/{opened.session.id}")
    opened.session.close()


def in_thread(work: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    """Run ``work`` in a thread of its own; what it raised is in the list once it ends."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def finished(thread: threading.Thread, errors: list[BaseException], what: str) -> None:
    thread.join(60)
    assert not thread.is_alive(), f"{what} still waits: the notebook waits on itself"
    assert not errors, errors


def test_a_cell_needing_both_gpus_stops_the_notebooks_own_idle_gpu_worker(
    notebook: Notebook,
) -> None:
    notebook.run("import os\nfirst = os.environ['CUDA_VISIBLE_DEVICES']", gpu="A100")
    assert notebook.namespace["first"] == "0"

    options = CellOptions(gpu=parse("A100:2"), fresh=True)
    code = "import os\nboth = os.environ['CUDA_VISIBLE_DEVICES']"
    thread, errors = in_thread(
        lambda: run_cell(notebook.session, code, notebook.namespace, options, notebook.on_frame)
    )
    finished(thread, errors, "%%remote --gpu A100:2 --fresh")
    assert notebook.namespace["both"] == "0,1"
    assert f"stopped this notebook's idle --gpu A100 worker to free GPU 0; {GONE}" in (
        notebook.notices
    )
    assert not [text for text in notebook.notices if text.startswith("waiting")]


def test_a_cell_waiting_on_the_notebooks_own_busy_cell_names_it(
    two_a100s: RunningRunner, notebook: Notebook
) -> None:
    # A second channel of the same kernel's session: its first cell runs in a thread while
    # the other asks for both GPUs (as a cell started from a thread of the notebook would).
    twin = Notebook(two_a100s)
    twin.session.id, twin.session.client_id = notebook.session.id, notebook.session.client_id
    gates = _session.RemoteSession(RunnerClient(two_a100s.url, two_a100s.token))
    _session._current = gates  # the test's own Dict calls go through a session of their own
    gate = nr.Dict.from_name("self-wait-gate", create_if_missing=True)
    try:
        busy = (
            "import time\nimport nbremote as nr\ngate = nr.Dict.from_name('self-wait-gate')\n"
            "for _ in range(1200):\n    if 'go' in gate:\n        break\n    time.sleep(0.05)"
        )
        holding, held_errors = in_thread(lambda: twin.run(busy, gpu="A100"))
        assert _wait_for(lambda: _busy_on(two_a100s, 0)), "the busy cell never got its GPU"
        waiting, wait_errors = in_thread(
            lambda: notebook.run("import os\nboth = os.environ['CUDA_VISIBLE_DEVICES']", "A100:2")
        )
        told = _wait_for(lambda: any(t.startswith("waiting") for t in notebook.notices))
        assert told, "the waiting cell said nothing"
        assert notebook.notices[0] == (
            f"waiting for 2{TIMES}A100, position 1 in the GPU queue; held by this notebook's "
            "--gpu A100 worker on GPU 0 (running a cell now; it gives way when the cell ends)"
        )
        assert waiting.is_alive()

        gate["go"] = True  # the busy cell ends: its worker, idle now, gives way
        finished(holding, held_errors, "the busy cell")
        finished(waiting, wait_errors, "%%remote --gpu A100:2")
        assert notebook.namespace["both"] == "0,1"
        assert notebook.notices[1] == (
            f"stopped this notebook's idle --gpu A100 worker to free GPU 0; {GONE}"
        )
    finally:
        gate["go"] = True
        gates.reset()
        gates.close()
        _session._current = None
        twin.session.close()


def test_an_idle_function_container_of_the_notebook_gives_way_to_its_cell(
    two_a100s: RunningRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    session = _session.connect(two_a100s.url, two_a100s.token)
    notebook = Notebook(two_a100s)
    notebook.session = session

    @nr.remote(gpu="A100", scaledown_window=600)
    def visible() -> str:
        return os.environ["CUDA_VISIBLE_DEVICES"]

    try:
        assert visible.remote() == "0"
        thread, errors = in_thread(
            lambda: notebook.run("import os\nboth = os.environ['CUDA_VISIBLE_DEVICES']", "A100:2")
        )
        finished(thread, errors, "%%remote --gpu A100:2")
        assert notebook.namespace["both"] == "0,1"
        assert re.fullmatch(
            r"stopped this notebook's idle function notebook\.(\S+\.)?visible to free GPU 0; "
            "it starts again on its next call",
            notebook.notices[0],
        )

        # And the other way: the function's next call stops the idle two-GPU cell worker.
        capsys.readouterr()
        assert visible.remote() == "0"
        assert (
            f"nbremote: stopped this notebook's idle --gpu A100:2 worker to free GPUs 0, 1; {GONE}"
            in capsys.readouterr().err
        )
    finally:
        with two_a100s.client() as client:
            client.request("DELETE", f"/api/v1/sessions/{session.id}")
        session.close()
        _session._current = None


def _busy_on(runner: RunningRunner, index: int) -> bool:
    """Whether a started worker holds GPU ``index`` and is serving a request."""
    with runner.client() as client:
        holder = client.request("GET", "/api/v1/gpus")["gpus"][index]["holder"]
    return holder is not None and holder["worker"] is not None and not holder["idle"]


def _wait_for(condition: Callable[[], bool], seconds: float = 30) -> bool:
    """Whether ``condition`` came true within ``seconds`` (checked every 50 ms)."""
    done = threading.Event()
    for _ in range(int(seconds / 0.05)):
        if condition():
            return True
        done.wait(0.05)
    return condition()
