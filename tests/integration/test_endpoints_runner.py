"""Web endpoints on a real runner: apps deployed through the REST API (functions pickled by
value, as `nbremote deploy` sends them), served at /endpoints/{name} by real workers, called
with plain HTTP: a FastAPI endpoint (query parameters, a pydantic body), an ASGI app with a
streamed response, a Flask app, errors, redeploys, stop, a restart, 256 callers at once."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningRunner, start_runner
from tests.integration.endpoints_helpers import (
    api,
    bearer,
    deploy,
    deployed_object,
    own_app,
    request,
    token_of,
)

FASTAPI = """
from pydantic import BaseModel

class Item(BaseModel):
    name: str
    count: int

def hello(name: str = "world", times: int = 1):
    return {"hello": name * times}

def add(item: Item):
    if item.count < 0:
        raise ValueError("count must not be negative")
    print("adding", item.name)
    return {"name": item.name, "double": item.count * 2}
"""

ASGI = """
def make():
    import asyncio, os
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int, q: str = ""):
        return {"item_id": item_id, "q": q}

    @app.post("/echo")
    async def echo(body: dict):
        return {"got": body}

    @app.get("/stream")
    async def stream(flag: str):
        async def events():
            yield "data: first\\n\\n"
            for _ in range(600):  # until the test has read the first event
                if os.path.exists(flag):
                    break
                await asyncio.sleep(0.05)
            yield "data: second\\n\\n"
        return StreamingResponse(events(), media_type="text/event-stream")

    return app
"""

FLASK = """
def make():
    from flask import Flask, request

    app = Flask("flasky")

    @app.get("/")
    def index():
        return {"flask": True, "q": request.args.get("q")}

    @app.post("/upper")
    def upper():
        return request.get_data().upper()

    @app.get("/boom")
    def boom():
        raise KeyError("no such thing")

    return app
"""


@pytest.fixture
def app(runner: RunningRunner) -> Iterator[str]:
    """An app name of this test's own; stopped afterwards (the runner is shared)."""
    yield from own_app(runner, "web")


def fastapi_app(runner: RunningRunner, app: str) -> None:
    objects = [
        deployed_object(FASTAPI, "hello", {"web": {"kind": "fastapi_endpoint"}}),
        deployed_object(FASTAPI, "add", {"web": {"kind": "fastapi_endpoint", "method": "POST"}}),
    ]
    status, answer = deploy(runner, app, objects)
    assert status in (200, 201), answer


def test_a_fastapi_endpoint_reads_query_parameters_and_a_pydantic_body(
    runner: RunningRunner, app: str
) -> None:
    fastapi_app(runner, app)
    get = bearer(token_of(runner, f"{app}/hello"))
    status, headers, body = request(
        runner, "GET", f"/endpoints/{app}/hello?name=ab&times=2", None, get
    )
    assert (status, json.loads(body)) == (200, {"hello": "abab"})
    assert headers["content-type"] == "application/json"

    post = bearer(token_of(runner, f"{app}/add"))
    status, _, body = request(
        runner, "POST", f"/endpoints/{app}/add", {"name": "x", "count": 2}, post
    )
    assert (status, json.loads(body)) == (200, {"name": "x", "double": 4})
    status, _, body = request(
        runner, "POST", f"/endpoints/{app}/add", {"name": "x", "count": "many"}, post
    )
    assert status == 422 and json.loads(body)["detail"][0]["loc"] == ["body", "count"]
    status, _, body = request(runner, "POST", f"/endpoints/{app}/add", b"{not json", post)
    assert status == 400 and json.loads(body)["error"]["type"] == "BadRequest"


