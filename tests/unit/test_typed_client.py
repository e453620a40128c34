"""The client sends and reads the wire models: `RunnerClient.call` and every use of it.

A runner of another version answers documents the client's models do not describe; the client
must say so, naming the field, rather than fail later with a KeyError, unless all that is new is
an added field (backward compatible: it is dropped). Requests stay strict: a misspelt field is
refused, named, before it leaves (and by the runner, which reads the same models). And no module
of the client may go back to reading the runner's answers by string keys: an AST scan of
``nbremote/`` finds any JSON call made without a model.
"""

from __future__ import annotations

import ast
import json
import socket
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from nbremote._client import RunnerClient, build
from nbremote.errors import RunnerError, RunnerUnavailable
from nbremote.wire.http import (
    CreateVolume,
    DescribeSecret,
    DescribeVolume,
    Health,
    ListVolumesResponse,
)

PACKAGE = Path(__file__).resolve().parents[2] / "nbremote"
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


class _Answers(BaseHTTPRequestHandler):
    """Answers every request with the server's ``answer`` and records what it was sent."""

    def _answer(self) -> None:
        server: Any = self.server
        length = int(self.headers.get("Content-Length") or 0)
        server.received.append((self.command, self.path, self.rfile.read(length)))
        status, body = server.answer
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads what was received instead."""


@pytest.fixture
def fake() -> Iterator[Any]:
    """A runner stand-in on 127.0.0.1 that answers what the test sets in ``fake.answer``."""
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    server.received, server.answer = [], (200, b"{}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _client(fake: Any) -> RunnerClient:
    return RunnerClient(f"http://127.0.0.1:{fake.server_address[1]}", None)


VOLUME = {
    "name": "data",
    "created_at": 1.0,
    "modified_at": 2.0,
    "version": 3,
    "files": 4,
    "size": 5,
}


def test_a_call_sends_the_model_as_json_and_reads_the_answer_as_a_model(fake: Any) -> None:
    fake.answer = (201, json.dumps(VOLUME).encode())
    with _client(fake) as client:
        body = CreateVolume(name="data", exist_ok=True)
        described = client.call("POST", "/api/v1/volumes", body, response=DescribeVolume)
    assert described == DescribeVolume(**VOLUME)
    assert fake.received == [("POST", "/api/v1/volumes", b'{"name": "data", "exist_ok": true}')]


def test_a_call_without_a_response_model_answers_none(fake: Any) -> None:
    fake.answer = (204, b"")
    with _client(fake) as client:
        assert client.call("DELETE", "/api/v1/volumes/data") is None


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({k: v for k, v in VOLUME.items() if k != "version"}, "version: Field required"),
        ({**VOLUME, "size": "big"}, "size: Input should be a valid integer"),
        ({**VOLUME, "files": None}, "files: Input should be a valid integer"),
    ],
)
def test_an_answer_of_another_version_is_refused_naming_the_field(
    fake: Any, document: dict[str, Any], field: str
) -> None:
    fake.answer = (200, json.dumps(document).encode())
    with _client(fake) as client, pytest.raises(RunnerError) as refused:
        client.call("GET", "/api/v1/volumes/data", response=DescribeVolume)
    assert refused.value.kind == "UnexpectedAnswer"
    assert "answered GET /api/v1/volumes/data" in refused.value.message
    assert f"not a DescribeVolume ({field}" in refused.value.message
    assert "same version on both sides" in refused.value.message


def test_an_added_field_is_tolerated_at_any_depth(fake: Any) -> None:
    """A newer runner's answer with fields this client does not know reads as before."""
    document = {"volumes": [{**VOLUME, "owner": "ana", "tags": {"a": 1}}], "next_page": "x"}
    fake.answer = (200, json.dumps(document).encode())
    with _client(fake) as client:
        listed = client.call("GET", "/api/v1/volumes", response=ListVolumesResponse)
    assert listed == ListVolumesResponse(volumes=[DescribeVolume(**VOLUME)])


def test_a_request_with_a_misspelt_field_is_still_refused_naming_it() -> None:
    with pytest.raises(RunnerError) as refused:
        build(CreateVolume, name="data", exsit_ok=True)
    assert refused.value.kind == "ValidationError"
    assert refused.value.message == "exsit_ok: Extra inputs are not permitted"
    # The models themselves stay strict: the runner reads requests with them.
    with pytest.raises(ValidationError, match="owner"):
        DescribeVolume.model_validate({**VOLUME, "owner": "ana"})


def test_an_answer_that_is_not_json_is_refused_too(fake: Any) -> None:
    fake.answer = (200, b"<html>a proxy's page</html>")
    with _client(fake) as client, pytest.raises(RunnerError, match="not a Health"):
        client.call("GET", "/api/v1/health", response=Health)


