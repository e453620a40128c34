"""Requests served with no client attached: the `Dispatcher` seam that schedules and endpoints
use, and spawned calls that outlive the kernel that spawned them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from nbremote_runner.server import make_app
from nbremote_runner.service import Runner, RunnerConfig

import nbremote as nr
from nbremote import _session
from nbremote._calls import decode
from nbremote._client import RunnerClient
from nbremote._deploy import deploy
from nbremote._session import RemoteSession
from nbremote.wire.codec import Buffer, Header
from tests.conftest import RunningRunner

T = TypeVar("T")
app = nr.App("dispatch-tests")


@app.function
def shout(word: str) -> str:
    print(f"shouting {word}")
    return word.upper()


@app.function
def after_go(go: str) -> str:
    """Returns once the file ``go`` exists: the test says when it may finish."""
    import pathlib
    import time

    while not pathlib.Path(go).exists():
        time.sleep(0.05)
    return "finished"


class Collector:
    """A `forward` that keeps the frames it is given, as a log collector would."""

    def __init__(self) -> None:
        self.frames: list[Header] = []

    def __call__(self, header: Header, buffers: Sequence[Buffer]) -> None:
        self.frames.append(header)

    def text(self) -> str:
        return "".join(f["text"] for f in self.frames if f["op"] == "stream")


def in_process(data_dir: Path, scenario: Callable[[Runner], Awaitable[T]]) -> T:
    """Run ``scenario`` against a runner started in this process (no kernel, no channel)."""

    async def main() -> T:
        runner = Runner(RunnerConfig(data_dir=data_dir, port=0, spare_worker=False))
        await runner.start(make_app(runner))
        try:
            return await scenario(runner)
        finally:
            await runner.stop()

    return asyncio.run(main())


def exec_frame(request_id: str, code: str) -> Header:
    return {"op": "exec", "id": request_id, "code": code, "inputs": [], "outputs": []}


def test_a_cell_runs_with_no_channel_and_its_output_is_collected(tmp_path: Path) -> None:
    async def scenario(runner: Runner) -> tuple[Collector, Header, Header, int]:
        session, _ = runner.sessions.open("no-kernel", "scheduled.ipynb")
        output = Collector()
        code = "import os\nprint('hello from no kernel')\nanswer = 6 * 7\nanswer"
        done, _ = await runner.dispatcher.serve(exec_frame("run-1", code), [], output, session)
        orphan, _ = await runner.dispatcher.serve(exec_frame("run-2", "1"), [], output)
        return output, done, orphan, await runner.state.count_runs()

    output, done, orphan, runs = in_process(tmp_path / "runner", scenario)
    assert done["ok"], done
    assert "hello from no kernel\n" in output.text()
    assert {f["id"] for f in output.frames} == {"run-1"}  # the error below sent nothing out
    assert "42" in str([f for f in output.frames if f["op"] != "stream"])  # the last expression
    assert runs == 1  # the cell is in the run history like a kernel's
    # A cell needs a session: without one, an answer that says so (not an exception).
    assert not orphan["ok"] and "runs in a notebook session" in orphan["error"]["evalue"]


def test_a_deployed_function_is_called_with_no_session(tmp_path: Path) -> None:
    def request(url: str) -> tuple[Header, list[bytearray]]:
        """Deploy the app, and build a call to it the way a kernel would (not sending it)."""
        with RunnerClient(url, None) as client:
            deploy(client, app)
        _session.connect(url, None)
        try:
            target = nr.Function.from_name(app.name, "shout")._target()
            built = target.request([(("quietly",), {})], 0, True)
        finally:
            _session.current_session().close()
            _session._current = None
        return {**built.header, "id": "endpoint-call"}, [bytearray(b) for b in built.buffers]

    async def scenario(runner: Runner) -> tuple[Collector, list[Any]]:
        header, buffers = await asyncio.to_thread(request, runner.url)
        output = Collector()
        return output, decode(await runner.dispatcher.serve(header, buffers, output), 0)

    output, results = in_process(tmp_path / "runner", scenario)
    logs = "".join(path.read_text() for path in (tmp_path / "runner" / "logs").rglob("*.log"))
    assert results == ["QUIETLY"]
    assert output.text() == "shouting quietly\n"
    assert "shouting quietly" in logs  # and the app's log has it, as for a kernel's call


def test_a_spawned_call_outlives_the_kernel_that_spawned_it(
    remote_session: RemoteSession, runner: RunningRunner, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    call = after_go.spawn(str(go))
    remote_session.close()  # the spawning kernel's channel goes away while the call runs
    # The call finishes only once another process has started, connected and made `go`.
    code = (
        "import pathlib, nbremote as nr\nfrom nbremote import _session\n"
        f"_session.connect({runner.url!r}, {runner.token!r})\n"
        f"pathlib.Path({str(go)!r}).touch()\n"
        f"print(nr.FunctionCall.from_id({call.object_id!r}).get(timeout=60))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=90, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "finished"
