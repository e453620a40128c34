"""Web endpoints on ``@app.cls`` methods, against a real runner: a class whose ``@nr.enter()``
loads a "model" once per worker, served as a POST endpoint, a labelled GET one and an ASGI app
from the class's own warm worker; tokens as for functions (401 without, or with another
endpoint's), kept by a redeploy; stopping the app ends them; ``Model().predict.get_web_url()``;
a restart keeps them; a web decorator on the class itself refused by the runner."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nbremote as nr
from nbremote import _deploy, _session
from nbremote.errors import RunnerError
from tests.conftest import RunningRunner, start_runner
from tests.integration.endpoints_helpers import api, deploy, deployed_object

TIMEOUT = 120  # seconds: the first request of an endpoint starts its worker
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def http(url: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    """POST with a JSON body, else GET: the status and the JSON answer."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    try:
        with OPENER.open(urllib.request.Request(url, data, headers), timeout=TIMEOUT) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        text = error.read()
        return error.code, json.loads(text) if text else None


def model_app(name: str, scale: int) -> tuple[nr.App, nr.Cls]:
    """An app with a class ``Model`` whose methods are endpoints: ``predict`` (POST), ``info``
    (GET, labelled ``{name}-info``), ``ready`` (an ``async def``, ``{name}-async``) and ``api``
    (an ASGI app, ``{name}-api``).
    Each answer says how many times ``@nr.enter()`` ran in its worker, and which worker."""
    app = nr.App(name)

    class Model:
        size: int = nr.parameter(default=scale)
        entered = 0  # on the class as its worker loaded it: counts across the endpoints

        @nr.enter()
        def load(self) -> None:
            type(self).entered += 1
            self.model = {"scale": self.size}

        def _seen(self) -> dict[str, int]:
            import os

            return {"entered": type(self).entered, "pid": os.getpid()}

        @nr.fastapi_endpoint(method="POST")
        def predict(self, x: int) -> dict[str, int]:
            return {"y": x * self.model["scale"], **self._seen()}

        @nr.fastapi_endpoint(label=f"{name}-info")
        def info(self, name: str = "model") -> dict[str, Any]:
            return {"name": name, "scale": self.model["scale"], **self._seen()}

        @nr.fastapi_endpoint(label=f"{name}-async")
        async def ready(self) -> dict[str, Any]:
            return {"ready": self.model["scale"] > 0, **self._seen()}

        @nr.asgi_app(label=f"{name}-api")
        def api(self) -> Any:
            from fastapi import FastAPI

            web = FastAPI()

            @web.get("/scale/{times}")
            def scaled(times: int) -> dict[str, int]:
                return {"scaled": times * self.model["scale"], **self._seen()}

            return web

    Model.__qualname__ = "Model"  # as at the top of a user's script (no "<locals>")
    return app, app.cls(max_containers=1)(Model)


def api_get(runner: RunningRunner, path: str) -> Any:
    status, answer = api(runner, "GET", path)
    assert status == 200, answer
    return answer


def stop_app(runner: RunningRunner, name: str) -> None:
    with contextlib.suppress(RunnerError), runner.client() as client:
        client.call("DELETE", f"/api/v1/apps/{name}")


@pytest.fixture
def served(
    runner: RunningRunner, remote_session: _session.RemoteSession
) -> Iterator[tuple[nr.App, nr.Cls]]:
    """``model_app("t-cls", 3)`` deployed (stopped afterwards)."""
    app, model = model_app("t-cls", 3)
    _deploy.deploy(remote_session.client, app)
    yield app, model
    stop_app(runner, "t-cls")


