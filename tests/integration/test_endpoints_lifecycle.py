"""An endpoint's life around its requests, on a real runner: an ASGI app's lifespan (startup
before the first request, shutdown when its worker stops; skipped by an app without one; a
failed startup answered as a failed build is), ``min_containers`` workers started at deploy and
after a restart, and a request past its function's ``timeout`` answered 504 while its worker
goes on serving."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningRunner, start_runner
from tests.integration.endpoints_helpers import (
    api,
    deploy,
    deployed_object,
    get,
    own_app,
)

LIFESPAN = """
def make():
    import contextlib
    from fastapi import FastAPI, Request

    def note(word):
        with open(LOG, "a") as log:
            log.write(word + "\\n")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        note("startup")
        app.state.model = "loaded"
        yield {"session": "open"}
        note("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    def predict(request: Request):
        return {"model": request.app.state.model, "session": request.state.session}

    return app
"""

ON_EVENT = """
def make():
    from fastapi import FastAPI

    app = FastAPI()

    @app.on_event("startup")
    def load():
        with open(LOG, "a") as log:
            log.write("startup\\n")
        app.state.model = "loaded"

    @app.on_event("shutdown")
    def unload():
        with open(LOG, "a") as log:
            log.write("shutdown\\n")

    @app.get("/")
    def predict():
        return {"model": app.state.model, "session": "open"}

    return app
"""

FAILING = """
def make():
    import contextlib
    from fastapi import FastAPI

    @contextlib.asynccontextmanager
    async def lifespan(app):
        raise FileNotFoundError("the weights are not in /models")
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    def predict():
        return {"model": "never"}

    return app
"""

BARE = """
def make():
    async def app(scope, receive, send):
        assert scope["type"] == "http", "this app serves HTTP only"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"bare"})

    return app
"""

SLOW = """
import asyncio, os

async def slow(seconds: float, flag: str = ""):
    await asyncio.sleep(seconds)
    if flag:
        open(flag, "w").close()
    return {"worker": os.environ.get("NBREMOTE_TASK_ID", str(os.getpid()))}
"""

HELLO = """
def hello():
    return {"hello": "warm"}
"""


@pytest.fixture
def app(runner: RunningRunner) -> Iterator[str]:
    """An app name of this test's own; stopped afterwards (the runner is shared)."""
    yield from own_app(runner, "life")


def asgi(runner: RunningRunner, app: str, source: str, log: Path | None = None) -> None:
    source = source.replace("LOG", repr(str(log)))
    status, answer = deploy(
        runner, app, [deployed_object(source, "make", {"web": {"kind": "asgi_app"}})]
    )
    assert status == 201, answer


def workers(runner: RunningRunner, app: str, wanted: int) -> int:
    """The app's live workers, once there are ``wanted`` (or what there are after 60 s)."""
    deadline = time.monotonic() + 60
    while True:
        status, described = api(runner, "GET", f"/apps/{app}")
        assert status == 200, described
        if described["workers"] == wanted or time.monotonic() > deadline:
            count: int = described["workers"]
            return count
        time.sleep(0.2)


@pytest.mark.parametrize(
    "source",
    [LIFESPAN, ON_EVENT, LIFESPAN.replace("def make", "async def make")],
    ids=["lifespan", "on_event", "async_factory"],
)
def test_the_startup_runs_before_the_first_request_and_the_shutdown_when_the_worker_stops(
    runner: RunningRunner, app: str, tmp_path: Path, source: str
) -> None:
    log = tmp_path / "lifespan.log"
    asgi(runner, app, source, log)
    for _ in range(2):
        status, body = get(runner, f"{app}/make")
        assert (status, json.loads(body)) == (200, {"model": "loaded", "session": "open"})
    assert log.read_text().split() == ["startup"]
    assert api(runner, "DELETE", f"/apps/{app}")[0] == 204  # returns once its workers stopped
    assert log.read_text().split() == ["startup", "shutdown"]


def test_an_app_without_a_lifespan_is_served_without_one(runner: RunningRunner, app: str) -> None:
    asgi(runner, app, BARE)
    assert get(runner, f"{app}/make") == (200, b"bare")
    assert get(runner, f"{app}/make") == (200, b"bare")


def test_a_failed_startup_answers_500_with_its_error_and_logs_its_traceback(
    runner: RunningRunner, app: str
) -> None:
    asgi(runner, app, FAILING)
    error = {"type": "FileNotFoundError", "message": "the weights are not in /models"}
    for _ in range(2):  # each request tries the startup again, as a failed build is tried
        status, body = get(runner, f"{app}/make")
        assert (status, json.loads(body)) == (500, {"error": error})
    _, log = api(runner, "GET", f"/apps/{app}/logs")
    assert b"Traceback" in log and b"the weights are not in /models" in log


def test_min_containers_start_at_deploy_and_again_after_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "runner"
    settings = {"web": {"kind": "fastapi_endpoint"}, "min_containers": 1}
    first = start_runner(data_dir)
    try:
        assert deploy(first, "warm", [deployed_object(HELLO, "hello", settings)])[0] == 201
        assert workers(first, "warm", 1) == 1  # before any request
    finally:
        first.stop()
    second = start_runner(data_dir)
    try:
        assert workers(second, "warm", 1) == 1
        assert get(second, "warm/hello") == (200, b'{"hello":"warm"}')
        assert workers(second, "warm", 1) == 1  # the request took the warm one
    finally:
        second.stop()


def test_a_request_past_its_timeout_answers_504_and_the_worker_serves_the_next(
    runner: RunningRunner, app: str, tmp_path: Path
) -> None:
    settings = {"web": {"kind": "fastapi_endpoint"}, "timeout": 2, "max_containers": 1}
    assert deploy(runner, app, [deployed_object(SLOW, "slow", settings)])[0] == 201
    status, body = get(runner, f"{app}/slow", "?seconds=0")  # its worker builds the app
    assert status == 200, body
    worker = json.loads(body)["worker"]

    flag = tmp_path / "slept"
    status, body = get(
        runner, f"{app}/slow", "?" + urllib.parse.urlencode({"seconds": 10, "flag": str(flag)})
    )
    assert status == 504
    error = json.loads(body)["error"]
    assert error["type"] == "Timeout" and "timeout=2 s" in error["message"]

    # One worker taking one request at a time: had the slow request gone on, this one would
    # wait for it, and its flag would be there.
    assert get(runner, f"{app}/slow", "?seconds=0") == (200, body_of(worker))
    assert not flag.exists()
    _, requests_log = api(runner, "GET", f"/endpoints/{app}/slow/logs")
    assert b" GET / 504 " in requests_log


def body_of(worker: str) -> bytes:
    return json.dumps({"worker": worker}, separators=(",", ":")).encode()
