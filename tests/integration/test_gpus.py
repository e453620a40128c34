"""GPUs through a real runner whose NVML is the fake (``NBREMOTE_FAKE_NVML``): pinning, the
queue, eviction of idle function workers, the per-cell summary, ``nbremote gpus``, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import nbremote as nr
from nbremote import _session
from nbremote._cell import CellOptions, run_cell
from nbremote._client import RunnerClient
from nbremote.errors import RemoteError
from nbremote.gpu import parse
from nbremote.wire.codec import Header

from ..conftest import RunningRunner, start_runner

A100 = {"name": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "uuid": "GPU-a100-0"}
H100 = {"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559, "uuid": "GPU-h100-1"}
TIMES = "\N{MULTIPLICATION SIGN}"


def write_fake(path: Path, devices: list[dict[str, Any]], error: str | None = None) -> None:
    """Set the fake NVML's devices and readings (atomically: the runner reads it any time)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"devices": devices, "error": error}))
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def gpu_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningRunner, Path]]:
    """A runner on a fake machine with one A100 and one H100 (and the fake file, to change)."""
    folder = tmp_path_factory.mktemp("gpu-runner")
    fake = folder / "gpus.json"
    write_fake(fake, [A100, H100])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NBREMOTE_FAKE_NVML", str(fake))
        running = start_runner(folder / "data")
    yield running, fake
    running.stop()


class Notebook:
    """A kernel's session on the GPU runner, with the frames its requests showed."""

    def __init__(self, runner: RunningRunner) -> None:
        self.session = _session.RemoteSession(RunnerClient(runner.url, runner.token))
        self.namespace: dict[str, Any] = {}
        self.notices: list[str] = []

    def on_frame(self, frame: Header, buffers: list[bytearray]) -> None:
        if frame["op"] == "notice":
            self.notices.append(frame["text"])

    def run(self, code: str, gpu: str | None = "A100") -> None:
        options = CellOptions(gpu=parse(gpu))
        run_cell(self.session, code, self.namespace, options, self.on_frame)

    def close(self) -> None:
        self.session.reset()
        self.session.close()


@pytest.fixture
def notebooks(gpu_runner: tuple[RunningRunner, Path]) -> Iterator[list[Notebook]]:
    """Two notebooks on the GPU runner, reset afterwards (their GPUs freed)."""
    runner, fake = gpu_runner
    write_fake(fake, [A100, H100])
    opened = [Notebook(runner), Notebook(runner)]
    yield opened
    for notebook in opened:
        notebook.close()


def gpus(runner: RunningRunner) -> Any:
    with runner.client() as client:
        return client.request("GET", "/api/v1/gpus")


def test_a_gpu_cell_is_pinned_to_its_device_and_ends_with_a_summary(
    gpu_runner: tuple[RunningRunner, Path], notebooks: list[Notebook]
) -> None:
    runner, fake = gpu_runner
    write_fake(fake, [A100 | {"utilization": 75, "used_mib": 2048}, H100])
    notebook = notebooks[0]
    notebook.run("import os, time\nvisible = os.environ['CUDA_VISIBLE_DEVICES']\ntime.sleep(0.5)")
    assert notebook.namespace["visible"] == "GPU-a100-0"
    [summary] = notebook.notices
    assert summary.startswith(
        "GPU 0 (NVIDIA A100-SXM4-80GB): peak memory 2.0 GiB, mean utilization 75%, 0."
    )

    # The worker's own memory, as NVML lists its process, is what the summary counts.
    notebook.namespace["fake"] = str(fake)
    [worker] = [w for w in notebook.session.describe().workers if w.gpus]
    notebook.namespace["host_pid"] = worker.pid  # NVML lists host pids, not a sandbox's
    notebook.run(
        "import json, os, time\n"
        "device = dict(json.load(open(fake))['devices'][0], utilization=20, used_mib=9000,\n"
        "              processes=[{'pid': host_pid, 'used_mib': 3072}])\n"
        "json.dump({'devices': [device]}, open(fake + '.tmp', 'w'))\n"
        "os.replace(fake + '.tmp', fake)\n"
        "time.sleep(0.5)"
    )
    assert "peak memory 3.0 GiB" in notebook.notices[-1]

    # --fresh replaces the worker: its GPU passes to the new one without a wait.
    run_cell(
        notebook.session, "pass", {}, CellOptions(gpu=parse("A100"), fresh=True), notebook.on_frame
    )
    assert not any(text.startswith("waiting") for text in notebook.notices)
    del notebook.notices[2:]

    # The same notebook without --gpu: another worker, no GPU, no summary.
    notebook.run("import os\nno_gpu = os.environ.get('CUDA_VISIBLE_DEVICES')", gpu=None)
    assert notebook.namespace["no_gpu"] is None and len(notebook.notices) == 2
    held = gpus(runner)["gpus"][0]["holder"]
    assert held["kind"] == "cell" and held["session"] == notebook.session.id


