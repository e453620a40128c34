"""The client side of web endpoints, without a runner: what Modal's web decorators leave in a
function's deploy settings (both decorator orders), which arguments they refuse and how they
name them, the old ``web_endpoint``, and the CLI's and magic's parsing and formatting. A client
pointed at no runner proves that a refusal happened before anything was sent."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import nbremote as nr
from nbremote import _session
from nbremote._client import RunnerClient
from nbremote._deploy import deploy
from nbremote._options import options_from, settings_of
from nbremote.cli._main import main
from nbremote.cli.endpoint import show_lines
from nbremote.endpoint import ENDPOINT_COLUMNS, Endpoint, endpoint_row
from nbremote.errors import RunnerUnavailable
from nbremote.wire.endpoints import DescribeEndpoint, WebSettings

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, any request fails


@pytest.fixture
def offline() -> Iterator[RunnerClient]:
    """This process's session points at no runner: any request raises RunnerUnavailable."""
    client = RunnerClient(UNREACHABLE, None)
    _session._current = _session.RemoteSession(client)
    yield client
    _session._current = None


def web_of(function: Any) -> dict[str, Any]:
    """What a deploy sends as the function's ``settings["web"]``."""
    web: dict[str, Any] = settings_of(function.options)["web"]
    assert WebSettings.model_validate(web).model_dump() == web  # the runner reads it as sent
    return web


def test_modal_code_with_web_decorators_runs_under_the_modal_name() -> None:
    import nbremote as modal

    app = modal.App("web-app")

    @app.function()
    @modal.fastapi_endpoint()
    def hello(name: str = "World") -> dict[str, str]:
        return {"message": f"Hello, {name}!"}

    @app.function()
    @modal.fastapi_endpoint(method="POST", docs=True)
    def process(data: dict[str, Any]) -> dict[str, Any]:
        return {"processed": data}

    @app.function()
    @modal.asgi_app()
    def fastapi_app() -> Any:
        return None

    @app.function()
    @modal.wsgi_app()
    def flask_app() -> Any:
        return None

    @app.function()
    @modal.web_server(port=8080)
    def custom_server() -> None:
        pass

    assert web_of(hello) == {
        "kind": "fastapi_endpoint",
        "method": "GET",
        "docs": False,
        "requires_auth": True,
        "label": None,
        "port": None,
        "startup_timeout": None,
    }
    assert web_of(process) | {} == web_of(hello) | {"method": "POST", "docs": True}
    assert web_of(fastapi_app)["kind"] == "asgi_app"
    assert web_of(flask_app)["kind"] == "wsgi_app"
    assert web_of(custom_server) == web_of(hello) | {
        "kind": "web_server",
        "port": 8080,
        "startup_timeout": 5.0,
    }
    assert {name.rsplit(".", 1)[1] for name in app.registered_functions} == {
        "hello", "process", "fastapi_app", "flask_app", "custom_server",
    }  # fmt: skip
    # A web function is still a function: called here, it runs here.
    assert hello("you") == {"message": "Hello, you!"}
    assert process.local({"a": 1}) == {"processed": {"a": 1}}


def test_both_decorator_orders_give_the_same_settings() -> None:
    app = nr.App("orders")

    @app.function(max_containers=3)
    @nr.fastapi_endpoint(method="put", requires_auth=False, label="orders-put")
    def modal_order(x: int) -> int:
        return x

    @nr.fastapi_endpoint(method="put", requires_auth=False, label="orders-put")
    @app.function(max_containers=3)
    def other_order(x: int) -> int:
        return x

    assert web_of(modal_order) == web_of(other_order)
    assert web_of(modal_order)["method"] == "PUT" and not web_of(modal_order)["requires_auth"]
    assert other_order in app.registered_functions.values()  # what a deploy sends
    assert other_order.options.max_containers == 3  # the other settings are kept


