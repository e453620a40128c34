"""The runner's HTTP API, tried as an attacker would: hashes used as paths, bodies before auth,
races and odd specs that used to answer 500 or leave a worker that could not be stopped."""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import http.client
import json
import shutil
import socket
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbremote as nr
from nbremote._session import RemoteSession
from tests.conftest import RunningRunner

MiB = 1 << 20
MOUNT = "/nbremote-test-data"  # made inside the worker's sandbox, never on the host
RUNNERS = "the runner's token"


def call(
    runner: RunningRunner,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = RUNNERS,
) -> tuple[int, Any]:
    """One request on a connection of its own: the status and the decoded JSON answer."""
    where = urlsplit(runner.url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {runner.token if token == RUNNERS else token}"
    try:
        payload = body if isinstance(body, bytes) else None if body is None else json.dumps(body)
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, data
    finally:
        conn.close()


def headers_only(runner: RunningRunner, head: str, timeout: float = 15) -> bytes:
    """Send a request's head claiming a body that never comes; what the runner answers."""
    where = urlsplit(runner.url)
    assert where.hostname is not None and where.port is not None
    with socket.create_connection((where.hostname, where.port), timeout=timeout) as sock:
        sock.sendall(head.encode() + b"\r\n")
        try:
            return sock.recv(65536)
        except TimeoutError:
            return b"(no answer: the runner waited for the body)"


@pytest.fixture
def volume(runner: RunningRunner) -> Iterator[str]:
    name = f"sec-{uuid.uuid4().hex[:12]}"
    assert call(runner, "POST", "/api/v1/volumes", {"name": name})[0] == 201
    yield name
    call(runner, "DELETE", f"/api/v1/volumes/{name}")


CONTENT = b"planted by a test"
SHA = hashlib.sha256(CONTENT).hexdigest()


def _image(files: dict[str, str]) -> dict[str, Any]:
    """An image whose add_local_dir step copies ``files`` (the content of SHA is sent along)."""
    local_dir = {
        "kind": "add_local_dir",
        "options": {"local_path": "data", "remote_path": "data"},
        "files": files,
    }
    steps = [{"kind": "debian_slim"}, local_dir]
    return {"steps": steps, "files": {SHA: base64.b64encode(CONTENT).decode()}}


# -- hashes that would be paths --------------------------------------------------------------


def test_a_commit_cannot_name_a_runner_file_as_a_blob(runner: RunningRunner, volume: str) -> None:
    call(runner, "PUT", "/api/v1/secrets/sec-api", {"values": {"API_KEY": "hunter2"}})
    secrets = runner.data_dir / "secrets.json"
    assert secrets.is_file()
    depth = "../" * 12
    for stolen in (str(secrets), "/etc/passwd", f"{depth}etc/passwd", "../" + "0" * 30):
        status, body = call(
            runner, "POST", f"/api/v1/volumes/{volume}/versions", {"put": {"s.json": stolen}}
        )
        assert status == 422, (stolen, status, body)
        assert body["error"]["message"].startswith("put.s.json:"), body
        status, body = call(runner, "GET", f"/api/v1/volumes/{volume}/files/s.json")
        assert status == 404 and b"hunter2" not in json.dumps(body).encode()


def test_an_over_long_blob_hash_is_a_422_not_a_500(runner: RunningRunner, volume: str) -> None:
    for digest in ("0" * 300, "a" * 5000, "0" * 31, "A" * 32):
        status, body = call(
            runner, "POST", f"/api/v1/volumes/{volume}/versions", {"put": {"f": digest}}
        )
        assert status == 422, (digest[:40], status, body)
        assert "put.f" in body["error"]["message"]
    status, body = call(runner, "POST", "/api/v1/images", _image({"f": "0" * 300}))
    assert status == 422 and "steps.1.files.f" in body["error"]["message"], (status, body)


@pytest.mark.parametrize(
    "files",
    [
        {"passwd": "../" * 12 + "etc/passwd"},
        {"passwd": "/etc/passwd"},
        {"../../../../escape.txt": SHA},
        {"/tmp/escape.txt": SHA},
    ],
)
def test_an_image_step_cannot_copy_or_write_runner_files(
    runner: RunningRunner, files: dict[str, str]
) -> None:
    status, body = call(runner, "POST", "/api/v1/images", _image(files))
    assert status == 422, (status, body)
    assert body["error"]["message"].startswith("steps.1.files"), body


# -- bodies before auth ------------------------------------------------------------------------


def test_an_unauthenticated_body_is_refused_before_it_is_read(runner: RunningRunner) -> None:
    for path, status in [
        ("/api/v1/sessions", b"401"),
        ("/api/v1/volumes/x/versions", b"401"),
        ("/api/v1/no-such-route", b"401"),  # nothing said about what exists
    ]:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {100 * MiB}\r\n"
        answer = headers_only(runner, head)
        assert answer.startswith(b"HTTP/1.1 " + status), (path, answer[:200])
    head = f"POST /api/v1/volumes/x/blobs HTTP/1.1\r\nHost: x\r\nContent-Length: {1 << 39}\r\n"
    assert headers_only(runner, head).startswith(b"HTTP/1.1 401")


def test_an_oversized_body_gets_a_413_before_it_is_read(runner: RunningRunner) -> None:
    head = (
        f"POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {runner.token}\r\n"
        f"Content-Length: {129 * MiB}\r\n"
    )
    answer = headers_only(runner, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["type"] == "PayloadTooLarge" and "128 MiB" in body["error"]["message"]


def test_json_bodies_under_the_limit_and_big_uploads_still_work(
    runner: RunningRunner, volume: str
) -> None:
    status, body = call(runner, "POST", "/api/v1/sessions", {"id": "sec-" + "x" * 20})
    assert status in (200, 201), body
    data = b"\0" * (129 * MiB)  # over the JSON limit: the streamed upload route has its own
    status, blob = call(runner, "POST", f"/api/v1/volumes/{volume}/blobs", data)
    assert status == 201 and blob["size"] == len(data), blob
    status, _ = call(
        runner, "POST", f"/api/v1/volumes/{volume}/versions", {"put": {"big": blob["hash"]}}
    )
    assert status == 201


# -- smaller ones --------------------------------------------------------------------------------


def test_prune_during_registrations_never_fails(runner: RunningRunner) -> None:
    tag = uuid.uuid4().hex[:8]

    def register(i: int) -> int:
        steps = [{"kind": "debian_slim"}, {"kind": "env", "options": {"N": f"{tag}-{i}"}}]
        return call(runner, "POST", "/api/v1/images", {"steps": steps})[0]

    def prune(_: int) -> int:
        return call(runner, "POST", "/api/v1/images/prune", {"older_than_s": 1e9})[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        registered = pool.map(register, range(150))
        pruned = pool.map(prune, range(150))
        statuses = [*registered, *pruned]
    assert all(status < 500 for status in statuses), sorted(set(statuses))


@pytest.mark.parametrize(
    "steps",
    [
        [{"kind": "pip_install", "args": ["six"]}],
        [{"kind": "env", "options": {"A": "1"}}],
        [{"kind": "debian_slim"}, {"kind": "debian_slim"}],
    ],
)
def test_an_image_without_one_base_step_first_is_refused(
    runner: RunningRunner, steps: list[dict[str, Any]]
) -> None:
    status, body = call(runner, "POST", "/api/v1/images", {"steps": steps})
    assert status == 422, (status, body)
    assert body["error"]["message"].startswith("steps"), body


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_a_worker_holding_a_refused_link_can_still_be_stopped(
    shell: InteractiveShell, runner: RunningRunner, remote_session: RemoteSession
) -> None:
    with nr.Volume.ephemeral() as vol:
        cell = f"--volume {vol.name}:{MOUNT}"
        code = (
            "import os\n"
            f"open('{MOUNT}/kept.txt', 'w').write('kept')\n"
            f"os.symlink('/etc/passwd', '{MOUNT}/passwd')\n"
        )
        shell.run_cell_magic("remote", cell, code)
        shell.run_line_magic("remote", "reset")  # used to answer 500, the worker left running
        status, body = call(runner, "GET", f"/api/v1/sessions/{remote_session.id}")
        assert status == 200 and body["workers"] == []
        status, body = call(runner, "GET", f"/api/v1/volumes/{vol.name}/files")
        assert status == 200
        assert [entry["path"] for entry in body["entries"]] == ["kept.txt"]


def test_a_method_a_route_does_not_have_is_405_with_allow(runner: RunningRunner) -> None:
    where = urlsplit(runner.url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    try:
        conn.request(
            "PATCH", "/api/v1/sessions", headers={"Authorization": f"Bearer {runner.token}"}
        )
        response = conn.getresponse()
        body = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 405 and response.getheader("Allow") == "GET, POST"
    assert body["error"]["type"] == "Method Not Allowed"
