"""Classes, web endpoints and scheduled jobs on the ray backend, unchanged from the process
backend: a class keeps its state in its actor's worker, a deployed endpoint answers from a Ray
node, and a promoted cell fires on its schedule there (each says the node it ran on)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

import nbremote as nr
from nbremote import _session
from tests.conftest import RunningRunner
from tests.integration import endpoints_helpers as web
from tests.integration import jobs_helpers as jobs

app = nr.App("ray-apps")

NODE = """
def where():
    import os
    return {"node": os.environ["NBREMOTE_RAY_NODE_ID"]}
"""


@app.cls(max_containers=1)
class Counter:
    @nr.enter()
    def start(self) -> None:
        self.count = 0

    @nr.method()
    def add(self, n: int) -> tuple[int, str]:
        import os

        self.count += n
        return self.count, os.environ["NBREMOTE_RAY_NODE_ID"]


def test_a_class_keeps_its_state_in_its_actors_worker(
    ray_session: _session.RemoteSession,
) -> None:
    counter = Counter()
    first, node = counter.add.remote(2)
    again, same = counter.add.remote(3)
    assert (first, again) == (2, 5) and node == same and len(node) == 56


@pytest.fixture
def web_app(ray_runner: RunningRunner) -> Iterator[str]:
    yield from web.own_app(ray_runner, "rayweb")


def test_a_deployed_endpoint_answers_from_a_ray_node(
    ray_runner: RunningRunner, web_app: str
) -> None:
    where = web.deployed_object(NODE, "where", {"web": {"kind": "fastapi_endpoint"}})
    status, answer = web.deploy(ray_runner, web_app, [where])
    assert status in (200, 201), answer
    status, body = web.get(ray_runner, f"{web_app}/where")
    assert status == 200 and len(json.loads(body)["node"]) == 56


@pytest.fixture
def job(ray_runner: RunningRunner) -> Iterator[str]:
    name = f"ray-{uuid.uuid4().hex[:8]}"
    yield name
    if name in [j["name"] for j in jobs.api(ray_runner, "GET", "/jobs")["jobs"]]:
        jobs.api(ray_runner, "DELETE", f"/jobs/{name}")


def test_a_promoted_cell_fires_on_its_schedule_on_a_ray_node(
    ray_runner: RunningRunner, job: str
) -> None:
    code = "import os\ny = x * 2\nnode = os.environ['NBREMOTE_RAY_NODE_ID']"
    with jobs.channel_of(ray_runner) as channel:
        schedule = {"name": job, "schedule": jobs.period(1)}
        done, _ = jobs.promote(channel, code, {"x": 21}, schedule, ["y", "node"])
    assert done["ok"] is True, done
    ran = jobs.finished(ray_runner, job, 1)
    assert ran[0]["status"] == "succeeded", ran
    got = jobs.outputs(ray_runner, job, ran[0]["number"])
    assert got["y"] == 42 and len(got["node"]) == 56