def test_settings_survive_with_options_and_a_lookup() -> None:
    app = nr.App("kept")

    @app.function()
    @nr.asgi_app(label="kept-app")
    def web() -> Any:
        return None

    changed = web.with_options(timeout=30)
    assert changed.options.web == web.options.web and changed.options.timeout == 30
    assert options_from(settings_of(web.options)).web == web.options.web  # Function.from_name


def test_a_plain_function_has_no_web_settings() -> None:
    app = nr.App("plain")

    @app.function()
    def plain() -> int:
        return 1

    assert "web" not in settings_of(plain.options)
    with pytest.raises(nr.NbremoteError, match=r"plain is not a web function: put @nr\.fastapi"):
        plain.get_web_url()


@pytest.mark.parametrize(
    ("decorate", "error", "message"),
    [
        (lambda: nr.fastapi_endpoint(method="FETCH"), ValueError, "method='FETCH' is not an HTTP"),
        (lambda: nr.fastapi_endpoint(method=1), TypeError, "method= takes an HTTP method"),
        (lambda: nr.fastapi_endpoint(docs="yes"), TypeError, "docs= takes True or False"),
        (lambda: nr.fastapi_endpoint(label="a b"), ValueError, "label='a b': an endpoint's name"),
        (lambda: nr.asgi_app(label="a/b/c"), ValueError, "label='a/b/c'"),
        (lambda: nr.wsgi_app(label="-x"), ValueError, "label='-x'"),
        (lambda: nr.asgi_app(label=7), TypeError, "label= takes a name"),
        (lambda: nr.wsgi_app(requires_auth="no"), TypeError, "requires_auth= takes True or"),
        (lambda: nr.web_server(0), ValueError, "port=0 is out of 1\N{EN DASH}65535"),
        (lambda: nr.web_server(65536), ValueError, "port=65536 is out of"),
        (lambda: nr.web_server("8080"), TypeError, "port= takes a port number, got '8080'"),
        (lambda: nr.web_server(True), TypeError, "port= takes a port number"),
        (lambda: nr.web_server(8080, startup_timeout=0), ValueError, "startup_timeout=0"),
        (lambda: nr.web_server(8080, startup_timeout="5"), TypeError, "startup_timeout= takes"),
        (lambda: nr.web_server(8080, label="x y"), ValueError, r"@nr\.web_server: label="),
    ],
)
def test_bad_arguments_are_named(decorate: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        decorate()


def test_custom_domains_are_refused_not_ignored() -> None:
    with pytest.raises(nr.NbremoteError, match=r"custom_domains= is not supported.*label="):
        nr.fastapi_endpoint(custom_domains=["api.example.com"])


def test_modals_proxy_auth_flag_is_accepted() -> None:
    app = nr.App("proxy")

    @app.function()
    @nr.fastapi_endpoint(requires_proxy_auth=True)
    def guarded() -> int:
        return 1

    assert web_of(guarded)["requires_auth"]


def test_web_endpoint_warns_and_is_a_fastapi_endpoint() -> None:
    app = nr.App("old")
    with pytest.warns(DeprecationWarning, match="`web_endpoint` is deprecated, use `fastapi_"):
        mark = nr.web_endpoint(method="POST")

    @app.function()
    @mark
    def old(x: int) -> int:
        return x

    assert web_of(old)["kind"] == "fastapi_endpoint" and web_of(old)["method"] == "POST"


def test_the_deprecation_warning_points_at_the_users_line() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nr.web_endpoint()
    assert [w.filename for w in caught] == [__file__]


def test_web_decorators_go_over_functions_only() -> None:
    with pytest.raises(TypeError, match=r"@nr\.asgi_app goes over a method of the class"):
        nr.asgi_app()(type("Model", (), {}))
    with pytest.raises(TypeError, match=r"@nr\.asgi_app goes over a function"):
        nr.asgi_app()(42)


def test_a_nested_functions_endpoint_needs_a_label_before_anything_is_sent(
    offline: RunnerClient,
) -> None:
    app = nr.App("nested")

    @app.function()
    @nr.fastapi_endpoint()
    def inner() -> int:
        return 1

    with pytest.raises(nr.NbremoteError, match=r"would be named 'nested/test_a_nested.*label="):
        deploy(offline, app)

    labelled = nr.App("nested")
    labelled.function()(nr.fastapi_endpoint(label="inner")(lambda: 1))
    with pytest.raises(RunnerUnavailable):  # the name is fine: it got as far as the runner
        deploy(offline, labelled)


def test_serve_refuses_bad_input_before_sending(offline: RunnerClient) -> None:
    @nr.remote
    def predict(x: int) -> int:
        return x

    with pytest.raises(ValueError, match=r"predict\.serve\(\): method='SEND' is not an HTTP"):
        predict.serve(method="SEND")
    with pytest.raises(ValueError, match=r"name='a/b': a endpoint's name|name='a/b'"):
        predict.serve(name="a/b")  # an app's name too: one part
    with pytest.raises(TypeError, match="requires_auth= takes True or False"):
        predict.serve(requires_auth=None)  # type: ignore[arg-type]
    with pytest.raises(RunnerUnavailable):  # all fine: it got as far as the runner
        predict.serve(name="predict-1")


def test_a_deployed_function_cannot_be_served_from_here(offline: RunnerClient) -> None:
    deployed = nr.Function(None, nr.App("there"), nr.remote(lambda: 1).options, name="f")
    with pytest.raises(nr.NbremoteError, match="only a function of this notebook or script can"):
        deployed.serve(name="f")


# -- showing endpoints -------------------------------------------------------------------------

DESCRIBED = DescribeEndpoint(
    name="shop/predict",
    app="shop",
    function="predict",
    kind="fastapi_endpoint",
    method="POST",
    url="http://127.0.0.1:8765/endpoints/shop/predict",
    requires_auth=True,
    docs=True,
    created_at=1_780_000_000.0,
    token="tok-secret",
)


def test_show_prints_url_and_token_and_a_row_has_no_token() -> None:
    lines = show_lines(DESCRIBED)
    assert lines[0] == "endpoint  shop/predict (fastapi_endpoint, POST)"
    assert lines[1] == "url       http://127.0.0.1:8765/endpoints/shop/predict"
    assert lines[2] == "token     tok-secret"
    assert "docs      http://127.0.0.1:8765/endpoints/shop/predict/docs" in lines
    public = show_lines(DESCRIBED.model_copy(update={"requires_auth": False, "docs": False}))
    assert "token     none (public)" in public and not any("docs" in line for line in public)
    row = endpoint_row(DESCRIBED)
    assert len(row) == len(ENDPOINT_COLUMNS) and "tok-secret" not in row
    assert row[:4] == ["shop/predict", "fastapi_endpoint", "POST", "token"]


def test_an_endpoints_repr_never_shows_its_token(offline: RunnerClient) -> None:
    endpoint = Endpoint("shop/predict")
    endpoint._described = DESCRIBED
    assert "tok-secret" not in repr(endpoint) and DESCRIBED.url in repr(endpoint)
    assert endpoint.token == "tok-secret" and endpoint.url == DESCRIBED.url
    assert endpoint._path("/logs") == "/api/v1/endpoints/shop%2Fpredict/logs"


def test_the_cli_has_the_endpoints_verbs() -> None:
    cli = CliRunner()
    shown = cli.invoke(main, ["endpoints", "--help"])
    assert shown.exit_code == 0
    commands = shown.output.split("Commands:")[1].split()
    assert {"ls", "show", "rm", "logs"} <= set(commands)
    assert "--json" in cli.invoke(main, ["endpoints", "show", "--help"]).output
    assert "--follow" in cli.invoke(main, ["endpoints", "logs", "--help"]).output
    missing = cli.invoke(main, ["endpoints", "show"])
    assert missing.exit_code == 2 and "Missing argument 'NAME'" in missing.output
    assert "endpoints" in cli.invoke(main, ["--help"]).output


def test_the_magic_takes_no_arguments(ipython: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="unrecognized arguments: x; usage: %remote endpoints"):
        ipython.run_line_magic("remote", "endpoints x")
