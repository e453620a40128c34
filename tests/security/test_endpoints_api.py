"""What the endpoints' boundary checks, on a real runner: each endpoint's own bearer token (not
the runner's, not another endpoint's; the runner's API takes no endpoint token), a body over the
limit refused before it is read, the caller's token kept from the app, the app's response
headers checked (no header injection by a worker), request logs without tokens or queries."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import RunningRunner
from tests.integration.endpoints_helpers import (
    api,
    bearer,
    deploy,
    deployed_object,
    request,
    token_of,
)
from tests.security.test_api import headers_only

APPS = """
def hello(name: str = "world"):
    return {"hello": name}

def headers():
    async def app(scope, receive, send):
        await receive()
        seen = {k.decode(): v.decode() for k, v in scope["headers"]}
        body = __import__("json").dumps(seen).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
    return app

def injects():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-ok", b"1\\r\\nSet-Cookie: stolen=1")]})
        await send({"type": "http.response.body", "body": b"hi"})
    return app
"""


@pytest.fixture
def app(runner: RunningRunner) -> Iterator[str]:
    """An app with two token endpoints and two ASGI apps, stopped afterwards."""
    name = f"sec{uuid.uuid4().hex[:8]}"
    objects = [
        deployed_object(APPS, "hello", {"web": {"kind": "fastapi_endpoint"}}),
        deployed_object(APPS, "headers", {"web": {"kind": "asgi_app"}}),
        deployed_object(APPS, "injects", {"web": {"kind": "asgi_app"}}),
    ]
    status, answer = deploy(runner, name, objects)
    assert status == 201, answer
    yield name
    api(runner, "DELETE", f"/apps/{name}")


def test_missing_wrong_and_another_endpoints_token_are_401(runner: RunningRunner, app: str) -> None:
    path = f"/endpoints/{app}/hello"
    other = token_of(runner, f"{app}/headers")
    mine = token_of(runner, f"{app}/hello")
    for headers in [{}, bearer("wrong"), bearer(other), {"Authorization": mine}, bearer(mine[:-1])]:
        status, _, body = request(runner, "GET", path, None, headers)
        assert status == 401, headers
        assert json.loads(body)["error"]["type"] == "Unauthorized"
        assert mine.encode() not in body
    assert request(runner, "GET", path, None, bearer(mine))[0] == 200


def test_the_runner_token_is_no_endpoint_token_and_the_other_way_round(
    runner: RunningRunner, app: str
) -> None:
    assert runner.token is not None
    status, _, _ = request(runner, "GET", f"/endpoints/{app}/hello", None, bearer(runner.token))
    assert status == 401
    mine = token_of(runner, f"{app}/hello")
    for path in ["/api/v1/endpoints", f"/api/v1/endpoints/{app}/hello", "/api/v1/apps"]:
        assert request(runner, "GET", path, None, bearer(mine))[0] == 401, path


def test_a_body_over_16_mib_is_refused_before_it_is_read(runner: RunningRunner, app: str) -> None:
    mine = token_of(runner, f"{app}/hello")
    head = (
        f"POST /endpoints/{app}/hello HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {mine}\r\n"
        f"Content-Length: {(16 << 20) + 1}\r\n"
    )
    answer = headers_only(runner, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["type"] == "PayloadTooLarge"
    unauthenticated = head.replace(f"Bearer {mine}", "Bearer nope")
    assert headers_only(runner, unauthenticated).startswith(b"HTTP/1.1 401")


def test_the_callers_token_never_reaches_the_app(runner: RunningRunner, app: str) -> None:
    mine = token_of(runner, f"{app}/headers")
    status, _, body = request(
        runner, "GET", f"/endpoints/{app}/headers", None, {**bearer(mine), "X-Mine": "kept"}
    )
    seen = json.loads(body)
    assert status == 200 and seen["x-mine"] == "kept"
    assert "authorization" not in seen and mine not in body.decode()


def test_a_header_with_a_line_break_from_the_app_is_refused(
    runner: RunningRunner, app: str
) -> None:
    mine = token_of(runner, f"{app}/injects")
    status, headers, body = request(runner, "GET", f"/endpoints/{app}/injects", None, bearer(mine))
    assert status == 502 and "set-cookie" not in headers and "x-ok" not in headers
    assert json.loads(body)["error"]["type"] == "BadGateway"


def test_request_logs_hold_no_token_and_no_query(runner: RunningRunner, app: str) -> None:
    mine = token_of(runner, f"{app}/hello")
    request(runner, "GET", f"/endpoints/{app}/hello?name=secret-query", None, bearer(mine))
    request(runner, "GET", f"/endpoints/{app}/hello", None, bearer("wrong-token"))
    status, log = api(runner, "GET", f"/endpoints/{app}/hello/logs")
    assert status == 200
    lines = log.decode().splitlines()
    assert [line.split()[1:4] for line in lines] == [["GET", "/", "200"], ["GET", "/", "401"]]
    for secret in (mine, "secret-query", "wrong-token", runner.token or "-"):
        assert secret not in log.decode()