def test_a_second_notebook_waits_in_the_queue_and_runs_when_the_first_resets(
    gpu_runner: tuple[RunningRunner, Path], notebooks: list[Notebook]
) -> None:
    runner, _ = gpu_runner
    first, second = notebooks
    first.run("x = 1")
    finished = threading.Event()
    errors: list[BaseException] = []

    def run_second() -> None:
        try:
            second.run("y = 2")
        except BaseException as exc:
            errors.append(exc)
        finished.set()

    thread = threading.Thread(target=run_second)
    thread.start()
    deadline = time.monotonic() + 30
    while not second.notices and time.monotonic() < deadline:
        time.sleep(0.05)
    assert second.notices[0] == (
        f"waiting for 1{TIMES}A100, position 1 in the GPU queue; held by the cell worker of "
        f"session {first.session.id[:8]} (`%remote reset` there frees it)"
    )
    [waiting] = gpus(runner)["waiting"]
    assert waiting["position"] == 1 and waiting["holder"]["session"] == second.session.id
    time.sleep(1.0)
    assert not finished.is_set()  # an idle cell worker of another notebook is not evicted

    first.session.reset()
    assert finished.wait(30) and not errors
    thread.join()
    assert second.namespace["y"] == 2
    assert gpus(runner)["gpus"][0]["holder"]["session"] == second.session.id


def test_a_function_call_waits_for_a_cells_gpu_and_says_so(
    gpu_runner: tuple[RunningRunner, Path],
    notebooks: list[Notebook],
    capsys: pytest.CaptureFixture[str],
) -> None:
    runner, _ = gpu_runner
    notebooks[0].run("held = True", gpu="H100")
    app = nr.App("gpu-queue")

    @app.function(gpu="H100")
    def visible() -> str:
        return os.environ["CUDA_VISIBLE_DEVICES"]

    caller = _session.connect(runner.url, runner.token)
    try:
        timer = threading.Timer(1.5, notebooks[0].session.reset)
        timer.start()
        assert visible.remote() == "GPU-h100-1"
        timer.join()
        waited = capsys.readouterr().err
        assert f"nbremote: waiting for 1{TIMES}H100, position 1 in the GPU queue" in waited
    finally:
        caller.reset()
        caller.close()
        _session._current = None


def test_ctrl_c_takes_a_waiting_call_out_of_the_gpu_queue(
    gpu_runner: tuple[RunningRunner, Path], notebooks: list[Notebook]
) -> None:
    runner, _ = gpu_runner
    notebooks[0].run("held = True", gpu="H100")
    app = nr.App("gpu-ctrl-c")

    @app.function(gpu="H100")
    def never() -> str:
        return "ran"

    caller = _session.connect(runner.url, runner.token)
    try:
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
        started = time.monotonic()
        with pytest.raises(RemoteError, match="cancelled"):
            never.remote()
        assert time.monotonic() - started < 5  # one Ctrl-C is enough
        assert gpus(runner)["waiting"] == []
    finally:
        caller.reset()
        caller.close()
        _session._current = None


def test_an_idle_function_worker_is_stopped_to_make_room(
    gpu_runner: tuple[RunningRunner, Path], notebooks: list[Notebook]
) -> None:
    runner, _ = gpu_runner
    app = nr.App("gpu-eviction")

    @app.function(gpu="A100", scaledown_window=600)
    def visible() -> str:
        return os.environ["CUDA_VISIBLE_DEVICES"]

    caller = _session.connect(runner.url, runner.token)
    try:
        assert visible.remote() == "GPU-a100-0"
        holder = gpus(runner)["gpus"][0]["holder"]
        assert holder["kind"] == "function" and holder["name"].endswith("visible")
        assert holder["idle"]

        started = time.monotonic()
        notebooks[0].run("z = 3")  # the idle function worker makes way, at once
        assert time.monotonic() - started < 20 and notebooks[0].namespace["z"] == 3
        assert gpus(runner)["gpus"][0]["holder"]["kind"] == "cell"
        assert caller.describe().workers == []
    finally:
        caller.reset()
        caller.close()
        _session._current = None


def test_functions_and_classes_take_gpu_settings(gpu_runner: tuple[RunningRunner, Path]) -> None:
    runner, _ = gpu_runner
    app = nr.App("gpu-functions")

    @app.function(gpu=["B200", nr.gpu.H100()])
    def visible() -> str:
        return os.environ["CUDA_VISIBLE_DEVICES"]

    @app.cls(gpu="A100-80GB")
    class Model:
        @nr.method()
        def devices(self) -> str:
            return os.environ["CUDA_VISIBLE_DEVICES"]

    caller = _session.connect(runner.url, runner.token)
    try:
        assert visible.remote() == "GPU-h100-1"  # B200 is not there: the fallback
        assert Model().devices.remote() == "GPU-a100-0"
        with pytest.raises(RemoteError, match=r"asks for more GPUs than this runner has: A100:2"):
            visible.with_options(gpu="A100:2").remote()
        with pytest.raises(RemoteError, match="no GPU on this runner matches T4; it has: "):
            Model.with_options(gpu="T4")().devices.remote()
    finally:
        caller.reset()
        caller.close()
        _session._current = None


