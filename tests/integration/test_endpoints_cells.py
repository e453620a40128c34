"""What the first part of web endpoints left out, against a real runner: ``%%remote --endpoint``
cells from a real IPython shell, ``nbremote serve FILE.py`` as a subprocess (reload on edit, gone
on Ctrl-C), and ``@nr.web_server(port)`` over a server the function starts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import nbremote as nr
from nbremote import _session
from nbremote.errors import RunnerError
from tests.conftest import RunningRunner

TIMEOUT = 120  # seconds: the first request of an endpoint starts its worker
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(
    url: str, token: str | None = None, body: Any = None, method: str | None = None
) -> tuple[int, Any]:
    """A request as any HTTP client makes it: its status and JSON answer (text if not JSON)."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with OPENER.open(request, timeout=TIMEOUT) as answer:
            status, text = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.decode()


def stop_app(name: str) -> None:
    with contextlib.suppress(RunnerError):
        _session.current_session().client.call("DELETE", f"/api/v1/apps/{name}")


def promote(shell: InteractiveShell, line: str, cell: str) -> str:
    """Run ``%%remote LINE`` over ``cell``; what it printed."""
    with capture_output() as shown:
        shell.run_cell_magic("remote", line, cell)
    return shown.stdout


def test_a_cell_answers_its_response_from_a_snapshot_of_its_inputs(
    shell: InteractiveShell,
) -> None:
    shell.user_ns["rate"] = 2
    shell.user_ns["ops"] = __import__("operator")
    cell = "response = {'total': ops.mul(request['json']['price'], rate), 'q': request['args']}\n"
    try:
        printed = promote(shell, "--endpoint POST /quote --name t-cell-quote", cell)
        ep = nr.Endpoint("t-cell-quote")
        assert f"POST {ep.url}/quote" in printed
        assert "nbremote endpoints show t-cell-quote" in printed
        assert "response" not in shell.user_ns  # nothing bound: the cell did not run here
        assert shell.user_ns["rate"] == 2

        shell.user_ns["rate"] = 10  # the endpoint keeps what the cell read at promotion
        answer = http(f"{ep.url}/quote?currency=EUR&n=1", ep.token, {"price": 3})
        assert answer == (200, {"total": 6, "q": {"currency": "EUR", "n": "1"}})
        assert http(f"{ep.url}/quote", None, {"price": 3})[0] == 401
        assert http(f"{ep.url}/other", ep.token, {"price": 3})[0] == 404
        assert http(f"{ep.url}/quote", ep.token, method="GET")[0] == 405

        promote(shell, "--endpoint POST /quote --name t-cell-quote", cell)  # promoted again
        assert http(f"{ep.url}/quote", ep.token, {"price": 3})[1]["total"] == 30
    finally:
        stop_app("t-cell-quote")


def test_a_public_cell_answers_its_last_expression_without_a_token(
    shell: InteractiveShell,
) -> None:
    cell = "greeting = 'hello ' + request['args'].get('name', 'you')\n{'says': greeting}\n"
    try:
        printed = promote(shell, "--endpoint GET --name t-cell-hello --public", cell)
        assert "public" in printed
        ep = nr.Endpoint("t-cell-hello")
        assert http(f"{ep.url}?name=Ada") == (200, {"says": "hello Ada"})
        assert "greeting" not in shell.user_ns
    finally:
        stop_app("t-cell-hello")


def test_the_request_holds_the_callers_headers_but_not_the_token(shell: InteractiveShell) -> None:
    try:
        promote(shell, "--endpoint --name t-cell-headers", "request['headers']\n")
        ep = nr.Endpoint("t-cell-headers")
        token = ep.token
        status, headers = http(ep.url, token, {"x": 1})
        assert status == 200 and headers["content-type"] == "application/json"
        assert "authorization" not in headers and token not in json.dumps(headers)
    finally:
        stop_app("t-cell-headers")


