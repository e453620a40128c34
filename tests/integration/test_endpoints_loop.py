"""What a worker whose event loop reads the runner's socket itself must keep: an endpoint may use
a Dict (its answer comes on that socket) from the loop, from a pool thread, and while other
requests arrive; an ``asgi_app`` may be an async factory, awaited on that loop."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import RunningRunner
from tests.integration.endpoints_helpers import (
    bearer,
    deploy,
    deployed_object,
    get,
    own_app,
    request,
    token_of,
)

COUNTER = """
import nbremote

def count(name: str):
    tally = nbremote.Dict.from_name(name, create_if_missing=True)
    tally[name] = tally.get(name, 0) + 1
    return {"count": tally[name]}
"""

ASYNC_COUNTER = """
import asyncio
import nbremote

async def add(key: str):
    tally = nbremote.Dict.from_name("loop-" + key[:8], create_if_missing=True)
    tally[key] = 1
    await asyncio.sleep(0.01)
    return {"key": key, "seen": tally.get(key)}
"""

FACTORY = """
async def make():
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/")
    def root():
        return {"made": "async"}

    return app
"""


@pytest.fixture
def app(runner: RunningRunner) -> Iterator[str]:
    """An app name of this test's own; stopped afterwards (the runner is shared)."""
    yield from own_app(runner, "loop")


@pytest.mark.parametrize("max_inputs", [1, 4])  # on the loop's thread; in FastAPI's pool
def test_an_endpoint_counts_in_a_dict(runner: RunningRunner, app: str, max_inputs: int) -> None:
    web = {"web": {"kind": "fastapi_endpoint"}, "max_inputs": max_inputs}
    assert deploy(runner, app, [deployed_object(COUNTER, "count", web)])[0] in (200, 201)
    for n in (1, 2, 3):
        assert get(runner, f"{app}/count", f"?name={app}") == (200, b'{"count":%d}' % n)


def test_concurrent_requests_each_get_their_own_dict_answer(
    runner: RunningRunner, app: str
) -> None:
    web = {"web": {"kind": "fastapi_endpoint"}, "max_inputs": 8, "max_containers": 1}
    assert deploy(runner, app, [deployed_object(ASYNC_COUNTER, "add", web)])[0] in (200, 201)
    token = token_of(runner, f"{app}/add")
    keys = [uuid.uuid4().hex for _ in range(24)]

    def one(key: str) -> tuple[int, bytes]:
        status, _, body = request(
            runner, "GET", f"/endpoints/{app}/add?key={key}", None, bearer(token), 30
        )
        return status, body

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(one, keys))
    assert answers == [(200, b'{"key":"%s","seen":1}' % key.encode()) for key in keys]


def test_an_async_app_factory_is_served(runner: RunningRunner, app: str) -> None:
    web = {"web": {"kind": "asgi_app"}}
    assert deploy(runner, app, [deployed_object(FACTORY, "make", web)])[0] in (200, 201)
    for _ in range(2):
        assert get(runner, f"{app}/make") == (200, b'{"made":"async"}')
