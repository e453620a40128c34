"""A real ``jupyter server`` (or ``jupyter lab``) on a loopback port, for the extension's tests.

It runs in a process of its own with Jupyter's folders in the test's tmp dir, the extension
enabled by the config file ``pip install`` puts in the venv (nothing passed on the command line),
and the runner's URL and token in its environment only, as a user would configure it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKEN = "jupyter-test-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Jupyter:
    url: str
    log: Path

    def fetch(
        self, path: str, method: str = "GET", token: str | None = TOKEN, body: Any = None
    ) -> tuple[int, str, Any]:
        """Status, content type and body (JSON decoded when it is JSON) of one request."""
        headers = {"Authorization": f"token {token}"} if token else {}
        if method != "GET":
            headers["Content-Type"] = "application/json"
        data = json.dumps(body or {}).encode() if method == "POST" else None
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, kind, body = (
                    response.status,
                    response.headers["Content-Type"],
                    response.read(),
                )
        except urllib.error.HTTPError as exc:
            status, kind, body = exc.code, exc.headers.get("Content-Type", ""), exc.read()
        if kind and kind.startswith("application/json") and body:
            return status, kind, json.loads(body)
        return status, kind or "", body.decode()


@contextmanager
def running_jupyter(
    tmp: Path, env: dict[str, str], app: str = "server", args: tuple[str, ...] = ()
) -> Iterator[Jupyter]:
    """``jupyter APP`` on a free loopback port with token ``TOKEN``, stopped afterwards."""
    home = tmp / "jupyter"
    root = tmp / "notebooks"
    root.mkdir(exist_ok=True)
    variables = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_PATH", "DISPLAY")}
    variables |= {
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        **env,
    }
    port = free_port()
    log = tmp / f"jupyter-{port}.log"
    command = [
        str(Path(sys.prefix) / "bin" / "jupyter"),
        app,
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        *(["--allow-root"] if os.getuid() == 0 else []),
        *args,
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, env=variables, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    jupyter = Jupyter(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if jupyter.fetch("/api/status")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"jupyter {app} did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield jupyter
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