def test_a_cell_error_and_an_answer_that_is_not_json_are_500_json(
    shell: InteractiveShell,
) -> None:
    cell = (
        "print('asked', request['json'])\n"
        "if request['json']['fail']:\n    raise KeyError('no such item')\n{1, 2}\n"
    )
    try:
        promote(shell, "--endpoint --name t-cell-fails --public", cell)
        ep = nr.Endpoint("t-cell-fails")
        status, answer = http(ep.url, None, {"fail": True})
        assert (status, answer["error"]["type"]) == (500, "KeyError")
        assert "no such item" in answer["error"]["message"] and "Traceback" not in str(answer)
        status, answer = http(ep.url, None, {"fail": False})
        assert status == 500 and "set" in answer["error"]["message"]
        client = _session.current_session().client
        log = b"".join(client.stream("/api/v1/apps/t-cell-fails/logs")).decode()
        assert "raise KeyError('no such item')" in log  # the traceback, with the cell's line
        assert "asked {'fail': True}" in log  # and what the cell printed (in a thread of its own)
    finally:
        stop_app("t-cell-fails")


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("--endpoint", "--endpoint needs --name"),
        ("--endpoint --name x --schedule '@daily'", "--schedule and --endpoint"),
        ("--endpoint FETCH --name x", "FETCH: not an HTTP method"),
        ("--endpoint POST predict --name x", "'predict': a PATH starts with '/'"),
        ("--endpoint /a/../b --name x", "a PATH starts with '/'"),
        ("--endpoint GET /a /b --name x", "[METHOD] [PATH]"),
        ("--endpoint --name 'bad name'", "an endpoint's name is"),
        ("--public --name x", "--public only goes with --endpoint"),
        ("--endpoint --name x --out y", "--out do not go with --endpoint"),
    ],
)
def test_bad_endpoint_flags_are_named_before_anything_is_sent(
    shell: InteractiveShell, line: str, named: str
) -> None:
    with pytest.raises(UsageError, match=named.replace("[", r"\[").replace("]", r"\]")):
        shell.run_cell_magic("remote", line, "response = 1\n")
    assert all(e.name != "x" for e in nr.Endpoint.list())


def wait_for(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Wait until ``check()`` holds (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {timeout} s")
        time.sleep(0.2)


SERVED = """\
import nbremote as nr
app = nr.App("t-serve")
@app.function()
@nr.fastapi_endpoint(label="t-serve-hello", requires_auth=False)
def hello() -> dict:
    return {"version": VERSION}
"""


def test_serve_reloads_on_edit_and_its_endpoints_go_on_ctrl_c(
    runner: RunningRunner, tmp_path: Path
) -> None:
    script = tmp_path / "served_app.py"
    script.write_text("VERSION = 1\n" + SERVED)
    env = {**os.environ, "NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": str(runner.token)}
    serving = subprocess.Popen(
        [sys.executable, "-m", "nbremote", "serve", str(script)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert serving.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(serving.stdout or ()), daemon=True)
    reader.start()
    url = f"{runner.url}/endpoints/t-serve-hello"
    try:
        wait_for(lambda: http(url) == (200, {"version": 1}), "serving version 1")
        assert any(f"endpoint t-serve-hello: {url}" in line for line in lines)
        script.write_text("VERSION = (\n" + SERVED)  # does not load: the last deploy stays
        wait_for(lambda: any("does not load" in line for line in lines), "told")
        assert any("SyntaxError" in line for line in lines)
        assert http(url) == (200, {"version": 1})
        script.write_text("VERSION = 2\n" + SERVED)
        wait_for(lambda: http(url) == (200, {"version": 2}), "serving version 2")
        serving.send_signal(signal.SIGINT)
        assert serving.wait(timeout=TIMEOUT) == 0, lines
        assert http(url)[0] == 404
        assert any("redeployed app 't-serve'" in line for line in lines)
    finally:
        if serving.poll() is None:
            serving.kill()
            serving.wait()
        reader.join(timeout=TIMEOUT)
        serving.stdout.close()
        with contextlib.suppress(RunnerError), runner.client() as client:
            client.call("DELETE", "/api/v1/apps/t-serve")


def free_ports(count: int) -> tuple[int, ...]:
    """Ports nothing listens on now (the kernel's choice: no clash with another test run)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return tuple(sock.getsockname()[1] for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


WEB_SERVER = """\
import http.server
import json
import subprocess
import sys
import threading

import nbremote as nr

app = nr.App("t-web-server")
PORT, SILENT = {ports}


class Echo(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        answer = json.dumps({"path": self.path, "got": json.loads(body)}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Served-By", "http.server")
        self.end_headers()
        self.wfile.write(answer)


@app.function()
@nr.web_server(PORT, label="t-web-server", requires_auth=False)
def serve():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()


@app.function()
@nr.web_server(SILENT, startup_timeout=1, label="t-web-never", requires_auth=False)
def never():
    pass
"""


def test_a_web_server_started_by_the_function_is_served(
    runner: RunningRunner, tmp_path: Path
) -> None:
    script = tmp_path / "server_app.py"
    ports = free_ports(2)
    script.write_text(WEB_SERVER.replace("{ports}", repr(ports)))
    env = {**os.environ, "NBREMOTE_URL": runner.url, "NBREMOTE_TOKEN": str(runner.token)}
    try:
        deployed = subprocess.run(
            [sys.executable, "-m", "nbremote", "deploy", str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert deployed.returncode == 0, deployed.stderr
        base = f"{runner.url}/endpoints/t-web-server"
        assert http(f"{base}/items?id=7", None, {"n": 1}) == (
            201,
            {"path": "/items?id=7", "got": {"n": 1}},
        )
        status, answer = http(f"{runner.url}/endpoints/t-web-never")
        assert status == 503 and f"did not start listening on port {ports[1]}" in str(answer)
    finally:
        with contextlib.suppress(RunnerError), runner.client() as client:
            client.call("DELETE", "/api/v1/apps/t-web-server")
