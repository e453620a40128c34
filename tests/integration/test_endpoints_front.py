"""The endpoints' lean HTTP front (`endpoint_http`) as HTTP/1.1 clients use it, on raw sockets:
one connection mixing endpoint and API requests (either first), pipelined requests answered in
order, ``Expect: 100-continue``, a chunked request body, HTTP/1.0, an unparsable request."""

from __future__ import annotations

import json
import socket
import urllib.parse
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import RunningRunner
from tests.integration.endpoints_helpers import api, deploy, deployed_object, token_of

SOURCE = """
def echo(name: str = "you"):
    return {"hello": name}

def count(items: list[int]):
    return {"n": len(items)}
"""


@pytest.fixture
def app(runner: RunningRunner) -> Iterator[str]:
    name = f"front{uuid.uuid4().hex[:8]}"
    objects = [
        deployed_object(SOURCE, "echo", {"web": {"kind": "fastapi_endpoint"}}),
        deployed_object(SOURCE, "count", {"web": {"kind": "fastapi_endpoint", "method": "POST"}}),
    ]
    status, answer = deploy(runner, name, objects)
    assert status in (200, 201), answer
    yield name
    api(runner, "DELETE", f"/apps/{name}")


class Connection:
    """One raw HTTP/1.1 connection to the runner, answers read by hand."""

    def __init__(self, runner: RunningRunner) -> None:
        url = urllib.parse.urlsplit(runner.url)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=60)
        self.file = self.sock.makefile("rb")

    def send(self, *requests: bytes) -> None:
        self.sock.sendall(b"".join(requests))

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        """The next answer: status, headers (lower-case names), body."""
        status = int(self.file.readline().split()[1])
        headers: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = self.file.read(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self.file.readline().strip(), 16):
                body += self.file.read(size)
                self.file.readline()
            self.file.readline()
        else:
            body = self.file.read()  # to the end of the connection
        return status, headers, body

    def closed(self) -> bool:
        return self.file.read(1) == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def connection(runner: RunningRunner) -> Iterator[Connection]:
    opened = Connection(runner)
    yield opened
    opened.close()


def get(path: str, token: str, version: str = "1.1") -> bytes:
    return f"GET {path} HTTP/{version}\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()


def test_one_connection_mixes_endpoint_and_api_requests_either_way(
    runner: RunningRunner, app: str
) -> None:
    token = token_of(runner, f"{app}/echo")
    for first_the_api in (False, True):
        connection = Connection(runner)
        try:
            api_request = get("/api/v1/health", str(runner.token))
            requests = [get(f"/endpoints/{app}/echo?name=a", token), api_request]
            for request in reversed(requests) if first_the_api else requests:
                connection.send(request)
                status, _, body = connection.answer()
                assert status == 200, body
                assert b"hello" in body or b"version" in body
            connection.send(get(f"/endpoints/{app}/echo?name=b", token))
            assert connection.answer()[2] == b'{"hello":"b"}'
        finally:
            connection.close()


def test_pipelined_requests_are_answered_in_their_order(
    runner: RunningRunner, app: str, connection: Connection
) -> None:
    token = token_of(runner, f"{app}/echo")
    connection.send(*(get(f"/endpoints/{app}/echo?name=n{i}", token) for i in range(5)))
    bodies = [json.loads(connection.answer()[2])["hello"] for _ in range(5)]
    assert bodies == [f"n{i}" for i in range(5)]


def test_a_post_waits_for_100_continue_and_may_send_its_body_in_chunks(
    runner: RunningRunner, app: str, connection: Connection
) -> None:
    token = token_of(runner, f"{app}/count")
    head = (
        f"POST /endpoints/{app}/count HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        "Expect: 100-continue\r\n\r\n"
    ).encode()
    connection.send(head)
    assert connection.file.readline() == b"HTTP/1.1 100 Continue\r\n"
    assert connection.file.readline() == b"\r\n"
    body = json.dumps({"items": list(range(1000))}).encode()
    halves = body[:100], body[100:]
    connection.send(*(b"%x\r\n%b\r\n" % (len(half), half) for half in halves), b"0\r\n\r\n")
    status, _, answer = connection.answer()
    assert (status, json.loads(answer)) == (200, {"n": 1000})


def test_an_http_1_0_caller_gets_its_answer_and_the_connection_closes(
    runner: RunningRunner, app: str, connection: Connection
) -> None:
    connection.send(get(f"/endpoints/{app}/echo", token_of(runner, f"{app}/echo"), "1.0"))
    status, headers, body = connection.answer()
    assert (status, body) == (200, b'{"hello":"you"}')
    assert headers["connection"] == "close"
    assert connection.closed()


def test_a_refused_request_is_answered_and_its_connection_closed(
    runner: RunningRunner, app: str, connection: Connection
) -> None:
    connection.send(get(f"/endpoints/{app}/echo", "not-the-token"))
    status, _, body = connection.answer()
    assert status == 401 and json.loads(body)["error"]["type"] == "Unauthorized"
    assert connection.closed()


def test_a_request_that_cannot_be_parsed_is_a_400(
    runner: RunningRunner, app: str, connection: Connection
) -> None:
    token = token_of(runner, f"{app}/echo")
    connection.send(get(f"/endpoints/{app}/echo", token))
    assert connection.answer()[0] == 200
    connection.send(b"GET /endpoints/x HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
    status, _, body = connection.answer()
    assert status == 400 and json.loads(body)["error"]["type"] == "Bad Request"
    assert connection.closed()
