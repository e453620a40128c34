"""A ``%%remote`` cell's shell looks like the kernel's: each test runs the same code locally and
under ``%%remote`` in one real Jupyter kernel (jupyter_client), and compares what the notebook
gets: outputs, the execute reply's status, its payloads and its prompt number."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import RunningRunner
from tests.kernels import Kernel, Ran


@pytest.fixture(scope="module")
def kernel(runner: RunningRunner, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    started = Kernel(runner, tmp_path_factory.mktemp("kernel"))
    yield started
    started.close()


def test_streams_are_utf8_not_ttys_as_in_a_kernel(kernel: Kernel) -> None:
    local, remote = kernel.both("import sys\nprint(sys.stdout.encoding, sys.stderr.isatty())")
    assert remote.text().lower() == local.text().lower() == "utf-8 false\n"


def test_timeit_and_tqdm_draw_with_unicode_as_in_a_kernel(kernel: Kernel) -> None:
    local, remote = kernel.both("%timeit -n 3 -r 2 sum(range(10))")
    assert "±" in local.text() and "±" in remote.text()
    local, remote = kernel.both("from tqdm import tqdm\nfor _ in tqdm(range(3)): pass")
    assert "█" in local.text("stderr") and "█" in remote.text("stderr")


def test_pandas_sees_a_notebook(kernel: Kernel) -> None:
    code = "import pandas as pd\nprint(pd.get_option('display.max_columns'))"
    local, remote = kernel.both(code)
    assert remote.text() == local.text() == "20\n"


def test_help_goes_to_the_pager_as_in_a_kernel(kernel: Kernel) -> None:
    local, remote = kernel.both("len?")
    assert remote.outputs == local.outputs == []  # not printed into the cell
    (page,) = remote.reply["payload"]
    (expected,) = local.reply["payload"]
    assert page["source"] == expected["source"] == "page"
    assert "Return the number of items" in page["data"]["text/plain"]
    assert page["data"].keys() == expected["data"].keys()


def _figure(ran: Ran) -> dict[str, Any]:
    (figure,) = [d for d in ran.data() if "text/plain" in d["data"]]
    return figure


def test_inline_figure_settings_of_the_notebook_and_of_the_cell(kernel: Kernel) -> None:
    plot = "import matplotlib.pyplot as plt\nplt.plot([1, 2]);"
    # %config in a remote cell lasts for that worker's next cells
    kernel.run("%%remote\n%config InlineBackend.figure_format = 'svg'")
    assert "image/svg+xml" in _figure(kernel.run(f"%%remote\n{plot}"))["data"]
    # %config in the notebook applies to remote cells as to local ones
    kernel.run("%config InlineBackend.figure_format = 'retina'")
    local, remote = kernel.both(plot)
    png = {"image/png", "text/plain"}
    assert _figure(remote)["data"].keys() == _figure(local)["data"].keys() == png
    assert _figure(remote)["metadata"] == _figure(local)["metadata"]  # retina: width, height
    kernel.run("%config InlineBackend.figure_format = 'png'")


BAD_HTML = """
class Bad:
    def _repr_html_(self):
        raise ValueError("no html")
    def __repr__(self):
        return "Bad()"
