"""The client side of web endpoints on ``@app.cls`` methods, without a runner: what a class's
deploy sends (``settings["web_methods"]``, the methods callable remotely), the handle a method
gets (its web settings, for ``get_web_url``), and the refusals: a web decorator on the class
itself (under or over ``@app.cls``), on an ``@nr.enter()`` or ``@nr.exit()`` method, and a
name that breaks the rule, refused before anything is sent (the client points at no runner)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import nbremote as nr
from nbremote import _session
from nbremote._client import RunnerClient
from nbremote._deploy import _class, deploy
from nbremote.errors import RunnerUnavailable
from nbremote.wire.endpoints import WebSettings

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, any request fails


@pytest.fixture
def offline() -> Iterator[RunnerClient]:
    """This process's session points at no runner: any request raises RunnerUnavailable."""
    client = RunnerClient(UNREACHABLE, None)
    _session._current = _session.RemoteSession(client)
    yield client
    _session._current = None


class Model:
    size: int = nr.parameter(default=2)

    @nr.enter()
    def load(self) -> None:
        self.weights = {"scale": self.size}

    @nr.method()
    def plain(self) -> int:
        return 1

    @nr.fastapi_endpoint(method="post", docs=True)
    def predict(self, x: int) -> dict[str, int]:
        return {"y": x * self.weights["scale"]}

    @nr.asgi_app(label="model-api", requires_auth=False)
    def api(self) -> Any:
        raise NotImplementedError

    def helper(self) -> int:
        return 3


def test_a_class_deploy_carries_its_web_methods() -> None:
    app = nr.App("models")
    cls = app.cls(max_containers=2)(Model)
    sent = _class("Model", cls)
    web = sent.settings["web_methods"]
    assert list(web) == ["predict", "api"]
    assert web["predict"]["kind"] == "fastapi_endpoint" and web["predict"]["method"] == "POST"
    assert web["predict"]["docs"] is True
    assert web["api"] == {**web["api"], "kind": "asgi_app", "label": "model-api"}
    assert web["api"]["requires_auth"] is False
    for settings in web.values():  # the runner reads them as sent
        assert WebSettings.model_validate(settings).model_dump() == settings
    assert sent.methods == ["plain", "predict", "api"]  # web methods are methods to call too
    assert "web" not in sent.settings  # the class itself is not served
    assert sent.settings["max_containers"] == 2


def test_a_class_without_web_methods_sends_none() -> None:
    class Plain:
        @nr.method()
        def run(self) -> int:
            return 1

    assert "web_methods" not in _class("Plain", nr.App("p").cls()(Plain)).settings


def test_a_methods_handle_has_its_web_settings() -> None:
    model = nr.App("models").cls()(Model)
    assert model().predict.options.web["method"] == "POST"
    assert model().api.options.web["label"] == "model-api"
    assert model().plain.options.web is None
    with pytest.raises(nr.NbremoteError, match=r"Model\.plain is not a web function"):
        model().plain.get_web_url()
    with pytest.raises(AttributeError, match=r"helper is not marked .*plain, predict, api"):
        model().helper  # noqa: B018
    again = model.with_options(max_containers=3)
    assert again().predict.options.web == model().predict.options.web


def test_get_web_url_asks_for_the_methods_endpoint(offline: RunnerClient) -> None:
    model = nr.App("models").cls()(Model)
    with pytest.raises(RunnerUnavailable):  # a well-formed name: it got as far as the runner
        model().predict.get_web_url()


def test_a_web_decorator_on_the_class_itself_is_refused() -> None:
    app = nr.App("models")
    with pytest.raises(TypeError, match=r"@nr\.fastapi_endpoint goes over a method of the class"):

        @app.cls()
        @nr.fastapi_endpoint()
        class Under:
            pass

    with pytest.raises(TypeError, match=r"@nr\.asgi_app goes over a method .*Over' itself"):

        @nr.asgi_app()
        @app.cls()
        class Over:
            pass


@pytest.mark.parametrize("hook", [nr.enter, nr.exit])
def test_a_web_decorator_on_enter_or_exit_is_refused(hook: Any) -> None:
    app = nr.App("models")
    with pytest.raises(nr.NbremoteError, match=r"\.Hooked: start is an @nr\.(enter|exit)\(\)"):

        @app.cls()
        class Hooked:
            @hook()
            @nr.fastapi_endpoint()
            def start(self) -> None:
                pass


def test_a_methods_endpoint_name_is_checked_before_anything_is_sent(
    offline: RunnerClient,
) -> None:
    app = nr.App("nested")

    @app.cls()
    class Local:  # "test_...<locals>.Local.run": not a name
        @nr.fastapi_endpoint()
        def run(self) -> int:
            return 1

    with pytest.raises(nr.NbremoteError, match=r"would be named 'nested/test_a_methods.*label="):
        deploy(offline, app)

    labelled = nr.App("nested")
    labelled.cls()(Model)  # "Model.predict" and a label: names the runner takes
    with pytest.raises(RunnerUnavailable):
        deploy(offline, labelled)
