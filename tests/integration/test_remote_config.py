"""`%remote config`: notebook-wide defaults of the worker flags, on a real runner.

What a user sees: later cells get the defaults, a cell's own flag replaces that flag's default,
`%remote config` alone shows them, `--reset` clears them, a bad flag is named at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from nbremote.errors import RemoteError

from ..conftest import clean_shell

ENV = "import os\nseen = {k: v for k, v in os.environ.items() if k.startswith('NBR_CFG_')}"


def config(shell: InteractiveShell, flags: str) -> str:
    """Run ``%remote config FLAGS``; what it printed."""
    with capture_output() as captured:
        shell.run_line_magic("remote", f"config {flags}")
    return captured.stdout + captured.stderr


def remote(shell: InteractiveShell, cell: str, line: str = "") -> None:
    with capture_output():
        shell.run_cell_magic("remote", line, cell)


@pytest.fixture
def configured(shell: InteractiveShell) -> Iterator[InteractiveShell]:
    """``shell``, its defaults cleared afterwards (the IPython shell is shared by the tests)."""
    yield shell
    shell.run_line_magic("remote", "config --reset")


@pytest.fixture
def local(ipython: InteractiveShell) -> Iterator[InteractiveShell]:
    """The shell without a runner: the flags are checked before anything is sent."""
    yield clean_shell(ipython)
    ipython.run_line_magic("remote", "config --reset")


def test_defaults_apply_to_later_cells_and_a_cell_flag_replaces_its_default(
    configured: InteractiveShell,
) -> None:
    shell = configured
    config(shell, "--env NBR_CFG_A=1 --env NBR_CFG_B=2 --timeout 60")
    config(shell, "--env NBR_CFG_B=3")  # another config adds to the --env defaults, by key
    remote(shell, ENV)
    assert shell.user_ns["seen"] == {"NBR_CFG_A": "1", "NBR_CFG_B": "3"}
    remote(shell, ENV + "\nagain = dict(seen)")  # every later cell, not just the next one
    assert shell.user_ns["again"] == {"NBR_CFG_A": "1", "NBR_CFG_B": "3"}

    remote(shell, ENV, "--env NBR_CFG_C=4")  # the cell's --env replaces the default --env
    assert shell.user_ns["seen"] == {"NBR_CFG_C": "4"}

    config(shell, "--timeout 1")  # replaces the 60 s default
    with pytest.raises(RemoteError, match="timeout of 1 s"):
        remote(shell, "import time\ntime.sleep(60)")


def test_config_alone_shows_the_defaults_and_reset_clears_them(
    configured: InteractiveShell,
) -> None:
    shell = configured
    assert "no defaults" in config(shell, "")
    config(shell, '--gpu A100:2 --pip "six==1.16.0" --pip tomli==2.0.1 --env NBR_CFG_A=1')
    shown = config(shell, "")
    assert '--gpu A100:2 --env NBR_CFG_A=1 --pip "six==1.16.0" --pip tomli==2.0.1' in shown

    assert config(shell, "--reset") == ""
    assert "no defaults" in config(shell, "")
    remote(shell, ENV)  # no --gpu A100:2 any more: the cell runs on this GPU-less runner
    assert shell.user_ns["seen"] == {}


def test_pip_defaults_add_up_and_a_cell_pip_replaces_them(configured: InteractiveShell) -> None:
    shell = configured
    config(shell, '--pip "six==1.16.0" --pip tomli==2.0.1')
    remote(shell, "import six, tomli\nversions = six.__version__, tomli.__version__")
    assert shell.user_ns["versions"] == ("1.16.0", "2.0.1")

    code = "import importlib.util\nhas_six = importlib.util.find_spec('six') is not None"
    remote(shell, code, '--pip "tomli==2.0.1"')
    assert shell.user_ns["has_six"] is False  # the cell's --pip alone: six is not installed


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        ("--env NBR_CFG_A", "--env"),
        ("--gpu H100:zero", "--gpu"),
        ("--timeout -1", "--timeout"),
        ("--volume data", "--volume"),
        ('--pip ""', "--pip"),
        ("--secret 'not a name'", "--secret"),
        ("--fresh", "--fresh"),  # a cell's own flag, no default
    ],
)
def test_a_bad_flag_is_named_and_changes_nothing(
    local: InteractiveShell, flags: str, named: str
) -> None:
    config(local, "--env NBR_CFG_A=1")
    with pytest.raises(UsageError, match=named):
        config(local, f"--reset {flags}")
    assert "--env NBR_CFG_A=1" in config(local, "")  # not reset by the failed line
