"""``%%remote`` cells, functions and classes on the docker backend: in real containers."""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import nbremote as nr
from nbremote import _session
from nbremote.errors import RemoteError, WorkerDied

app = nr.App("docker-tests")


def remote(shell: InteractiveShell, cell: str, line: str = "") -> Any:
    return shell.run_cell_magic("remote", line, cell)


@app.function
def where(x: int) -> dict[str, Any]:
    import os
    import socket

    return {
        "double": 2 * x,
        "container": os.path.exists("/.dockerenv"),
        "pid": os.getpid(),
        "interfaces": [name for _, name in socket.if_nameindex()],
        "cwd": os.getcwd(),
    }


@app.cls(max_containers=1)
class Counter:
    @nr.enter()
    def start(self) -> None:
        self.total = 100

    @nr.method()
    def add(self, n: int) -> int:
        self.total += n
        return self.total


def test_a_cell_runs_in_a_container_and_its_outputs_come_back(
    docker_shell: InteractiveShell,
) -> None:
    docker_shell.user_ns.update(x=20, data=[1, 2, 3])
    with capture_output() as captured:
        remote(docker_shell, "import os\ntotal = x + sum(data)\nprint('hi from', os.getpid())")
    assert docker_shell.user_ns["total"] == 26
    assert captured.stdout.strip() == "hi from 1"  # the worker is the container's main process
    remote(docker_shell, "import os\ninside = os.path.exists('/.dockerenv')\nseen = total + 1")
    assert docker_shell.user_ns["inside"] is True
    assert docker_shell.user_ns["seen"] == 27  # the warm container kept its namespace


def test_a_cell_error_shows_the_remote_traceback_and_the_container_survives(
    docker_shell: InteractiveShell,
) -> None:
    with pytest.raises(RemoteError, match="division by zero") as caught:
        remote(docker_shell, "import os\nfirst = os.environ['NBREMOTE_TASK_ID']\n1 / 0")
    assert caught.value.ename == "ZeroDivisionError"
    remote(docker_shell, "import os\nsame = os.environ['NBREMOTE_TASK_ID']")
    remote(docker_shell, "import os\nagain = os.environ['NBREMOTE_TASK_ID']")
    assert docker_shell.user_ns["same"] == docker_shell.user_ns["again"]


def test_interrupting_a_cell_stops_it_and_the_container_survives(
    docker_shell: InteractiveShell,
) -> None:
    remote(docker_shell, "state = 'kept'")
    # Once the warm container runs the cell (it takes milliseconds; seconds on a loaded box).
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    with pytest.raises(RemoteError) as caught:
        remote(docker_shell, "import time\ntime.sleep(60)")
    assert caught.value.ename == "KeyboardInterrupt"
    assert time.monotonic() - started < 40  # the interrupt, not the sleep's end
    remote(docker_shell, "after = state")
    assert docker_shell.user_ns["after"] == "kept"


def test_a_worker_that_exits_is_reported_and_the_next_cell_gets_a_new_one(
    docker_shell: InteractiveShell,
) -> None:
    remote(docker_shell, "import os\nworker = os.environ['NBREMOTE_TASK_ID']")
    with pytest.raises(WorkerDied, match="exit code 3"):
        remote(docker_shell, "import os\nos._exit(3)")
    remote(docker_shell, "import os\nnew_worker = os.environ['NBREMOTE_TASK_ID']")
    assert docker_shell.user_ns["new_worker"] != docker_shell.user_ns["worker"]


def test_a_function_runs_in_a_container_without_network(
    docker_session: _session.RemoteSession,
) -> None:
    answer = where.remote(21)
    assert answer["double"] == 42
    assert answer["container"] is True and answer["pid"] == 1
    assert answer["interfaces"] == ["lo"]  # network_mode none: only a loopback
    assert answer["cwd"] == "/root"
    assert where.local(1)["pid"] == os.getpid()


def test_a_class_keeps_its_state_in_its_container(docker_session: _session.RemoteSession) -> None:
    counter = Counter()
    assert [counter.add.remote(1) for _ in range(3)] == [101, 102, 103]


def test_a_dict_and_a_queue_work_from_a_container(docker_shell: InteractiveShell) -> None:
    box = nr.Dict.from_name(f"docker-dict-{os.getpid()}", create_if_missing=True)
    line = nr.Queue.from_name(f"docker-queue-{os.getpid()}", create_if_missing=True)
    box["sent"] = 20
    docker_shell.user_ns.update(box=box, line=line)
    remote(docker_shell, "box['got'] = box['sent'] + 1\nline.put('hello')")
    assert box["got"] == 21
    assert line.get(timeout=30) == "hello"


@app.function
def head_and_size(data: Any) -> tuple[bytes, int]:
    return bytes(data[:4]), len(data)


def test_big_buffers_go_to_a_container(docker_shell: InteractiveShell) -> None:
    """Buffers of 1 MiB and more, which a same-host kernel puts in the runner's shared-memory
    folder for a process worker: a container does not see it, so they travel in the frames.
    (A `PickleBuffer` is pickled out of band, as a NumPy array's data is: the base image has no
    NumPy.)"""
    payload = bytearray(os.urandom(4 << 20))
    docker_shell.user_ns["big"] = pickle.PickleBuffer(payload)
    remote(docker_shell, "size = len(big)\nhead = bytes(big[:4])")
    assert (docker_shell.user_ns["head"], docker_shell.user_ns["size"]) == (payload[:4], 4 << 20)
    assert head_and_size.remote(pickle.PickleBuffer(payload)) == (payload[:4], 4 << 20)
