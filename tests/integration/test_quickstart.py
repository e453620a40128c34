"""notebooks/quickstart.ipynb through nbclient, in a real kernel, on an embedded runner."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
from nbclient import NotebookClient

QUICKSTART = Path(__file__).parents[2] / "notebooks" / "quickstart.ipynb"


def _text(cell: Any, name: str) -> str:
    return "".join(
        o["text"] for o in cell.outputs if o["output_type"] == "stream" and o["name"] == name
    )


def _cell(notebook: Any, starts: str) -> Any:
    return next(
        cell
        for cell in notebook.cells
        if cell.cell_type == "code" and cell.source.startswith(starts)
    )


def test_quickstart_runs_and_shows_its_outputs(nbremote_home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(QUICKSTART, folder)
    for name in ("runner", "server_ext"):  # user files that must not shadow anything
        (folder / f"{name}.py").write_text("raise RuntimeError('user file imported')\n")
    notebook = nbformat.read(folder / "quickstart.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()

    kernel_pid = _text(_cell(notebook, "import os"), "stdout").split()[-1]
    shipped = _cell(notebook, "%%remote\nimport os")
    worker_pid = _text(shipped, "stdout").split()[-1]
    assert worker_pid != kernel_pid
    tables = [o for o in shipped.outputs if "text/html" in o.get("data", {})]
    assert len(tables) == 1 and "<table" in tables[0]["data"]["text/html"]

    back = _text(_cell(notebook, 'print(f"total came back'), "stdout")
    expected = np.random.default_rng(0).random(1_000_000).sum()
    assert back == f"total came back: {expected:.1f}, summary is a DataFrame\n"

    plot = _cell(notebook, "%%remote\nimport matplotlib")
    assert [o for o in plot.outputs if "image/png" in o.get("data", {})]
    assert not [
        o
        for o in plot.outputs
        if o["output_type"] == "execute_result"
        or ("text/plain" in o.get("data", {}) and "Text(" in o["data"]["text/plain"])
    ]

    progress = _text(_cell(notebook, "%%remote\nimport time"), "stderr")
    assert "training: 100%" in progress and "20/20" in progress and "\r" in progress

    failed = _cell(notebook, "%%remote\nratio")
    errors = [o for o in failed.outputs if o["output_type"] == "error"]
    assert errors[0]["ename"] == "ZeroDivisionError"
    assert any("line 3" in line for line in errors[0]["traceback"])
    assert _text(_cell(notebook, 'print("ratio" in'), "stdout").strip() == "False False"

    status = _text(_cell(notebook, "%remote status"), "stdout")
    assert "weights" in status and "ndarray" in status and "resident" in status


def test_functions_notebook_maps_with_a_progress_bar(nbremote_home: Path) -> None:
    path = QUICKSTART.parent / "functions.ipynb"
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()

    called = _cell(notebook, "@nr.remote")
    assert called.outputs[0]["data"]["text/plain"] == "(4.0, 4.0)"
    mapped = _cell(notebook, "features = list")
    assert _text(mapped, "stdout") == f"60 features, sum {sum(x**0.5 for x in range(60)):.2f}\n"
    progress = _text(mapped, "stderr")
    assert "featurize.map" in progress and "60/60" in progress
    spawned = _cell(notebook, "call = featurize.spawn")
    assert spawned.outputs[-1]["data"]["text/plain"] == "9.0"
