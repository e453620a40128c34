"""What a notebook shows when remote code fails, or nbremote itself cannot go on.

Each test runs cells through a real IPython shell (``run_cell``, as a notebook does) against a
real runner, and reads the traceback the shell printed: what the user sees.
"""

from __future__ import annotations

import io
import socket
import sys
from pathlib import Path

import pytest
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from IPython.utils.capture import capture_output

from nbremote.errors import AuthenticationError, RunnerUnavailable, SerializationError, WorkerDied
from tests.conftest import RunningRunner, run_python

FUNCTIONS = """\
import nbremote as nr

@nr.remote()
def f(x):
    y = x + 1
    return g(y)

def g(y):
    return 1 / (y - y)
"""


@pytest.fixture
def shell(shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> InteractiveShell:
    """The shared shell, its namespace the ``__main__`` module as in a kernel (under pytest,
    ``__main__`` is pytest's own module)."""
    monkeypatch.setitem(sys.modules, "__main__", shell.user_module)
    return shell


def run(shell: InteractiveShell, cell: str) -> tuple[ExecutionResult, str]:
    """Run a cell as a notebook would; its result and everything it printed."""
    with capture_output() as captured:
        result = shell.run_cell(cell, store_history=True)
    return result, captured.stdout + captured.stderr


def defined(shell: InteractiveShell) -> int:
    """Define the functions above in a cell; that cell's number."""
    number = shell.execution_count
    result, _ = run(shell, FUNCTIONS)
    result.raise_error()
    return number


def test_a_function_error_shows_the_calling_cell_and_the_remote_source(
    shell: InteractiveShell,
) -> None:
    cell = defined(shell)
    calling = shell.execution_count
    result, shown = run(shell, "a = 0\nf.remote(a)")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    # The calling cell's frame, then each remote frame with its source line, as locally.
    assert f"Cell In[{calling}], line 2\n      1 a = 0\n----> 2 f.remote(a)" in shown
    assert f"Cell In[{cell}], line 6, in f" in shown
    assert "----> 6     return g(y)" in shown
    assert f"Cell In[{cell}], line 9, in g" in shown
    assert "----> 9     return 1 / (y - y)" in shown
    assert shown.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "nbremote/" not in shown and "<dynamic-code>" not in shown


def test_a_map_error_shows_the_same(shell: InteractiveShell) -> None:
    cell = defined(shell)
    result, shown = run(shell, "results = list(f.map([1, 2]))")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    assert "----> 1 results = list(f.map([1, 2]))" in shown
    assert f"Cell In[{cell}], line 9, in g" in shown
    assert "nbremote/" not in shown


def test_debug_after_a_function_error_walks_the_remote_frames(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    defined(shell)
    run(shell, "f.remote(0)")
    monkeypatch.setattr(sys, "stdin", io.StringIO("where\nup\np 'up in ' + __name__\nq\n"))
    _, shown = run(shell, "%debug")
    # Post-mortem starts in the innermost remote frame, at its source line.
    assert "(9)g()" in shown and "----> 9     return 1 / (y - y)" in shown
    assert "(6)f()" in shown  # `where` lists the remote caller too


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _short(shown: str) -> None:
    """Said in a few lines, without the socket and session code it came through."""
    assert len(shown.strip().splitlines()) <= 4, shown
    assert "socket.py" not in shown and "_session.py" not in shown and "_client.py" not in shown


def test_an_unreachable_runner_is_one_message(shell: InteractiveShell) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    result, shown = run(shell, f"%remote connect {url}")
    assert isinstance(result.error_in_exec, RunnerUnavailable)
    assert result.error_in_exec.__cause__ is not None  # still there, for code that looks
    _short(shown)
    assert url in shown and "nbremote runner" in shown and "%remote connect" in shown


def test_a_refused_token_is_one_message(shell: InteractiveShell, runner: RunningRunner) -> None:
    result, shown = run(shell, f"%remote connect {runner.url} --token wrong")
    assert isinstance(result.error_in_exec, AuthenticationError)
    _short(shown)
    assert "NBREMOTE_TOKEN" in shown


def test_an_unpicklable_input_is_one_message(shell: InteractiveShell) -> None:
    run(shell, "gen = (i for i in range(3))")
    result, shown = run(shell, "%%remote\ntotal = sum(gen)")
    assert isinstance(result.error_in_exec, SerializationError)
    _short(shown)
    assert "'gen'" in shown


def test_a_worker_that_died_in_a_function_is_one_message(shell: InteractiveShell) -> None:
    run(shell, "import os, nbremote as nr\n@nr.remote()\ndef die():\n    os._exit(4)")
    result, shown = run(shell, "die.remote()")
    assert isinstance(result.error_in_exec, WorkerDied)
    assert "----> 1 die.remote()" in shown and "exit code 4" in shown
    assert "nbremote/" not in shown


def test_the_stayed_on_the_worker_notice_is_said_once_when_used_here(
    shell: InteractiveShell,
) -> None:
    said = [run(shell, "%%remote\ngen = (i for i in range(3))")[1] for _ in range(3)]
    assert said == ["", "", ""]  # as locally: the cell itself prints nothing
    used = [run(shell, "print(type(gen))")[1] for _ in range(2)]
    assert "'gen' stayed on the worker" in used[0]
    assert "stayed on the worker" not in used[1]


def test_a_remote_import_is_bound_here_as_the_module_itself(shell: InteractiveShell) -> None:
    assert "tabnanny" not in sys.modules and "json.tool" not in sys.modules
    _, shown = run(shell, "%%remote\nimport tabnanny, json.tool as jt")
    assert shown == ""
    assert shell.user_ns["tabnanny"] is sys.modules["tabnanny"]
    assert shell.user_ns["jt"] is sys.modules["json.tool"]


FRESH_KERNEL = """
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "nbremote")
result = shell.run_cell(
    "%%remote\\nimport sympy\\nfrom numpy.linalg import inv\\nx = sympy.Symbol('x')\\ny = x + 1"
)
assert result.success, result.error_in_exec
import numpy.linalg, sympy
ns = shell.user_ns
assert ns["inv"] is numpy.linalg.inv and ns["sympy"] is sympy, ns
assert isinstance(ns["y"], sympy.Add), ns["y"]
print("ok")
"""


def test_values_of_packages_the_cell_imported_come_back_in_a_fresh_kernel(
    runner: RunningRunner, tmp_path: Path
) -> None:
    # A package imported for the first time here (sympy, numpy) while the cell's values that
    # refer to its submodules come back: both must work, with nothing left on the worker.
    env = {"NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": runner.token or ""}
    output = run_python(FRESH_KERNEL, tmp_path, env)
    assert output.strip() == "ok", output