def test_an_error_answer_is_still_the_runners_error(fake: Any) -> None:
    error = {"error": {"type": "NotFound", "message": "no secret 'api'"}}
    fake.answer = (404, json.dumps(error).encode())
    with _client(fake) as client, pytest.raises(RunnerError) as refused:
        client.call("GET", "/api/v1/secrets/api", response=DescribeSecret)
    assert (refused.value.kind, refused.value.message) == ("NotFound", "no secret 'api'")


def test_a_body_that_does_not_fit_is_refused_as_the_runner_words_it() -> None:
    with pytest.raises(RunnerError) as refused:
        build(CreateVolume, name="no/slashes")
    assert refused.value.kind == "ValidationError"
    assert refused.value.message.startswith("name: String should match pattern")


# -- a runner that moved -------------------------------------------------------------------------


@pytest.fixture
def dying() -> Iterator[str]:
    """The URL of a runner being killed: its listener still takes a connection, which is then
    reset (a killed process's queued connections are reset as its listener closes)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def reset_each() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed by the test
            conn.recv(1 << 16)  # the request arrived; no runner will answer it
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # with linger 0: a reset

    threading.Thread(target=reset_each, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_a_reset_from_a_runner_that_restarted_elsewhere_goes_to_the_new_one(
    dying: str, fake: Any
) -> None:
    client = RunnerClient(dying, None)
    client.find_runner = lambda: (f"http://127.0.0.1:{fake.server_address[1]}", None)
    fake.answer = (200, b'{"ok": true}')
    assert client.request("GET", "/api/v1/sessions/s1") == {"ok": True}
    assert [(method, path) for method, path, _ in fake.received] == [("GET", "/api/v1/sessions/s1")]


def test_a_reset_where_no_runner_moved_is_still_unreachable(dying: str) -> None:
    client = RunnerClient(dying, None)
    client.find_runner = lambda: (dying, None)  # the same runner: nothing to move to
    with pytest.raises(RunnerUnavailable, match="cannot reach the runner"):
        client.request("GET", "/api/v1/health")


# -- every JSON call of the client goes through a model ------------------------------------------


def _json_calls(tree: ast.AST) -> Iterator[tuple[ast.Call, str]]:
    """Calls ``x.request(METHOD, ...)`` and ``x.call(METHOD, ...)`` with a literal HTTP method."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        first = node.args[0] if node.args else None
        if isinstance(first, ast.Constant) and first.value in METHODS:
            yield node, node.func.attr


def _client_modules() -> list[Path]:
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_client.py" and "wire" not in path.relative_to(PACKAGE).parts
    ]


def test_the_scan_sees_the_client_calls() -> None:
    calls = [
        attr for path in _client_modules() for _, attr in _json_calls(ast.parse(path.read_text()))
    ]
    assert calls.count("call") >= 20  # the scan below looks at something


@pytest.mark.parametrize("path", _client_modules(), ids=lambda path: path.name)
def test_every_json_call_reads_its_answer_with_a_model(path: Path) -> None:
    untyped = []
    for node, attr in _json_calls(ast.parse(path.read_text())):
        method = node.args[0].value  # type: ignore[attr-defined]
        typed = attr == "call" and (
            method == "DELETE" or any(k.arg == "response" for k in node.keywords)
        )
        if not typed:
            untyped.append(f"line {node.lineno}: .{attr}({method!r}, ...)")
    assert not untyped, (
        f"{path.relative_to(PACKAGE.parent)} calls the runner without a model: "
        f"{untyped}; use client.call(method, path, body, response=Model)"
    )


# -- against a real runner: each resource's answer is its model, and --json stays the same -------


def test_each_resource_answers_its_model_and_dumps_back_to_the_same_json(
    fresh_runner: Any,
) -> None:
    from nbremote.wire import http
    from nbremote.wire.images import ListImagesResponse

    with fresh_runner.client() as client:
        client.call("POST", "/api/v1/sessions", http.CreateSession(id="s1", notebook="a.ipynb"))
        client.call("POST", "/api/v1/volumes", http.CreateVolume(name="data"))
        client.call("PUT", "/api/v1/secrets/api", http.SetSecret(values={"KEY": "v"}))
        resources = {
            "health": http.Health,
            "runner": http.DescribeRunner,
            "sessions": http.ListSessionsResponse,
            "sessions/s1": http.DescribeSession,
            "gpus": http.ListGpusResponse,
            "apps": http.ListAppsResponse,
            "images": ListImagesResponse,
            "volumes": http.ListVolumesResponse,
            "volumes/data": http.DescribeVolume,
            "volumes/data/files?path=/": http.ListVolumeFilesResponse,
            "secrets": http.ListSecretsResponse,
            "secrets/api": http.DescribeSecret,
        }
        for path, model in resources.items():
            raw = client.request("GET", f"/api/v1/{path}")
            typed = client.call("GET", f"/api/v1/{path}", response=model)
            assert isinstance(typed, model)
            # What `--json` prints: the model's dump, byte for byte the runner's document.
            dumped = json.dumps(typed.model_dump(mode="json"), indent=2)
            assert dumped == json.dumps(raw, indent=2), path
