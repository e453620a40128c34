"""Runs a public notebook twice through nbclient, locally and with every code cell under
``%%remote``, and compares the two cell by cell.

Both runs use a real ipykernel (what a user's notebook runs in), each in a fresh temporary folder;
the remote run's kernel finds a real runner through ``NBREMOTE_URL``/``NBREMOTE_TOKEN``. Errors do
not stop a run (``allow_errors``): a cell that fails locally should fail the same way remotely.
Cells that are themselves cell magics (``%%time``) go under ``%%remote`` too: the worker runs them.

Both runs start with a hidden cell (not compared) that seeds Python's and NumPy's global random
generators, and every process runs with ``PYTHONHASHSEED=0``: without that, two *local* runs of a
notebook that prints random numbers or a set of strings would already differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

from tests.conftest import TOKEN, RunningRunner, start_runner
from tests.fidelity.compare import CellView, diff, view

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
SOURCES = HERE / "SOURCES.md"
HOUSE = HERE / "house"  # the project's own notebooks: committed, so CI always runs them
CELL_TIMEOUT = 60  # seconds; the slowest cells (a loop of %timeit) take about 15
SEED = "import random as _r, numpy as _np\n_r.seed(0)\n_np.random.seed(0)\ndel _r, _np"
HASH_SEED = {"PYTHONHASHSEED": "0"}


def notebook_names() -> list[str]:
    """The notebooks of the suite, as SOURCES.md lists them (one table row each)."""
    return re.findall(r"^\| `([\w-]+)\.ipynb` \|", SOURCES.read_text(), re.MULTILINE)


def house_names() -> list[str]:
    """The project's own notebooks (house/), which are always here, unlike the public ones."""
    return sorted(path.stem for path in HOUSE.glob("*.ipynb"))


def notebook_path(name: str, folder: Path | None) -> Path:
    """Notebook ``name``: from house/ when it is one of the project's own, else from ``folder``
    (the public notebooks' folder)."""
    house = HOUSE / f"{name}.ipynb"
    return house if house.exists() or folder is None else folder / f"{name}.ipynb"


def notebooks_folder() -> Path | None:
    """Where the notebooks are: $NBREMOTE_FIDELITY_NOTEBOOKS, this folder's notebooks/, or a
    shared/fidelity/notebooks in or beside the checkout (see SOURCES.md for why)."""
    given = os.environ.get("NBREMOTE_FIDELITY_NOTEBOOKS")
    candidates = [
        *([Path(given)] if given else []),
        HERE / "notebooks",
        ROOT / "shared" / "fidelity" / "notebooks",
        ROOT.parent / "shared" / "fidelity" / "notebooks",
    ]
    for folder in candidates:
        if any(folder.glob("*.ipynb")):
            return folder
    return None


@dataclass
class CellResult:
    """One code cell of the notebook: where it is, and how the two runs differ ('' if not)."""

    index: int  # its index in the notebook's cells (markdown included)
    head: str  # its first source line
    diff: str

    @property
    def matched(self) -> bool:
        return not self.diff


@dataclass
class NotebookResult:
    """A notebook's comparison, cell by cell, and how long each run took."""

    name: str
    cells: list[CellResult] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def mismatched(self) -> list[CellResult]:
        return [cell for cell in self.cells if not cell.matched]

    @property
    def matched(self) -> int:
        return len(self.cells) - len(self.mismatched)


def _hidden(source: str) -> Any:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["fidelity_hidden"] = True
    return cell


def local_variant(notebook: Any) -> Any:
    """The notebook as is, after the hidden seeding cell."""
    copy = nbformat.from_dict(notebook)
    copy.cells = [_hidden(SEED), *copy.cells]
    return copy


def remote_variant(notebook: Any) -> Any:
    """Every code cell under ``%%remote``, after hidden cells that load the extension and seed
    the worker's generators, and before one that ends the worker."""
    copy = nbformat.from_dict(notebook)
    for cell in copy.cells:
        if cell.cell_type == "code":
            cell.source = "%%remote\n" + cell.source
    copy.cells = [_hidden("%load_ext nbremote"), _hidden("%%remote\n" + SEED), *copy.cells]
    copy.cells.append(_hidden("%remote reset"))  # its worker's memory back, for the next ones
    return copy


def execute(notebook: Any, env: dict[str, str]) -> list[Any]:
    """Run ``notebook`` in a new python3 kernel with ``env``, in a fresh folder; its code cells
    (hidden ones left out), executed."""
    with tempfile.TemporaryDirectory(prefix="fidelity-nb-") as folder:
        client = NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT,
            kernel_name="python3",
            allow_errors=True,
            interrupt_on_timeout=True,  # a cell that hangs fails alone, the run goes on
            coalesce_streams=True,
            resources={"metadata": {"path": folder}},
        )
        # A loop of this run's own, closed after it: runs go side by side in threads.
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(client.async_execute(cwd=folder, env=env))
        finally:
            loop.close()
    return [
        cell
        for cell in notebook.cells
        if cell.cell_type == "code" and not cell.metadata.get("fidelity_hidden")
    ]


def _timed(notebook: Any, env: dict[str, str]) -> tuple[list[Any], float]:
    started = time.monotonic()
    cells = execute(notebook, env)
    return cells, time.monotonic() - started


def kernel_env(runner: RunningRunner, home: Path) -> dict[str, str]:
    """The remote run's kernel environment: pointed at ``runner``, with a home of its own."""
    return (
        os.environ
        | HASH_SEED
        | {
            "NBREMOTE_URL": runner.url,
            "NBREMOTE_TOKEN": runner.token or "",
            "NBREMOTE_HOME": str(home),
        }
    )


def compare(name: str, folder: Path | None, runner: RunningRunner, home: Path) -> NotebookResult:
    """Run notebook ``name`` (``notebook_path``) locally and remotely; compare cell by cell."""
    notebook = nbformat.read(notebook_path(name, folder), as_version=4)
    result = NotebookResult(name)
    # The two runs are independent: run them side by side (most of a run is waiting on kernels).
    with ThreadPoolExecutor(2) as pool:
        local_run = pool.submit(_timed, local_variant(notebook), os.environ | HASH_SEED)
        remote_run = pool.submit(_timed, remote_variant(notebook), kernel_env(runner, home))
        local, result.seconds["local"] = local_run.result()
        remote, result.seconds["remote"] = remote_run.result()
    code = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    for index, mine, theirs in zip(code, local, remote, strict=True):
        head = notebook.cells[index].source.partition("\n")[0][:70]
        result.cells.append(CellResult(index, head, cell_diff(mine, theirs)))
    return result


def compare_all(
    names: list[str], folder: Path | None, runner: RunningRunner, home: Path, at_once: int = 2
) -> Iterator[NotebookResult]:
    """``compare`` for each of ``names``, ``at_once`` notebooks side by side (each run waits on
    its kernel most of the time: sleeps, kernel starts, round trips), in the order given."""
    with ThreadPoolExecutor(at_once) as pool:
        yield from pool.map(lambda name: compare(name, folder, runner, home), names)


def cell_diff(local: Any, remote: Any) -> str:
    """How the remote run of a cell differs from the local one ('' when it does not)."""
    mine: CellView = view(local.outputs)
    return diff(mine, view(remote.outputs))


@contextlib.contextmanager
def fidelity_runner(data_dir: Path) -> Iterator[RunningRunner]:
    """A real runner on a loopback port, its workers with the suite's hash seed."""
    running = start_runner(
        data_dir, TOKEN, wrap=["env", *(f"{k}={v}" for k, v in HASH_SEED.items())]
    )
    try:
        yield running
    finally:
        running.stop()
