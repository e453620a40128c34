"""Benchmark of web endpoints (issue 18): a trivial JSON GET through the runner, beside the same
function served by plain uvicorn+FastAPI and by Jupyter Kernel Gateway's notebook-http mode.

Run ``.venv/bin/python bench/bench_endpoints.py`` (``--seconds``, ``--clients 1,64,256``;
``--quick`` for a smoke test) to measure every peer in one run, print a markdown table and write
it into its section of RESULTS.md (not with ``--quick``). The exit status is non-zero when the
runner or uvicorn answers anything but 200 with the right body.

The function: ``def ping(): return {"ok": True}`` (sync, as most endpoints are).

nbremote
    ``nbremote runner`` on 127.0.0.1, the function deployed through the REST API as
    ``nbremote deploy`` sends it, with ``fastapi_endpoint`` web settings and
    ``max_containers=4`` (the runner answers 503 beyond 64 waiting requests per worker its pool
    may have: the default, a worker per core, would refuse 256 callers on 2 cores); called at
    ``/endpoints/bench/ping`` with its bearer token.
uvicorn
    ``uvicorn app:app`` (one process, ``--log-level warning``), a FastAPI app with the function
    as its ``GET /`` route, twice: with httptools (the parser of ``uvicorn[standard]``, which the
    runner's endpoint front uses too) and with h11 (plain ``pip install uvicorn``). The faster
    is the floor the runner is held to (target: p50 within 1.5x).
kernel-gateway
    ``jupyter kernelgateway`` in notebook-http mode over a notebook whose one cell is
    ``# GET /ping`` printing the JSON, its one kernel, in a virtualenv of its own under
    ``bench/.envs/kernelgateway`` (made with uv on first use; never a dependency of ours).

Each peer first serves its largest load for a few seconds, unmeasured (the runner's pool grows
to its workers then). Each row: C clients (asyncio, a keep-alive connection each, HTTP/1.1 by
hand) send their next request as soon as the last is answered, for the row's seconds after a
warm-up; requests/s, p50 and p99 latency, and errors (a status other than 200, a wrong body, a
connection that failed). The load generator runs in this process and is the same for every peer.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from _results import check, checkout, machine, percentile, progress, write_results

from nbremote.wire.serialize import dumps

HERE = Path(__file__).resolve().parent
KG_ENV = HERE / ".envs" / "kernelgateway"
KG_PACKAGES = ["jupyter-kernel-gateway", "ipykernel"]
SOURCE = "def ping():\n    return {'ok': True}\n"
BODY = {"ok": True}
TOKEN = "bench-endpoints-runner-token"
START_TIMEOUT = 60.0


@dataclass
class Peer:
    """A server under test: where to send the GET, with which headers."""

    name: str
    port: int
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    note: str = ""


@dataclass
class Row:
    took: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(
    port: int, path: str, headers: dict[str, str], process: subprocess.Popen[bytes]
) -> None:
    """Until ``GET path`` answers 200 (the server is up and warm)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        check(process.poll() is None, f"the server exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", path, headers=headers)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"no 200 from 127.0.0.1:{port}{path} within {START_TIMEOUT:g} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- the peers ---------------------------------------------------------------------------------


def rest(port: int, method: str, path: str, body: object = None) -> dict[str, object]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    connection.request(method, f"/api/v1{path}", data, headers)
    response = connection.getresponse()
    answer = response.read()
    check(response.status in (200, 201), f"{method} {path}: {response.status} {answer[:300]!r}")
    result: dict[str, object] = json.loads(answer)
    return result


