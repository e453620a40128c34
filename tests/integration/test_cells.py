"""``%%remote`` in a real IPython shell against a real runner and real worker processes."""

from __future__ import annotations

import base64
import os
import signal
import sys
import threading
import time
from typing import Any

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from nbremote import _session
from nbremote.errors import RemoteError, SerializationError, WorkerDied


def remote(shell: InteractiveShell, cell: str, line: str = "") -> Any:
    return shell.run_cell_magic("remote", line, cell)


def test_inputs_go_outputs_come_back(shell: InteractiveShell) -> None:
    shell.user_ns.update(x=20, data=[1, 2, 3])
    remote(shell, "total = x + sum(data)\nlabel = f'{total} items'")
    assert shell.user_ns["total"] == 26
    assert shell.user_ns["label"] == "26 items"


def test_runs_in_the_worker_not_the_kernel(shell: InteractiveShell) -> None:
    remote(shell, "import os\npid = os.getpid()")
    assert shell.user_ns["pid"] != os.getpid()
    assert shell.user_ns["os"] is os  # the import is redone here, not pickled


def test_remote_namespace_persists_between_cells(shell: InteractiveShell) -> None:
    remote(shell, "import os\npid = os.getpid()\nhidden = 41")
    shell.user_ns.pop("hidden")
    remote(shell, "import os\nsame = os.getpid() == pid\nseen = hidden + 1", line="--out same,seen")
    assert shell.user_ns["same"] is True
    assert shell.user_ns["seen"] == 42


def test_fresh_and_reset_start_new_workers(shell: InteractiveShell) -> None:
    remote(shell, "import os\nworker = os.environ['NBREMOTE_TASK_ID']\nonly_remote = 1")
    first = shell.user_ns["worker"]
    remote(shell, "import os\nworker2 = os.environ['NBREMOTE_TASK_ID']", line="--fresh")
    assert shell.user_ns["worker2"] != first
    shell.run_line_magic("remote", "reset")
    shell.user_ns.pop("only_remote")
    with pytest.raises(RemoteError, match="only_remote"):
        remote(shell, "y = only_remote")


def test_in_and_out_override_the_analysis(shell: InteractiveShell) -> None:
    shell.user_ns.update(a=1, b=2)
    remote(shell, "c = a + 1\nd = 5", line="--in a --out d")
    assert shell.user_ns["d"] == 5
    assert "c" not in shell.user_ns


def test_mutation_and_deletion_come_back(shell: InteractiveShell) -> None:
    shell.user_ns.update(table={"a": 1}, gone=3)
    remote(shell, "table['b'] = 2\ndel gone")
    assert shell.user_ns["table"] == {"a": 1, "b": 2}
    assert "gone" not in shell.user_ns


def test_notebook_functions_and_classes_travel_by_value(shell: InteractiveShell) -> None:
    shell.run_cell(
        "class Point:\n    def __init__(self, x): self.x = x\n"
        "def double(p): return Point(p.x * 2)\np = Point(4)"
    )
    remote(shell, "q = double(p)")
    assert shell.user_ns["q"].x == 8


def test_failed_cell_leaves_the_namespace_unchanged(shell: InteractiveShell) -> None:
    shell.user_ns["x"] = 1
    with pytest.raises(RemoteError) as caught:
        remote(shell, "x = 2\ny = 3\n1 / 0")
    assert shell.user_ns["x"] == 1
    assert "y" not in shell.user_ns
    assert caught.value.ename == "ZeroDivisionError"
    assert isinstance(caught.value, ZeroDivisionError)  # `except ZeroDivisionError` works too


def test_remote_traceback_uses_the_cells_line_numbers(shell: InteractiveShell) -> None:
    with pytest.raises(RemoteError) as caught:
        remote(shell, "a = 1\nb = 2\nraise ValueError('bad value here')")
    text = "\n".join(caught.value._render_traceback_())
    plain = __import__("re").sub(r"\x1b\[[0-9;]*m", "", text)
    # Line 1 of the cell is the %%remote line, so the raise is on line 4.
    assert "line 4" in plain
    assert "raise ValueError('bad value here')" in plain
    assert "ValueError: bad value here" in plain


