"""A real Jupyter kernel for tests, with nbremote loaded and pointed at a test runner, driven
through jupyter_client as a notebook frontend drives it: what a cell sends back, and (when the
test plays the person at the keyboard) its stdin requests."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from tests.conftest import RunningRunner

KEPT = ("stream", "display_data", "execute_result", "error")
"""The messages of a cell that a notebook shows."""

Answer = Callable[[dict[str, Any]], None]
"""The frontend's stdin: gets each input request's content and answers it (``client.input``)."""


@dataclass
class Ran:
    """What the notebook got for one cell, and the input requests the frontend saw."""

    reply: dict[str, Any]
    outputs: list[dict[str, Any]] = field(default_factory=list)  # messages, in order
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        """The output types in order (a stream's name in place of "stream")."""
        return [o["content"].get("name", o["msg_type"]) for o in self.outputs]

    def text(self, name: str = "stdout") -> str:
        """What the cell printed to ``name``."""
        return "".join(
            o["content"]["text"] for o in self.outputs if o["content"].get("name") == name
        )

    def data(self) -> list[dict[str, Any]]:
        """The contents of its ``display_data`` messages."""
        return [o["content"] for o in self.outputs if o["msg_type"] == "display_data"]

    def errors(self) -> list[dict[str, Any]]:
        """The contents of its ``error`` messages."""
        return [o["content"] for o in self.outputs if o["msg_type"] == "error"]


class Kernel:
    """One kernel, started in ``cwd`` (what its cells write stays out of the checkout).

    Args:
        runner: the runner its ``%%remote`` cells go to.
        cwd: its working directory.
        notebook: the notebook it says it belongs to (``JPY_SESSION_NAME``), if any.
    """

    def __init__(self, runner: RunningRunner, cwd: Path, notebook: str | None = None) -> None:
        env = {**os.environ, "NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": runner.token or ""}
        if notebook is not None:
            env["JPY_SESSION_NAME"] = notebook
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=env, cwd=str(cwd))
        self.client: BlockingKernelClient = self.manager.client()
        self.client.start_channels()
        try:
            self.client.wait_for_ready(timeout=60)
            self.ok("%load_ext nbremote")
        except BaseException:
            self.close()
            raise

    def run(self, code: str, answer: Answer | None = None) -> Ran:
        """Run ``code``; ``answer`` (if any) is the frontend's stdin, else it takes no input."""
        ran = Ran({})

        def keep(msg: dict[str, Any]) -> None:
            if msg["msg_type"] in KEPT:
                ran.outputs.append(msg)

        def stdin(msg: dict[str, Any]) -> None:
            ran.requests.append(msg["content"])
            assert answer is not None
            answer(msg["content"])

        reply = self.client.execute_interactive(
            code, allow_stdin=answer is not None, output_hook=keep, stdin_hook=stdin, timeout=120
        )
        ran.reply = reply["content"]
        return ran

    def ok(self, code: str) -> str:
        """Run a cell that must succeed (else the test fails, showing its traceback); what it
        printed, stdout and stderr in order."""
        ran = self.run(code)
        printed = "".join(o["content"]["text"] for o in ran.outputs if o["msg_type"] == "stream")
        tracebacks = "\n".join("\n".join(e["traceback"]) for e in ran.errors())
        assert ran.reply["status"] == "ok", printed + tracebacks
        return printed

    def both(self, code: str) -> tuple[Ran, Ran]:
        """``code`` run locally, then as a ``%%remote`` cell."""
        return self.run(code), self.run(f"%%remote\n{code}")

    def typed(self, text: str) -> Answer:
        """A frontend where the person types ``text`` at each prompt."""
        return lambda request: self.client.input(text)

    @property
    def pid(self) -> int:
        """The kernel's process id."""
        provisioner: Any = self.manager.provisioner
        return int(provisioner.process.pid)

    def close(self) -> None:
        """Shut the kernel down (if it is still alive) and free its sockets."""
        self.client.stop_channels()
        if self.manager.is_alive():
            self.manager.shutdown_kernel(now=True)
        else:
            self.manager.cleanup_resources()
        self.manager.context.destroy(linger=0)