def test_an_error_is_a_json_500_and_its_traceback_is_in_the_apps_log(
    runner: RunningRunner, app: str
) -> None:
    fastapi_app(runner, app)
    post = bearer(token_of(runner, f"{app}/add"))
    status, _, body = request(
        runner, "POST", f"/endpoints/{app}/add", {"name": "x", "count": -1}, post
    )
    assert status == 500
    assert json.loads(body) == {
        "error": {"type": "ValueError", "message": "count must not be negative"}
    }
    assert b"Traceback" not in body
    # The app's log is written as the worker's output comes, which may be after the answer.
    deadline = time.monotonic() + 10
    while True:
        _, log = api(runner, "GET", f"/apps/{app}/logs")
        if b"count must not be negative" in log or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert b"Traceback" in log and b"count must not be negative" in log
    _, requests_log = api(runner, "GET", f"/endpoints/{app}/add/logs")
    assert b" POST / 500 " in requests_log and post["Authorization"].encode() not in requests_log


def test_an_asgi_app_serves_its_routes_and_streams_chunks_as_they_come(
    runner: RunningRunner, app: str, tmp_path: Path
) -> None:
    status, answer = deploy(
        runner, app, [deployed_object(ASGI, "make", {"web": {"kind": "asgi_app"}})]
    )
    assert status == 201, answer
    auth = bearer(token_of(runner, f"{app}/make"))
    status, _, body = request(runner, "GET", f"/endpoints/{app}/make/items/7?q=z", None, auth)
    assert (status, json.loads(body)) == (200, {"item_id": 7, "q": "z"})
    status, _, body = request(runner, "POST", f"/endpoints/{app}/make/echo", {"a": [1]}, auth)
    assert (status, json.loads(body)) == (200, {"got": {"a": [1]}})

    flag = tmp_path / "first-read"
    url = urllib.parse.urlsplit(runner.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    query = urllib.parse.urlencode({"flag": str(flag)})
    connection.request("GET", f"/endpoints/{app}/make/stream?{query}", headers=auth)
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("content-type").startswith("text/event-stream")
    first = response.readline()  # arrives while the app still waits for the flag
    assert first == b"data: first\n"
    flag.touch()
    rest = response.read()
    assert rest == b"\ndata: second\n\n"
    connection.close()


def test_a_wsgi_app_is_served(runner: RunningRunner, app: str) -> None:
    status, answer = deploy(
        runner, app, [deployed_object(FLASK, "make", {"web": {"kind": "wsgi_app"}})]
    )
    assert status == 201, answer
    auth = bearer(token_of(runner, f"{app}/make"))
    status, _, body = request(runner, "GET", f"/endpoints/{app}/make?q=1", None, auth)
    assert (status, json.loads(body)) == (200, {"flask": True, "q": "1"})
    status, _, body = request(runner, "POST", f"/endpoints/{app}/make/upper", b"shout", auth)
    assert (status, body) == (200, b"SHOUT")
    status, _, body = request(runner, "GET", f"/endpoints/{app}/make/boom", None, auth)
    assert status == 500 and json.loads(body)["error"]["type"] == "KeyError"


def test_a_public_endpoint_needs_no_token(runner: RunningRunner, app: str) -> None:
    web = {"kind": "fastapi_endpoint", "requires_auth": False, "label": f"{app}-open"}
    deploy(runner, app, [deployed_object(FASTAPI, "hello", {"web": web})])
    status, _, body = request(runner, "GET", f"/endpoints/{app}-open?name=x")
    assert (status, json.loads(body)) == (200, {"hello": "x"})


def test_a_redeploy_keeps_the_token_and_a_stop_removes_the_endpoint(
    runner: RunningRunner, app: str
) -> None:
    fastapi_app(runner, app)
    token = token_of(runner, f"{app}/hello")
    fastapi_app(runner, app)
    assert token_of(runner, f"{app}/hello") == token
    status, _, _ = request(runner, "GET", f"/endpoints/{app}/hello", None, bearer(token))
    assert status == 200
    api(runner, "DELETE", f"/apps/{app}")
    status, _, body = request(runner, "GET", f"/endpoints/{app}/hello", None, bearer(token))
    assert status == 404 and json.loads(body)["error"]["type"] == "NotFound"
    assert api(runner, "GET", f"/endpoints/{app}/hello")[0] == 404


def test_a_redeploy_without_the_web_settings_removes_the_endpoint(
    runner: RunningRunner, app: str
) -> None:
    fastapi_app(runner, app)
    deploy(runner, app, [deployed_object(FASTAPI, "hello", {})])
    names = [e["name"] for e in api(runner, "GET", "/endpoints")[1]["endpoints"]]
    assert f"{app}/hello" not in names and f"{app}/add" not in names


def test_a_name_held_by_another_app_refuses_the_deploy(runner: RunningRunner, app: str) -> None:
    web = {"kind": "fastapi_endpoint", "label": f"{app}-shared"}
    deploy(runner, app, [deployed_object(FASTAPI, "hello", {"web": web})])
    other = f"{app}x"
    status, answer = deploy(runner, other, [deployed_object(FASTAPI, "hello", {"web": web})])
    assert status == 409 and app in answer["error"]["message"]
    assert api(runner, "GET", f"/apps/{other}")[0] == 404


WEB_SERVER = """
def serve():
    import http.server
    import threading

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = ("served " + self.path).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]
"""


def test_a_web_server_is_served(runner: RunningRunner, app: str) -> None:
    import socket

    with socket.socket() as sock:  # a port free now, for the server the function starts
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = WEB_SERVER.replace('("127.0.0.1", 0)', f'("127.0.0.1", {port})')
    web = {"kind": "web_server", "port": port}
    status, answer = deploy(runner, app, [deployed_object(source, "serve", {"web": web})])
    assert status in (200, 201), answer
    auth = bearer(token_of(runner, f"{app}/serve"))
    status, _, body = request(runner, "GET", f"/endpoints/{app}/serve/a/b?c=1", None, auth)
    assert (status, body) == (200, b"served /a/b?c=1")


def test_256_callers_at_once_all_get_their_answer(runner: RunningRunner, app: str) -> None:
    # 4 workers of 16 inputs, 64 waiting for each: room for all 256 (no 503).
    settings = {"web": {"kind": "fastapi_endpoint"}, "max_inputs": 16, "max_containers": 4}
    deploy(runner, app, [deployed_object(FASTAPI, "hello", settings)])
    auth = bearer(token_of(runner, f"{app}/hello"))

    def call(n: int) -> tuple[int, bytes]:
        status, _, body = request(runner, "GET", f"/endpoints/{app}/hello?name=n{n}", None, auth)
        return status, body

    with concurrent.futures.ThreadPoolExecutor(256) as pool:
        answers = list(pool.map(call, range(256)))
    assert answers == [
        (200, json.dumps({"hello": f"n{n}"}, separators=(",", ":")).encode()) for n in range(256)
    ]


def test_an_endpoint_answers_again_with_its_token_after_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "runner"
    first = start_runner(data_dir)
    try:
        fastapi_app(first, "kept")
        token = token_of(first, "kept/hello")
    finally:
        first.stop()
    second = start_runner(data_dir)
    try:
        status, _, body = request(
            second, "GET", "/endpoints/kept/hello?name=again", None, bearer(token)
        )
        assert (status, json.loads(body)) == (200, {"hello": "again"})
        assert token_of(second, "kept/hello") == token
    finally:
        second.stop()


def test_the_endpoint_is_named_in_rest_urls_either_way(runner: RunningRunner, app: str) -> None:
    fastapi_app(runner, app)
    encoded = api(runner, "GET", f"/endpoints/{app}%2Fhello")[1]
    two = api(runner, "GET", f"/endpoints/{app}/hello")[1]
    assert encoded == two and two["url"] == f"{runner.url}/endpoints/{app}/hello"
    listed = {e["name"]: e for e in api(runner, "GET", "/endpoints")[1]["endpoints"]}
    assert listed[f"{app}/hello"]["token"] is None and listed[f"{app}/add"]["method"] == "POST"
    assert api(runner, "DELETE", f"/endpoints/{app}%2Fhello")[0] == 204
    status, _, _ = request(runner, "GET", f"/endpoints/{app}/hello", None, bearer(two["token"]))
    assert status == 404
    assert api(runner, "GET", f"/apps/{app}")[0] == 200  # the app stays