def test_syntax_error_is_reported_with_its_line(shell: InteractiveShell) -> None:
    with pytest.raises(RemoteError) as caught:
        remote(shell, "a = 1\nb = (\n")
    assert caught.value.ename == "SyntaxError"


def test_a_syntax_error_shows_as_the_worker_rendered_it(shell: InteractiveShell) -> None:
    # IPython shows a SyntaxError (sub)class with its own syntax view, which would show
    # nbremote's frames and "(<string>)"; a remote one is shown as its cell showed it.
    with capture_output() as captured:
        result = shell.run_cell("%%remote\nprint('unclosed'\n")
    assert isinstance(result.error_in_exec, RemoteError)
    plain = __import__("re").sub(r"\x1b\[[0-9;]*m", "", captured.stdout)
    assert "SyntaxError: incomplete input" in plain and "Cell In[" in plain
    assert "<string>" not in plain and "nbremote" not in plain


def test_output_streams_while_the_cell_runs(shell: InteractiveShell) -> None:
    arrivals: list[tuple[float, str]] = []

    class Recorder:
        def write(self, text: str) -> int:
            arrivals.append((time.monotonic(), text))
            return len(text)

        def flush(self) -> None:
            pass

    old = sys.stdout
    sys.stdout = Recorder()  # type: ignore[assignment]
    try:
        remote(shell, "import time\nfor i in range(3):\n    print('tick', i)\n    time.sleep(0.6)")
        finished = time.monotonic()
    finally:
        sys.stdout = old
    text = "".join(chunk for _, chunk in arrivals)
    assert text == "tick 0\ntick 1\ntick 2\n"
    assert finished - arrivals[0][0] > 1.0  # the first line showed long before the end


def test_stderr_and_carriage_returns_pass_through(shell: InteractiveShell) -> None:
    with capture_output() as captured:
        remote(
            shell,
            "from tqdm import tqdm\nfor _ in tqdm(range(3), mininterval=0): pass\n"
            "import sys\nprint('warned', file=sys.stderr)",
        )
    assert "\r" in captured.stderr
    assert "3/3" in captured.stderr
    assert "warned" in captured.stderr


def test_subprocess_output_is_captured(shell: InteractiveShell) -> None:
    with capture_output() as captured:
        remote(shell, "import subprocess\nsubprocess.run(['echo', 'from a child'])")
    assert "from a child" in captured.stdout


def test_rich_output_last_expression_and_display(shell: InteractiveShell) -> None:
    with capture_output() as captured:
        remote(
            shell,
            "import pandas as pd\nfrom IPython.display import HTML, display\n"
            "display(HTML('<b>bold</b>'))\npd.DataFrame({'a': [1, 2]})",
        )
    [shown] = [output.data.get("text/html", "") for output in captured.outputs]
    assert "<b>bold</b>" in shown  # display() is display data; the last expression is a result
    assert "<table" in shell.user_ns["_"]._repr_html_()  # the frame itself, as locally


def test_the_last_expression_is_the_cells_result(shell: InteractiveShell) -> None:
    """As locally: ``Out[n]`` and ``_`` (not a display), and a trailing ';' silences it."""
    with capture_output() as captured:
        remote(shell, "1 + 1")
    assert [repr(value) for value in shell.user_ns["Out"].values()] == ["2"]
    assert repr(shell.user_ns["_"]) == "2"
    assert captured.outputs == [] and "Out[" in captured.stdout
    with capture_output() as silenced:
        remote(shell, "40 + 2;")
    assert silenced.stdout == "" and repr(shell.user_ns["_"]) == "2"


