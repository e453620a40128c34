"""``input()`` and ``getpass.getpass()`` in a ``%%remote`` cell ask the person at the notebook, as
the same cell would locally: each test drives one real Jupyter kernel (jupyter_client) and
answers (or refuses, or interrupts) its stdin requests as a frontend does."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from nbremote._client import Channel
from nbremote.wire.ops import INPUT_LIMIT
from tests.conftest import RunningRunner
from tests.kernels import Kernel, Ran


@pytest.fixture(scope="module")
def kernel(runner: RunningRunner, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    started = Kernel(runner, tmp_path_factory.mktemp("kernel"))
    yield started
    started.close()


def errors(ran: Ran) -> list[tuple[str, str]]:
    """The cell's errors, by name and message."""
    return [(e["ename"], e["evalue"]) for e in ran.errors()]


def test_input_prompts_in_the_notebook_and_the_answer_reaches_the_cell(kernel: Kernel) -> None:
    ran = kernel.run("%%remote\nname = input('who? ')\nprint('hi', name)", kernel.typed("ada"))
    assert ran.reply["status"] == "ok", errors(ran)
    assert ran.requests == [{"prompt": "who? ", "password": False}]
    assert ran.text() == "hi ada\n"
    assert kernel.run("print(repr(name))").text() == "'ada'\n"  # bound in the notebook too


def test_without_stdin_the_cell_fails_as_a_local_one(kernel: Kernel) -> None:
    local = kernel.run("answer = input('who? ')")
    remote = kernel.run("%%remote\nanswer = input('who? ')")
    assert errors(local)[0][0] == "StdinNotImplementedError"
    assert errors(remote) == errors(local)
    assert remote.reply["status"] == local.reply["status"] == "error"
    assert remote.requests == []


def test_getpass_asks_for_a_password(kernel: Kernel) -> None:
    code = "%%remote\nimport getpass\nkey = getpass.getpass('key: ')\nprint(len(key))"
    ran = kernel.run(code, kernel.typed("sesame"))
    assert ran.requests == [{"prompt": "key: ", "password": True}]
    assert ran.text() == "6\n"
    assert kernel.run("print(key)").text() == "sesame\n"


def test_ctrl_c_at_the_prompt_interrupts_the_cell_as_locally(kernel: Kernel) -> None:
    def interrupt(request: dict[str, Any]) -> None:
        # As a person would, a moment after the prompt shows: ipykernel sends the prompt just
        # before its wait loop starts, and a SIGINT in between raises a bare KeyboardInterrupt
        # (no "Interrupted by user"), locally as remotely: on a loaded machine that happened.
        time.sleep(0.2)
        kernel.manager.interrupt_kernel()

    code = "try:\n    input('? ')\nexcept KeyboardInterrupt as e:\n    print('stopped:', e)"
    local = kernel.run(code, interrupt)
    remote = kernel.run(f"%%remote\n{code}", interrupt)
    assert local.text() == "stopped: Interrupted by user\n"
    assert remote.text() == local.text()
    assert kernel.run("%%remote\nprint('after')").text() == "after\n"  # the worker goes on


def test_an_answer_too_long_for_the_runner_fails_input_instead_of_hanging_the_cell(
    runner: RunningRunner,
) -> None:
    session_id = uuid.uuid4().hex
    with runner.client() as client:
        client.request("POST", "/api/v1/sessions", {"id": session_id, "notebook": "stdin"})
        channel = client.open_channel(session_id)
    channel.sock.settimeout(60)
    try:
        code = "try:\n    input('? ')\nexcept Exception as e:\n    print(type(e).__name__, e)"
        cell = {"op": "exec", "id": "c", "code": code, "inputs": [], "outputs": [], "spec": {}}
        channel.send(cell)
        frames = _until(channel, "input")
        assert frames[-1]["prompt"] == "? "
        channel.send({"op": "input_reply", "id": "c", "value": "x" * (INPUT_LIMIT + 1)})
        frames = _until(channel, "done")
        assert frames[-1]["ok"] is True  # the cell went on, with input()'s error
        printed = "".join(f["text"] for f in frames if f["op"] == "stream")
        assert printed.startswith("ValidationError value: String should have at most")
    finally:
        channel.close()
        with runner.client() as client:
            client.request("DELETE", f"/api/v1/sessions/{session_id}")


def _until(channel: Channel, op: str) -> list[dict[str, Any]]:
    """The request's frames up to and including the first ``op`` frame."""
    frames = []
    while not frames or frames[-1]["op"] != op:
        frames.append(channel.recv()[0])
    return frames