display(Bad())
print("went on")
"""


def test_a_traceback_the_cell_goes_on_after_is_shown_and_does_not_fail_it(kernel: Kernel) -> None:
    local, remote = kernel.both(BAD_HTML)
    assert remote.kinds == local.kinds == ["error", "display_data", "stdout"]
    assert remote.reply["status"] == local.reply["status"] == "ok"
    assert remote.errors()[0]["ename"] == "ValueError"
    assert "no html" in "".join(remote.errors()[0]["traceback"])


def test_tb_shows_the_last_error_without_failing(kernel: Kernel) -> None:
    kernel.run("%%remote\n1 / 0")
    ran = kernel.run("%%remote\n%tb\nprint('still here')")
    assert ran.kinds == ["error", "stdout"]
    assert ran.errors()[0]["ename"] == "ZeroDivisionError"
    assert ran.reply["status"] == "ok"


def test_a_failed_cell_shows_its_error_once_named_after_its_prompt(kernel: Kernel) -> None:
    local, remote = kernel.both("x = 1\n1 / 0")
    assert remote.kinds == local.kinds == ["error"]
    assert remote.reply["status"] == local.reply["status"] == "error"
    (error,) = remote.errors()
    assert f"Cell In[{remote.reply['execution_count']}]" in _plain(error["traceback"])
    assert f"Cell In[{local.reply['execution_count']}]" in _plain(local.errors()[0]["traceback"])


def _plain(traceback: list[str]) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", "".join(traceback))


def test_the_last_expressions_value_is_in_underscore_and_out_as_locally(kernel: Kernel) -> None:
    # Earlier cells may have bound `_` themselves (`for _ in ...`): then IPython leaves it alone.
    kernel.run("for name in ('_', '__', '___'): globals().pop(name, None)")
    ran = kernel.run("%%remote\n[1, 2] * 2")
    count = ran.reply["execution_count"]
    (result,) = [o["content"] for o in ran.outputs if o["msg_type"] == "execute_result"]
    assert result["execution_count"] == count
    check = kernel.run(f"print(_ == Out[{count}] == _{count} == [1, 2, 1, 2], type(_).__name__)")
    assert check.text() == "True list\n"
    # A value that cannot travel: Out keeps how it was shown, and nothing is said about it.
    gen = kernel.run("%%remote\n(i for i in range(3))")
    assert gen.kinds == ["execute_result"]
    assert kernel.run("print(type(_).__name__)").text() == "RemoteResult\n"


def test_cell_magics_run_on_the_worker_as_locally(kernel: Kernel) -> None:
    local, remote = kernel.both("%%capture cap\nprint('hidden')")
    assert remote.outputs == local.outputs == []
    assert remote.reply["status"] == local.reply["status"] == "ok"
    local, remote = kernel.both("print(cap.stdout, end='')")
    assert remote.text() == local.text() == "hidden\n"


def test_shell_aliases_without_a_bang_run_as_locally(kernel: Kernel) -> None:
    local, remote = kernel.both("ls -d /")
    assert remote.kinds == local.kinds == ["stdout"]
    assert remote.text() == local.text() and "/" in local.text()  # ls's own colours, alike


def test_the_cells_input_history_holds_the_cell_as_written(kernel: Kernel) -> None:
    kernel.run("%%remote\n10 + 20;")
    assert kernel.run("%%remote\nprint(repr(_i))").text() == "'10 + 20;'\n"


def test_errors_count_lines_as_the_notebook_shows_the_cell(kernel: Kernel) -> None:
    ran = kernel.run("%%remote\nx = 1\n1 / 0")
    assert "Cell In[" in (text := _plain(ran.errors()[0]["traceback"]))
    assert ", line 3" in text and "----> 3 1 / 0" in text  # the %%remote line is line 1
    ran = kernel.run("%%remote\nx = 1\nx.")
    assert ", line 3" in _plain(ran.errors()[0]["traceback"])


def test_matplotlib_inline_works_as_in_a_kernel(kernel: Kernel) -> None:
    local, remote = kernel.both("%matplotlib inline")
    assert remote.reply["status"] == local.reply["status"] == "ok"
    assert remote.outputs == local.outputs == []
    local, remote = kernel.both("import matplotlib.pyplot as plt\nplt.plot([1, 2]);")
    assert _figure(remote)["data"].keys() == _figure(local)["data"].keys()


def test_a_module_written_by_a_cell_imports_as_locally(kernel: Kernel) -> None:
    # Two names: a module in the notebook's folder would be shipped with the remote cell.
    def write_and_use(name: str, remote: str) -> Ran:
        kernel.run(f"{remote}%%writefile {name}.py\nVALUE = 42")
        return kernel.run(f"{remote}import {name}\nprint({name}.VALUE)")

    local, remote = (
        write_and_use("nbr_local_mod", ""),
        write_and_use("nbr_remote_mod", "%%remote\n"),
    )
    assert remote.text() == local.text() == "42\n"
    assert remote.reply["status"] == "ok"


def test_a_warning_names_the_cell_as_a_kernel_names_it(kernel: Kernel) -> None:
    local, remote = kernel.both("import warnings\nwarnings.warn('careful')")
    pattern = re.compile(r"^/tmp/ipykernel_\d+/\d+\.py:(\d+): UserWarning: careful$", re.M)
    local_line, remote_line = (pattern.search(ran.text("stderr")) for ran in (local, remote))
    assert local_line and remote_line, (local.text("stderr"), remote.text("stderr"))
    # The remote cell's line 1 is its %%remote line, as the notebook shows it.
    assert int(remote_line[1]) == int(local_line[1]) + 1


def test_a_magics_usage_error_shows_as_locally(kernel: Kernel) -> None:
    local, remote = kernel.both("%nbr_no_such_magic")
    assert remote.kinds == local.kinds == ["stderr"]
    assert remote.text("stderr") == local.text("stderr")
    assert "UsageError: Line magic function `%nbr_no_such_magic` not found" in local.text("stderr")
    assert remote.reply["status"] == local.reply["status"] == "error"
    assert remote.reply["ename"] == local.reply["ename"] == "UsageError"


def test_a_figure_of_a_failed_cell_shows_after_its_error_as_locally(kernel: Kernel) -> None:
    cell = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nraise ValueError('after the plot')"
    local, remote = kernel.both(cell)
    assert remote.kinds == local.kinds == ["error", "display_data"]
    assert remote.reply["status"] == local.reply["status"] == "error"


def test_what_importing_here_prints_comes_before_the_cells_output(kernel: Kernel) -> None:
    # The notebook imports a remote cell's modules too (to bind them), on a thread, while the
    # worker runs the cell. A module that warns when the kernel imports it, slowly (as
    # tqdm.auto warns in a kernel only), must still warn before the cell's output, as locally.
    module = (
        "import sys, time, warnings\n"
        "if 'nbremote_runner' not in sys.modules:  # the kernel, not the worker\n"
        "    time.sleep(1.0)\n"
        "    warnings.warn('imported here')\n"
    )
    kernel.ok(f"open('nbr_slow_warning.py', 'w').write({module!r})")
    ran = kernel.run("%%remote\nimport nbr_slow_warning\nprint('after the import')")
    assert ran.kinds == ["stderr", "stdout"], ran.outputs
    assert "UserWarning: imported here" in ran.text("stderr")