def test_binary_rich_output_arrives_base64_encoded(shell: InteractiveShell) -> None:
    """A ``_repr_png_`` returning bytes (SymPy's images do) shows as ipykernel would send it."""
    with capture_output() as captured:
        remote(
            shell,
            "class Picture:\n    def _repr_png_(self):\n        return b'\\x89PNG data'\n"
            "from IPython.display import display\ndisplay(Picture())\nPicture()",
        )
    [png] = [output.data["image/png"] for output in captured.outputs]
    assert base64.b64decode(png) == b"\x89PNG data"
    # The last expression, shown as the cell's result (base64 too, or the cell would fail), is
    # the value itself in `_`, as locally.
    assert shell.user_ns["_"]._repr_png_() == b"\x89PNG data"


def test_matplotlib_figures_show_as_images(shell: InteractiveShell) -> None:
    with capture_output() as captured:
        remote(shell, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('remote')")
    images = [output for output in captured.outputs if "image/png" in output.data]
    assert len(images) == 1


def test_unpicklable_input_fails_before_sending(shell: InteractiveShell) -> None:
    shell.user_ns["gen"] = (i for i in range(3))
    shell.user_ns["x"] = 1
    with pytest.raises(SerializationError) as caught:
        remote(shell, "x = 2\nitems = list(gen)")
    assert caught.value.name == "gen"
    assert "generator" in str(caught.value) and "--in" in str(caught.value)
    assert shell.user_ns["x"] == 1


def test_unreturnable_output_stays_remote_and_is_named(shell: InteractiveShell) -> None:
    with capture_output() as captured:
        remote(shell, "gen = (i * i for i in range(3))\nn = 3")
    assert captured.stderr == ""  # nothing said while it is only used remotely
    assert shell.user_ns["n"] == 3 and "gen" not in shell.user_ns
    remote(shell, "squares = list(gen)")
    assert shell.user_ns["squares"] == [0, 1, 4]
    with capture_output() as used_here:
        shell.run_cell("print(n, gen)")  # a local cell reads it: now it is said, once
    assert "'gen' stayed on the worker" in used_here.stderr
    with capture_output() as again:
        shell.run_cell("print(n, gen)")
    assert "stayed on the worker" not in again.stderr


def test_pull_and_push(shell: InteractiveShell) -> None:
    remote(shell, "kept = {'k': 1}", line="--out ''")
    assert "kept" not in shell.user_ns
    shell.run_line_magic("remote", "pull kept")
    assert shell.user_ns["kept"] == {"k": 1}
    shell.user_ns["pushed"] = [7]
    shell.run_line_magic("remote", "push pushed")
    remote(shell, "doubled = pushed * 2", line="--in ''")
    assert shell.user_ns["doubled"] == [7, 7]
    with pytest.raises(RemoteError, match="not defined on the worker"):
        shell.run_line_magic("remote", "pull no_such_name")


def test_pull_and_push_talk_to_the_last_cells_worker(shell: InteractiveShell) -> None:
    remote(shell, "import os\nmode = os.environ['MODE']", line="--env MODE=fast --out ''")
    shell.run_line_magic("remote", "pull mode")  # from the --env worker, not the default one
    assert shell.user_ns["mode"] == "fast"
    shell.user_ns["extra"] = 5
    shell.run_line_magic("remote", "push extra")
    remote(shell, "both = (mode, extra)", line="--env MODE=fast --in ''")
    assert shell.user_ns["both"] == ("fast", 5)


def test_unchanged_large_input_is_sent_once(shell: InteractiveShell) -> None:
    session = _session.current_session()
    sent: list[int] = []
    channel_send = session._open().send

    def counting_send(header: dict[str, Any], buffers: Any = ()) -> None:
        sent.append(sum(memoryview(b).nbytes for b in buffers))
        channel_send(header, buffers)

    session._open().send = counting_send  # type: ignore[method-assign]
    shell.user_ns["big"] = np.arange(4_000_000, dtype=np.float64)
    remote(shell, "s = float(big.sum())")
    remote(shell, "s2 = float(big.sum())")
    assert sent[0] > 32_000_000 and sent[1] < 10_000
    shell.user_ns["big"][0] = 1e9  # changed here: sent again
    remote(shell, "s3 = float(big.sum())")
    assert sent[2] > 32_000_000
    assert shell.user_ns["s3"] == shell.user_ns["s"] + 1e9


def test_remote_in_place_change_is_not_mistaken_for_the_local_value(
    shell: InteractiveShell,
) -> None:
    shell.user_ns["arr"] = np.array([3.0, 1.0, 2.0])
    remote(shell, "first = arr[0]")
    remote(shell, "arr.sort()", line="--out ''")  # changes the worker's copy only
    remote(shell, "head = arr[0]")
    assert shell.user_ns["head"] == 3.0  # the worker noticed and asked for the real value
    np.testing.assert_array_equal(shell.user_ns["arr"], [3.0, 1.0, 2.0])


def test_arrays_come_back_writable(shell: InteractiveShell) -> None:
    remote(shell, "import numpy as np\nm = np.ones((100, 100))")
    shell.user_ns["m"][0, 0] = 5
    assert shell.user_ns["m"].sum() == 10004


def test_interrupt_stops_the_cell_and_keeps_the_worker(shell: InteractiveShell) -> None:
    remote(shell, "import os\nstate = 'kept'\npid = os.getpid()")
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    with pytest.raises(RemoteError) as caught:
        remote(shell, "import time\ntime.sleep(60)")
    assert caught.value.ename == "KeyboardInterrupt"
    assert time.monotonic() - started < 10
    remote(shell, "import os\nafter = (state, os.getpid() == pid)")
    assert shell.user_ns["after"] == ("kept", True)


def test_timeout_stops_a_long_cell(shell: InteractiveShell) -> None:
    started = time.monotonic()
    with pytest.raises(RemoteError, match="timeout of 1 s"):
        remote(shell, "import time\ntime.sleep(60)", line="--timeout 1")
    assert time.monotonic() - started < 10


def test_worker_death_is_reported_and_the_next_cell_gets_a_new_one(shell: InteractiveShell) -> None:
    remote(shell, "import os\nworker = os.environ['NBREMOTE_TASK_ID']")
    with pytest.raises(WorkerDied, match="exit code 3"):
        remote(shell, "import os\nos._exit(3)")
    with pytest.raises(WorkerDied, match="signal SIGKILL"):
        remote(shell, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    remote(shell, "import os\nnew_worker = os.environ['NBREMOTE_TASK_ID']")
    assert shell.user_ns["new_worker"] != shell.user_ns["worker"]


def test_env_flag_sets_worker_environment(shell: InteractiveShell) -> None:
    remote(
        shell, "import os\nvalue = os.environ.get('NBR_TEST_FLAG')", line="--env NBR_TEST_FLAG=on"
    )
    assert shell.user_ns["value"] == "on"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--bogus", "unrecognized arguments"),
        ("--timeout -1", "--timeout must be positive"),
        ("--env NOEQUALS", "--env takes KEY=VALUE"),
        ("--in not_defined_here", "not defined in this notebook"),
    ],
)
def test_bad_flags_raise_usage_errors(shell: InteractiveShell, line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        remote(shell, "y = 1", line=line)


def test_status_shows_the_worker_and_its_objects(shell: InteractiveShell) -> None:
    remote(shell, "import numpy as np\nweights = np.zeros(1000)")
    with capture_output() as captured:
        shell.run_line_magic("remote", "status")
    assert _session.current_session().client.url in captured.stdout
    assert "resident" in captured.stdout
    assert (
        "weights" in captured.stdout
        and "ndarray" in captured.stdout
        and "7.8 KiB" in captured.stdout
    )


def test_big_buffers_go_through_shared_memory_and_leave_nothing(shell: InteractiveShell) -> None:
    shm_dir = _session.current_session()._open().shm_dir
    assert shm_dir is not None  # the shared runner is on this machine
    shell.user_ns["ones"] = np.ones(2_000_000)
    remote(shell, "doubled = ones * 2")
    doubled = shell.user_ns["doubled"]
    assert doubled.flags.writeable and doubled[0] == 2.0 and doubled.sum() == 4_000_000
    assert os.listdir(shm_dir) == []  # every file was mapped and unlinked
