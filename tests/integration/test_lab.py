"""`make lab`: its script starts the venv's JupyterLab, with nbremote's kernel, on the quickstart.

The test runs scripts/lab.sh exactly as `make lab` does (plus a free port and a token), waits for
the server, asks it what a user's browser would, then stops it: nothing blocks, no browser opens.
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
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]
TOKEN = "nbremote-lab-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def get(url: str) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body (or None) of a GET with the token, redirects not followed."""
    request = urllib.request.Request(url, headers={"Authorization": f"token {TOKEN}"})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=5) as response:
            body = response.read()
            status, headers = response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), None
    is_json = headers.get("Content-Type", "").startswith("application/json")
    return status, headers, json.loads(body) if is_json else None


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    """JupyterLab started by scripts/lab.sh on a free port; its URL."""
    home = tmp_path / "jupyter-home"
    # A user's own "python3" kernel, of a Python without nbremote, in their Jupyter data dir.
    user_kernel = home / "data" / "kernels" / "python3"
    user_kernel.mkdir(parents=True)
    spec = {
        "argv": ["/elsewhere/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    }
    (user_kernel / "kernel.json").write_text(json.dumps(spec | {"display_name": "Elsewhere"}))
    env = {
        key: value for key, value in os.environ.items() if key not in ("DISPLAY", "JUPYTER_PATH")
    }
    env |= {
        "VENV": sys.prefix,  # the venv these tests run in: `make lab`'s .venv under `make test`
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    port = free_port()
    log = (tmp_path / "lab.log").open("w")
    args = [f"--port={port}", "--port-retries=0", f"--IdentityProvider.token={TOKEN}"]
    proc = subprocess.Popen(
        ["sh", str(ROOT / "scripts" / "lab.sh"), *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(f"{url}/api/status")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"JupyterLab did not start:\n{(tmp_path / 'lab.log').read_text()}"
                )
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_make_lab_serves_the_quickstart_with_the_nbremote_kernel(lab: str) -> None:
    status, headers, _ = get(f"{lab}/")
    assert status == 302
    assert headers["Location"].split("?")[0].endswith("/lab/tree/notebooks/quickstart.ipynb")

    status, _, notebook = get(f"{lab}/api/contents/notebooks/quickstart.ipynb?content=0")
    assert status == 200 and notebook["type"] == "notebook"

    _, _, listed = get(f"{lab}/api/kernelspecs")
    specs = listed["kernelspecs"]
    nbremote = specs["nbremote"]["spec"]
    assert nbremote["display_name"] == "Python (nbremote)"
    assert nbremote["argv"][0] == f"{sys.prefix}/bin/python"  # the venv's Python: nbremote imports
    assert listed["default"] == "nbremote"  # what a new notebook gets
    # The quickstart asks for "python3": the venv's own, not the one in the user's home.
    assert specs["python3"]["spec"]["display_name"] != "Elsewhere"
    kernel = Path(sys.prefix) / "share" / "jupyter" / "kernels" / "nbremote" / "kernel.json"
    assert kernel.is_file()  # installed into the venv's prefix, never the user's home