def test_the_magic_takes_gpu_and_status_shows_the_notebooks_gpus(
    gpu_runner: tuple[RunningRunner, Path], ipython: InteractiveShell
) -> None:
    runner, _ = gpu_runner
    _session.connect(runner.url, runner.token)
    try:
        with capture_output() as captured:
            ipython.run_cell_magic("remote", "--gpu 'H100|A100'", "import os\nseen = 1")
        assert "nbremote: GPU 1 (NVIDIA H100 80GB HBM3): peak memory" in captured.stderr
        with capture_output() as status:
            ipython.run_line_magic("remote", "status")
        assert "gpu      1 NVIDIA H100 80GB HBM3" in status.stdout
        with pytest.raises(UsageError, match="--gpu: the count in 'A100:0'"):
            ipython.run_cell_magic("remote", "--gpu A100:0", "pass")
        with pytest.raises(RemoteError, match="no GPU on this runner matches B200"):
            ipython.run_cell_magic("remote", "--gpu B200", "never = 1")
        assert "never" not in ipython.user_ns
    finally:
        _session.current_session().reset()
        _session.current_session().close()
        _session._current = None


def _cli(runner: RunningRunner, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "nbremote", *args, "--url", runner.url]
    command += ["--token", runner.token or ""]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_nbremote_gpus_lists_devices_and_holders(
    gpu_runner: tuple[RunningRunner, Path], notebooks: list[Notebook]
) -> None:
    runner, fake = gpu_runner
    write_fake(fake, [A100 | {"utilization": 30, "used_mib": 1024}, H100])
    notebooks[0].run("a = 1")
    listed = json.loads(_cli(runner, "gpus", "--json").stdout)
    assert listed["source"] == "fake-nvml" and listed["unavailable"] is None
    first, second = listed["gpus"]
    assert (first["index"], first["name"], first["uuid"]) == (0, A100["name"], "GPU-a100-0")
    assert first["memory_total_bytes"] == 80 * 2**30 and first["utilization_percent"] == 30
    assert first["holder"]["worker"] and first["holder"]["session"] == notebooks[0].session.id
    assert second["holder"] is None
    table = _cli(runner, "gpus").stdout
    assert "NVIDIA A100-SXM4-80GB" in table and "30%" in table and "free" in table


def test_a_runner_without_gpus_says_why_and_refuses_gpu_cells(tmp_path: Path) -> None:
    fake = tmp_path / "gpus.json"
    write_fake(fake, [], error="NVML Shared Library Not Found")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NBREMOTE_FAKE_NVML", str(fake))
        runner = start_runner(tmp_path / "data")
    try:
        listed = _cli(runner, "gpus").stdout
        assert listed.strip() == "no GPUs: NVML failed: NVML Shared Library Not Found"
        notebook = Notebook(runner)
        started = time.monotonic()
        with pytest.raises(RemoteError, match=r"this runner has no GPUs \(NVML failed"):
            notebook.run("x = 1", gpu="any")
        assert time.monotonic() - started < 10
        notebook.close()
    finally:
        runner.stop()


def test_a_declared_inventory_pins_by_index(tmp_path: Path) -> None:
    runner = start_runner(tmp_path / "data", "test-token-0123456789", "--gpus", "A100-80GB:2,H100")
    try:
        listed = gpus(runner)
        assert listed["source"] == "declared"
        assert [gpu["name"] for gpu in listed["gpus"]] == ["A100-80GB", "A100-80GB", "H100"]
        notebook = Notebook(runner)
        notebook.run("import os\nvisible = os.environ['CUDA_VISIBLE_DEVICES']", gpu="A100:2")
        assert notebook.namespace["visible"] == "0,1"
        assert "peak memory n/a" in notebook.notices[0]
        notebook.close()
    finally:
        runner.stop()
    bad = _cli_runner(tmp_path, "--gpus", "A100|H100")
    assert bad.returncode == 2 and "must name one type" in bad.stderr


def _cli_runner(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "nbremote", "runner", "--port", "0", *args]
    command += ["--data-dir", str(tmp_path / "bad")]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_a_deployed_app_holds_its_gpus_under_its_name(
    gpu_runner: tuple[RunningRunner, Path], tmp_path: Path
) -> None:
    runner, _ = gpu_runner
    script = tmp_path / "gpu_app.py"
    script.write_text(
        "import os\nimport nbremote as nr\n\napp = nr.App('gpu-app')\n\n\n"
        "@app.function(gpu='H100')\ndef visible():\n    return os.environ['CUDA_VISIBLE_DEVICES']\n"
    )
    deployed = _cli(runner, "deploy", str(script))
    assert deployed.returncode == 0, deployed.stderr
    caller = _session.connect(runner.url, runner.token)
    try:
        assert nr.Function.from_name("gpu-app", "visible").remote() == "GPU-h100-1"
        holder = gpus(runner)["gpus"][1]["holder"]
        assert (holder["kind"], holder["name"]) == ("app", "gpu-app.visible")
    finally:
        _cli(runner, "apps", "stop", "gpu-app")
        caller.close()
        _session._current = None
    assert gpus(runner)["gpus"][1]["holder"] is None  # stopping the app freed its GPU