def test_methods_answer_from_one_instance_entered_once(
    runner: RunningRunner, served: tuple[nr.App, nr.Cls]
) -> None:
    _, model = served
    predict = nr.Endpoint.from_name("t-cls/Model.predict")
    info = nr.Endpoint.from_name("t-cls-info")
    api = nr.Endpoint.from_name("t-cls-api")
    assert (
        model().predict.get_web_url()
        == predict.url
        == f"{runner.url}/endpoints/t-cls/Model.predict"
    )
    assert model().info.get_web_url() == info.url
    assert nr.Cls.from_name("t-cls", "Model")().predict.get_web_url() == predict.url
    described = {e["name"]: e for e in api_get(runner, "/endpoints")["endpoints"]}
    assert described["t-cls/Model.predict"]["function"] == "Model.predict"
    assert described["t-cls-api"]["kind"] == "asgi_app"

    answers = [http(predict.url, predict.token, {"x": x}) for x in (1, 2, 5)]
    answers.append(http(f"{info.url}?name=big", info.token))
    answers.append(http(f"{api.url}/scale/4", api.token))
    ready = nr.Endpoint.from_name("t-cls-async")
    answers.append(http(ready.url, ready.token))
    assert [status for status, _ in answers] == [200] * 6
    bodies = [body for _, body in answers]
    assert [body.get("y") for body in bodies[:3]] == [3, 6, 15]
    assert bodies[3]["name"] == "big" and bodies[3]["scale"] == 3
    assert bodies[4]["scaled"] == 12 and bodies[5]["ready"] is True
    assert {body["entered"] for body in bodies} == {1}  # @enter ran once...
    assert len({body["pid"] for body in bodies}) == 1  # ...in the class's one worker

    status, error = http(predict.url, predict.token, {"x": "many"})
    assert status == 422 and "x" in json.dumps(error)  # `self` is not a parameter: x is
    assert model().predict.remote(x=2)["y"] == 6  # still a method to call


def test_tokens_are_each_endpoints_own(served: tuple[nr.App, nr.Cls]) -> None:
    predict = nr.Endpoint.from_name("t-cls/Model.predict")
    info = nr.Endpoint.from_name("t-cls-info")
    assert predict.token != info.token
    status, error = http(predict.url, None, {"x": 1})
    assert status == 401 and error["error"]["type"] == "Unauthorized"
    assert http(predict.url, info.token, {"x": 1})[0] == 401
    assert http(info.url)[0] == 401


def test_redeploy_keeps_tokens_and_stop_removes_the_endpoints(
    runner: RunningRunner, remote_session: _session.RemoteSession
) -> None:
    app, _ = model_app("t-cls-again", 3)
    try:
        _deploy.deploy(remote_session.client, app)
        before = nr.Endpoint.from_name("t-cls-again/Model.predict")
        assert http(before.url, before.token, {"x": 2})[1]["y"] == 6

        changed, _ = model_app("t-cls-again", 10)
        _deploy.deploy(remote_session.client, changed)
        after = nr.Endpoint.from_name("t-cls-again/Model.predict")
        assert after.token == before.token
        assert http(before.url, before.token, {"x": 2})[1]["y"] == 20  # the new code answers
    finally:
        stop_app(runner, "t-cls-again")
    assert http(before.url, before.token, {"x": 2})[0] == 404
    assert http(f"{runner.url}/endpoints/t-cls-again-info", before.token)[0] == 404


def test_a_methods_endpoint_answers_again_with_its_token_after_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "runner"
    first = start_runner(data_dir)
    try:
        with first.client() as client:
            _deploy.deploy(client, model_app("t-cls-kept", 3)[0])
            token = nr.Endpoint.from_name("t-cls-kept/Model.predict", client=client).token
    finally:
        first.stop()
    second = start_runner(data_dir)
    try:
        with second.client() as client:
            again = nr.Endpoint.from_name("t-cls-kept/Model.predict", client=client)
        assert again.token == token
        assert http(again.url, token, {"x": 2})[1]["y"] == 6
    finally:
        second.stop()


def test_a_web_decorator_on_the_class_itself_is_refused_by_the_runner(
    runner: RunningRunner,
) -> None:
    obj = deployed_object("class Model:\n    pass\n", "Model", {"web": {"kind": "asgi_app"}})
    status, answer = deploy(runner, "t-cls-bad", [{**obj, "kind": "class"}])
    assert status == 400, answer
    assert "a web decorator goes on a method of a class" in answer["error"]["message"]
    with_bad_method = {
        **obj,
        "kind": "class",
        "settings": {"web_methods": {"x-y": {"kind": "asgi_app"}}},
    }
    status, answer = deploy(runner, "t-cls-bad", [with_bad_method])
    assert status == 422 and "'x-y' is not a method name" in answer["error"]["message"]
