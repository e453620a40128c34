"""What the endpoints' fast path must keep: a sync endpoint of a one-request-at-a-time worker runs
on the worker's loop thread, yet may run an event loop of its own as in a pool thread; the
function's payload goes to a worker once, so a redeploy's new code, and a function the worker
cannot load, must still be answered right, every time."""

from __future__ import annotations

import base64
import importlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbremote.wire.serialize import dumps
from tests.conftest import RunningRunner
from tests.integration.endpoints_helpers import (
    deploy,
    deployed_object,
    get,
    own_app,
)

OWN_LOOP = """
import asyncio

async def twice(x):
    await asyncio.sleep(0)
    return 2 * x

def run(x: int = 1):
    return {"got": asyncio.run(twice(x))}
"""

VERSION = """
def which():
    return {"version": %d}
"""


@pytest.fixture
def app(runner: RunningRunner) -> Iterator[str]:
    """An app name of this test's own; stopped afterwards (the runner is shared)."""
    yield from own_app(runner, "fast")


def test_a_sync_endpoint_may_run_an_event_loop_of_its_own(runner: RunningRunner, app: str) -> None:
    web = {"web": {"kind": "fastapi_endpoint"}}
    assert deploy(runner, app, [deployed_object(OWN_LOOP, "run", web)])[0] in (200, 201)
    for x in (21, 5):  # the second on the warm worker, as the first
        assert get(runner, f"{app}/run", f"?x={x}") == (200, b'{"got":%d}' % (2 * x))


def test_a_redeploy_is_answered_with_the_new_code(runner: RunningRunner, app: str) -> None:
    web = {"web": {"kind": "fastapi_endpoint"}}
    for version in (1, 2):
        objects = [deployed_object(VERSION % version, "which", web)]
        assert deploy(runner, app, objects)[0] in (200, 201)
        for _ in range(2):
            assert get(runner, f"{app}/which") == (200, b'{"version":%d}' % version)


def test_a_function_its_worker_cannot_load_is_a_500_every_time(
    runner: RunningRunner, app: str, tmp_path: Path
) -> None:
    # Pickled by reference to a module only this test process has: the worker cannot import it.
    module = f"nbremote_absent_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text("def lost():\n    return {}\n")
    sys.path.insert(0, str(tmp_path))
    try:
        payload = dumps("lost", importlib.import_module(module).lost)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(module, None)
    obj = {
        "name": "lost",
        "kind": "function",
        "settings": {"web": {"kind": "fastapi_endpoint"}},
        "payload": base64.b64encode(b"".join(payload.parts)).decode(),
        "sizes": [part.nbytes for part in payload.parts],
        "hash": payload.hash,
    }
    assert deploy(runner, app, [obj])[0] in (200, 201)
    for _ in range(2):  # the second: the worker was sent the payload, but does not hold it
        status, body = get(runner, f"{app}/lost")
        assert status == 500 and module.encode() in body
