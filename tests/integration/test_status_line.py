"""The first ``%%remote`` cell says what it waits for (starting the runner, starting a worker)
while it waits, and leaves no trace of it: in JupyterLab (a real kernel, its notebook saved by
nbclient as a front end keeps it), in a terminal (a ``\\r`` line on stderr), and nothing where
stderr is no terminal.

Each cell asks for an environment of its own (``--env``), so that its worker boots for it (the
runner's booted spare serves only the default spec, and a cell that gets it waits for nothing).
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from nbclient import NotebookClient

from tests.conftest import RunningRunner

ERASE = "\r\x1b[2K"


def own_worker() -> str:
    """``%%remote`` flags that make a worker boot for this cell."""
    return f"--env NBREMOTE_STATUS_TEST={uuid.uuid4().hex}"


class Recording(NotebookClient):  # type: ignore[misc]
    """nbclient, keeping every iopub message each cell got on the way."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages: dict[int, list[dict[str, Any]]] = {}

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        self.messages.setdefault(cell_index, []).append(msg)
        return super().process_message(msg, cell, cell_index)


def run_notebook(sources: list[str], env: dict[str, str], folder: Path) -> Recording:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    client = Recording(notebook, timeout=180, kernel_name="python3", allow_errors=True)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(client.async_execute(cwd=str(folder), env=env))
    finally:
        loop.close()
    return client


def statuses(messages: list[dict[str, Any]]) -> list[str]:
    """The texts the cell's status display showed, in order (shown, then updated in place)."""
    shown = []
    for msg in messages:
        content = msg["content"]
        if msg["msg_type"] in ("display_data", "update_display_data") and (
            content.get("transient", {}).get("display_id")
        ):
            shown.append(content["data"].get("text/plain", ""))
    return shown


def saved(cell: Any) -> list[dict[str, Any]]:
    """A cell's outputs as the notebook file holds them."""
    return [dict(output) for output in cell.outputs]


@pytest.fixture
def kernel_env(nbremote_home: Path) -> Iterator[dict[str, str]]:
    """A kernel's environment with no runner yet: its first cell starts the embedded one."""
    yield {k: v for k, v in os.environ.items() if k not in ("NBREMOTE_URL", "NBREMOTE_TOKEN")}


def test_a_first_cell_in_a_kernel_says_what_it_waits_for_and_leaves_only_its_output(
    kernel_env: dict[str, str], tmp_path: Path
) -> None:
    ran = run_notebook(
        [
            "%load_ext nbremote",
            f"%%remote {own_worker()}\nprint('hello')",
            f"%%remote {own_worker()}\nx = 1",  # no output: the status goes when the cell ends
            f"%%remote {own_worker()}\nprint('again')",
        ],
        kernel_env,
        tmp_path,
    )
    first, quiet, third = (ran.nb.cells[i] for i in (1, 2, 3))
    shown = statuses(ran.messages[1])
    assert shown[0] == "nbremote: starting the runner…"
    assert shown[-1] == "nbremote: starting a worker…"
    assert saved(first) == [{"output_type": "stream", "name": "stdout", "text": "hello\n"}]
    assert statuses(ran.messages[2]) == ["nbremote: starting a worker…"]
    assert saved(quiet) == []
    assert statuses(ran.messages[3]) == ["nbremote: starting a worker…"]
    assert saved(third) == [{"output_type": "stream", "name": "stdout", "text": "again\n"}]


def test_a_cell_with_a_warm_worker_shows_no_status(runner: RunningRunner, tmp_path: Path) -> None:
    env = {**os.environ, "NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": runner.token or ""}
    flags = own_worker()
    ran = run_notebook(
        ["%load_ext nbremote", f"%%remote {flags}\nx = 1", f"%%remote {flags}\nprint(x)"],
        env,
        tmp_path,
    )
    assert statuses(ran.messages[1]) == ["nbremote: starting a worker…"]
    assert [m["msg_type"] for m in ran.messages[2] if m["msg_type"] != "status"] == [
        "execute_input",
        "stream",
    ]
    assert saved(ran.nb.cells[2]) == [{"output_type": "stream", "name": "stdout", "text": "1\n"}]


class Terminal(io.StringIO):
    """A stderr that is a terminal."""

    def isatty(self) -> bool:
        return True


def test_in_a_terminal_the_status_is_one_line_on_stderr_blanked_before_the_output(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    stdout, stderr = io.StringIO(), Terminal()
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    shell.run_cell_magic("remote", own_worker(), "import sys\nprint('hi', file=sys.stderr)")
    assert stderr.getvalue() == f"{ERASE}nbremote: starting a worker…{ERASE}hi\n"
    assert stdout.getvalue() == ""


def test_a_shell_without_a_terminal_gets_no_status(shell: InteractiveShell) -> None:
    with capture_output() as captured:
        shell.run_cell_magic("remote", own_worker(), "print('hi')")
    assert (captured.stdout, captured.stderr) == ("hi\n", "")