@contextmanager
def nbremote_peer() -> Iterator[Peer]:
    data = Path(tempfile.mkdtemp(prefix="bench-endpoints-"))
    env = {k: v for k, v in os.environ.items() if k != "NBREMOTE_TOKEN"} | {"NBREMOTE_TOKEN": TOKEN}
    command = [sys.executable, "-P", "-m", "nbremote", "runner", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        check("listening on " in line, f"the runner did not start: {line}")
        port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        namespace: dict[str, object] = {"__name__": "__main__"}  # pickled by value, as deployed
        exec(compile(SOURCE, "<bench>", "exec", dont_inherit=True), namespace)
        payload = dumps("ping", namespace["ping"])
        settings = {"web": {"kind": "fastapi_endpoint"}, "max_containers": 4}
        obj = {
            "name": "ping",
            "kind": "function",
            "settings": settings,
            "payload": base64.b64encode(b"".join(payload.parts)).decode(),
            "sizes": [part.nbytes for part in payload.parts],
            "hash": payload.hash,
        }
        rest(port, "PUT", "/apps/bench", {"objects": [obj]})
        token = rest(port, "GET", "/endpoints/bench%2Fping")["token"]
        peer = Peer("nbremote", port, "/endpoints/bench/ping", {"Authorization": f"Bearer {token}"})
        peer.note = "max_containers=4"
        wait_for(peer.port, peer.path, peer.headers, process)
        yield peer
    finally:
        stop(process)
        shutil.rmtree(data, ignore_errors=True)


def uvicorn_peer(http: str) -> Callable[[], AbstractContextManager[Peer]]:
    """uvicorn with the HTTP parser ``http``: h11 (``pip install uvicorn``) or httptools (what
    ``uvicorn[standard]`` adds; its uvloop is not installed here, so both run asyncio's loop)."""

    @contextmanager
    def peer() -> Iterator[Peer]:
        folder = Path(tempfile.mkdtemp(prefix="bench-endpoints-"))
        (folder / "plainapp.py").write_text(
            f"from fastapi import FastAPI\n\n{SOURCE}\napp = FastAPI()\napp.get('/')(ping)\n"
        )
        port = free_port()
        command = [sys.executable, "-m", "uvicorn", "plainapp:app", "--port", str(port)]
        command += ["--http", http, "--loop", "asyncio", "--log-level", "warning"]
        process = subprocess.Popen(command, cwd=folder)
        try:
            wait_for(port, "/", {}, process)
            yield Peer(f"uvicorn+FastAPI ({http})", port, "/", note="1 process")
        finally:
            stop(process)
            shutil.rmtree(folder, ignore_errors=True)

    return peer


def kernel_gateway_python() -> Path:
    """Kernel Gateway's own environment's Python, made with uv on first use."""
    python = KG_ENV / "bin" / "python"
    if not python.exists():
        progress(f"installing Kernel Gateway into {KG_ENV.relative_to(HERE.parent)}")
        uv = Path(sys.executable).parent / "uv"
        for command in (
            [uv, "venv", "-q", "--python", sys.executable, KG_ENV],
            [uv, "pip", "install", "-q", "--python", python, *KG_PACKAGES],
        ):
            done = subprocess.run([str(c) for c in command], capture_output=True, text=True)
            if done.returncode != 0:
                shutil.rmtree(KG_ENV, ignore_errors=True)
                raise RuntimeError(f"installing Kernel Gateway failed: {done.stderr[-400:]}")
    return python


@contextmanager
def kernel_gateway_peer() -> Iterator[Peer]:
    python = kernel_gateway_python()
    folder = Path(tempfile.mkdtemp(prefix="bench-endpoints-"))
    cell = "# GET /ping\nimport json\nprint(json.dumps({'ok': True}))"
    notebook = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "ping", "metadata": {},
                   "outputs": [], "source": cell}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip
    (folder / "ping.ipynb").write_text(json.dumps(notebook))
    port = free_port()
    options = {
        "api": "kernel_gateway.notebook_http",
        "seed_uri": str(folder / "ping.ipynb"),
        "ip": "127.0.0.1",
        "port": str(port),
        "log_level": "WARN",
    }
    args = [f"--KernelGatewayApp.{k}={v}" for k, v in options.items()]
    env = os.environ | {"JUPYTER_RUNTIME_DIR": str(folder / "runtime")}
    command = [str(python), "-m", "kernel_gateway", *args]
    process = subprocess.Popen(command, cwd=folder, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_for(port, "/ping", {}, process)
        yield Peer("Kernel Gateway (notebook-http)", port, "/ping", note="1 kernel")
    finally:
        stop(process)
        shutil.rmtree(folder, ignore_errors=True)


# -- the load ----------------------------------------------------------------------------------


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response: its status and body (Content-Length or chunked)."""
    status = int((await reader.readline()).split()[1])
    length, chunked = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
        elif name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    body = b""
    while size := int((await reader.readline()).strip(), 16):
        body += await reader.readexactly(size)
        await reader.readline()
    await reader.readline()
    return status, body


async def client(peer: Peer, start: asyncio.Event, until: list[float], row: Row) -> None:
    lines = [f"GET {peer.path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in peer.headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", peer.port)
    except OSError as exc:
        row.errors += 1
        row.first_error = row.first_error or repr(exc)
        return
    await start.wait()
    try:
        while time.perf_counter() < until[0]:
            began = time.perf_counter()
            writer.write(request)
            status, body = await read_answer(reader)
            if status != 200 or json.loads(body) != BODY:
                row.errors += 1
                row.first_error = row.first_error or f"{status} {body[:200]!r}"
            elif until[1] <= began:  # after the warm-up
                row.took.append(time.perf_counter() - began)
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
        row.errors += 1
        row.first_error = row.first_error or repr(exc)
    finally:
        writer.close()


async def load(peer: Peer, clients: int, warm: float, seconds: float) -> Row:
    row, start = Row(), asyncio.Event()
    until = [0.0, 0.0]  # the end, and the end of the warm-up
    tasks = [asyncio.create_task(client(peer, start, until, row)) for _ in range(clients)]
    await asyncio.sleep(0.2)  # connected
    now = time.perf_counter()
    until[:] = [now + warm + seconds, now + warm]
    start.set()
    await asyncio.gather(*tasks)
    return row


def measure(peer: Peer, clients: int, warm: float, seconds: float) -> tuple[str, float]:
    progress(f"{peer.name}: {clients} clients")
    row = asyncio.run(load(peer, clients, warm, seconds))
    rate = len(row.took) / seconds
    p50 = percentile(row.took, 50) * 1000 if row.took else float("nan")
    p99 = percentile(row.took, 99) * 1000 if row.took else float("nan")
    errors = f"{row.errors}" + (f" ({row.first_error[:60]})" if row.errors else "")
    return f"| {peer.name} | {clients} | {rate:,.0f} | {p50:.2f} | {p99:.2f} | {errors} |", p50


PEERS = {
    "nbremote": nbremote_peer,
    "uvicorn-httptools": uvicorn_peer("httptools"),
    "uvicorn-h11": uvicorn_peer("h11"),
    "kernel-gateway": kernel_gateway_peer,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="of load per row")
    parser.add_argument("--clients", default="1,64,256", help="concurrent clients, comma-separated")
    parser.add_argument("--quick", action="store_true", help="0.3 s per row, 1 and 8 clients")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.clients = 0.3, "1,8"
    warm, prewarm = min(1.0, args.seconds), 0.5 if args.quick else 3.0
    rows, notes, p50s = [], [], {}
    for name, make in PEERS.items():
        try:
            with make() as peer:
                counts = [int(c) for c in args.clients.split(",")]
                progress(f"{peer.name}: warming up with {max(counts)} clients")
                asyncio.run(load(peer, max(counts), prewarm, 0.1))  # the pool grows meanwhile
                for clients in counts:
                    line, p50 = measure(peer, clients, warm, args.seconds)
                    rows.append(line)
                    p50s.setdefault(name, p50)
                notes.append(f"{peer.name}: {peer.note}")
        except Exception as exc:
            if name != "kernel-gateway":
                raise
            notes.append(f"Kernel Gateway could not be measured here: {exc}")
            rows.append("| Kernel Gateway (notebook-http) | - | - | - | - | not run |")
    fastest = min(p50s[name] for name in PEERS if name.startswith("uvicorn"))
    ratio = p50s["nbremote"] / fastest
    lines = [
        "## Web endpoints: a trivial JSON GET (bench/bench_endpoints.py)",
        "",
        f"- Machine: {machine()}; nbremote checkout {checkout()}; {args.seconds:g} s per row "
        f"after {warm:g} s of warm-up; the load from one asyncio process, a keep-alive "
        "connection per client",
        f"- 1 client p50: nbremote {ratio:.2f}x plain uvicorn's, its faster parser "
        "(target: within 1.5x)",
        f"- Peers: {'; '.join(notes)}",
        "",
        "| server | clients | requests/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---|",
        *rows,
    ]
    section = "\n".join(lines)
    print(section)
    if not args.quick:
        write_results(section, "bench_endpoints")


if __name__ == "__main__":
    main()
