"""A kernel from another virtualenv gets workers that import what it imports.

The embedded runner of an ``NBREMOTE_HOME`` is started by whichever kernel comes first; a kernel
of a second virtualenv (one with a package of its own) shares it. Its workers must run its own
interpreter, or say clearly why they cannot.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from runner.backends.base import WorkerStartError
from runner.backends.interpreters import worker_python
from tests.conftest import run_python

CALL = """
import sys
import nbremote as nr

@nr.remote()
def where():
    import only_in_b
    return only_in_b.VALUE, sys.executable

print(where.remote())
"""


def make_venv(folder: Path, with_project: bool) -> Path:
    """A virtualenv (no pip: quick) with a module of its own, seeing this project's packages if
    ``with_project``; its interpreter."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "only_in_b.py").write_text("VALUE = 42\n")
    if with_project:  # as a --system-site-packages venv over the project's would
        project = sysconfig.get_paths()["purelib"]
        (Path(site) / "project.pth").write_text(f"import site; site.addsitedir({project!r})\n")
    return python


def test_a_kernel_of_another_venv_gets_workers_of_its_own_python(
    nbremote_home: Path, tmp_path: Path
) -> None:
    # Started by this (the project's) interpreter, from a kernel of its own.
    run_python("from nbremote._config import resolve_runner; resolve_runner()", tmp_path)
    python = make_venv(tmp_path / "b", with_project=True)
    result = subprocess.run(
        [python, "-c", CALL], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr((42, str(python)))


def test_a_python_that_cannot_run_workers_is_named_with_the_runners(tmp_path: Path) -> None:
    python = make_venv(tmp_path / "bare", with_project=False)
    with pytest.raises(WorkerStartError) as caught:
        asyncio.run(worker_python(str(python), allowed=True))
    message = str(caught.value)
    assert str(python) in message and sys.executable in message
    assert "No module named 'nbremote'" in message and "NBREMOTE_HOME" in message
