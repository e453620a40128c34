"""Web endpoints from the client's side, against a real runner: an app with Modal's web
decorators deployed with ``nbremote deploy`` and called over HTTP with the token ``nbremote
endpoints show --json`` gives, ``f.get_web_url()``, ``f.serve(name=...)`` from a real IPython
shell, ``%remote endpoints``, ``nbremote endpoints ls|rm|logs``, and the deploy refused for a name
another app holds (``web_server`` apps: tests/integration/test_endpoints_cells.py).

These need the runner side of issue 18 (branch i18-runner): the runner's /api/v1/endpoints and
its serving of /endpoints/{name}."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import nbremote as nr
from nbremote import _deploy, _session
from nbremote.errors import RunnerError
from tests.conftest import RunningRunner

EXAMPLE = Path(__file__).parents[2] / "examples" / "shop.py"
TIMEOUT = 120  # seconds: the first request of an endpoint starts its worker

# No proxy from the environment: the runner is on loopback.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(url: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    """A request as any HTTP client makes it (POST with a JSON body, else GET): its status and
    JSON answer."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with OPENER.open(request, timeout=TIMEOUT) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        text = error.read()
        return error.code, json.loads(text) if text else None


def stop_app(runner: RunningRunner, name: str) -> None:
    with contextlib.suppress(RunnerError), runner.client() as client:
        client.call("DELETE", f"/api/v1/apps/{name}")


@pytest.fixture(scope="module")
def shop(runner: RunningRunner) -> Iterator[tuple[str, dict[str, Any]]]:
    """examples/shop.py deployed: what the deploy printed, and ``endpoints show --json`` of
    its POST endpoint."""
    deployed = runner.cli("deploy", str(EXAMPLE))
    assert deployed.returncode == 0, deployed.stderr
    shown = runner.cli("endpoints", "show", "shop/total", "--json")
    assert shown.returncode == 0, shown.stderr
    yield deployed.stdout, json.loads(shown.stdout)
    stop_app(runner, "shop")


def test_deploy_prints_each_endpoints_url(
    runner: RunningRunner, shop: tuple[str, dict[str, Any]]
) -> None:
    printed, shown = shop
    lines = printed.splitlines()
    assert lines[0].startswith("deployed app 'shop' on ")
    assert shown["url"] == f"{runner.url}/endpoints/shop/total"
    assert (
        f"  endpoint shop/total: {shown['url']}  (token: nbremote endpoints show shop/total)"
        in lines
    )
    assert f"  endpoint shop-hello: {runner.url}/endpoints/shop-hello" in lines  # public


def test_a_deployed_endpoint_answers_with_its_token_only(
    runner: RunningRunner, shop: tuple[str, dict[str, Any]]
) -> None:
    _, shown = shop
    assert shown["kind"] == "fastapi_endpoint" and shown["method"] == "POST"
    assert shown["app"] == "shop" and shown["function"] == "total"
    assert http(shown["url"], shown["token"], {"price": 2.5, "quantity": 4}) == (
        200,
        {"total": 10.0},
    )
    status, error = http(shown["url"], None, {"price": 2.5})
    assert status == 401 and error["error"]["type"] == "Unauthorized"
    assert http(shown["url"], str(runner.token), {"price": 2.5})[0] == 401  # not the runner's
    assert http(f"{runner.url}/endpoints/shop-hello?name=ann") == (200, {"hello": "ann"})


def test_a_pydantic_body_is_checked_though_the_script_postpones_annotations(
    runner: RunningRunner, shop: tuple[str, dict[str, Any]]
) -> None:
    # examples/shop.py has `from __future__ import annotations`: `order: Order` is a string
    # there, and the model travels only because the deploy resolves it first.
    shown = json.loads(runner.cli("endpoints", "show", "shop/order", "--json").stdout)
    ok = http(shown["url"], shown["token"], {"item": "pen", "count": 2})
    assert ok == (200, {"ordered": "2 x pen"})
    status, error = http(shown["url"], shown["token"], {"item": "pen", "count": "many"})
    assert status == 422 and error["detail"][0]["loc"] == ["body", "count"]


def test_ls_and_show_from_the_cli(runner: RunningRunner, shop: tuple[str, dict[str, Any]]) -> None:
    _, shown = shop
    listed = runner.cli("endpoints", "ls", "--json")
    endpoints = {e["name"]: e for e in json.loads(listed.stdout)}
    assert {"shop/total", "shop-hello"} <= set(endpoints)
    assert all(e["token"] is None for e in endpoints.values())  # a listing has no tokens
    table = runner.cli("endpoints", "ls").stdout
    assert "shop/total" in table and shown["url"] in table and shown["token"] not in table
    plain = runner.cli("endpoints", "show", "shop/total").stdout.splitlines()
    assert f"url       {shown['url']}" in plain and f"token     {shown['token']}" in plain


def test_get_web_url_of_a_deployed_function(
    remote_session: _session.RemoteSession, shop: tuple[str, dict[str, Any]]
) -> None:
    _, shown = shop
    assert nr.Function.from_name("shop", "total").get_web_url() == shown["url"]
    assert nr.Function.from_name("shop", "hello").get_web_url().endswith("/endpoints/shop-hello")
    app = nr.App("not-deployed")

    @app.function()
    @nr.fastapi_endpoint(label="never-deployed")
    def nowhere() -> int:
        return 1

    with pytest.raises(nr.NbremoteError, match=r"no endpoint 'never-deployed'.*deploy its app"):
        nowhere.get_web_url()


def test_a_concurrent_endpoint_takes_its_requests_at_once_in_one_worker(
    runner: RunningRunner,
) -> None:
    app = nr.App("t-concurrent")

    @app.function(max_containers=1)
    @nr.concurrent(max_inputs=4)
    @nr.fastapi_endpoint(label="t-together")
    async def together() -> dict:
        """Answers once four requests are in this worker at the same time (or after 20 s)."""
        import asyncio

        state = globals().setdefault("_state", {"in": 0, "most": 0})
        state["in"] += 1
        state["most"] = max(state["most"], state["in"])
        for _ in range(200):
            if state["most"] >= 4:
                break
            await asyncio.sleep(0.1)
        state["in"] -= 1
        return {"most": state["most"], "pid": os.getpid()}

    with runner.client() as client:
        _deploy.deploy(client, app)
        shown = nr.Endpoint.from_name("t-together", client=client)
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: http(shown.url, shown.token), range(4)))
        assert [status for status, _ in answers] == [200] * 4
        assert {body["most"] for _, body in answers} == {4}  # all four in at once
        assert len({body["pid"] for _, body in answers}) == 1  # in one worker
    finally:
        stop_app(runner, "t-concurrent")


def test_a_served_notebook_function_answers_and_is_listed(shell: InteractiveShell) -> None:
    cell = (
        "import nbremote as nr\n"
        "@nr.remote\n"
        "def double(x: int) -> dict:\n"
        "    return {'double': 2 * x}\n"
        "ep = double.serve(name='t-double')\n"
    )
    try:
        assert shell.run_cell(cell).success
        ep = shell.user_ns["ep"]
        assert ep.name == "t-double" and ep.url.endswith("/endpoints/t-double")
        assert ep.token and ep.token not in repr(ep)
        assert http(ep.url, ep.token, {"x": 21}) == (200, {"double": 42})
        assert http(ep.url, ep.token, {"x": "many"})[0] == 422
        with capture_output() as listed:
            shell.run_line_magic("remote", "endpoints")
        assert "t-double" in listed.stdout and ep.token not in listed.stdout

        # Served again: the new code answers, with the same token.
        assert shell.run_cell(cell.replace("2 * x", "3 * x")).success
        again = shell.user_ns["ep"]
        assert again.token == ep.token and http(ep.url, ep.token, {"x": 2}) == (200, {"double": 6})
        assert "POST / 200" in again.logs()

        url, token = ep.url, ep.token
        ep.delete()
        assert http(url, token, {"x": 2})[0] == 404
        with pytest.raises(nr.NbremoteError, match="no endpoint 't-double'"):
            nr.Endpoint.from_name("t-double")
    finally:
        stop_app_of_session("t-double")


def stop_app_of_session(name: str) -> None:
    with contextlib.suppress(RunnerError):
        _session.current_session().client.call("DELETE", f"/api/v1/apps/{name}")


def test_rm_and_logs_from_the_cli(runner: RunningRunner, shell: InteractiveShell) -> None:
    @nr.remote
    def echo(text: str) -> dict[str, str]:
        return {"echo": text}

    try:
        ep = echo.serve(name="t-echo")
        assert http(ep.url, ep.token, {"text": "hi"}) == (200, {"echo": "hi"})
        logs = runner.cli("endpoints", "logs", "t-echo")
        assert logs.returncode == 0 and "POST / 200" in logs.stdout
        assert ep.token not in logs.stdout and "hi" not in logs.stdout  # never tokens or bodies
        removed = runner.cli("endpoints", "rm", "t-echo")
        assert removed.stdout == "deleted endpoint 't-echo'\n"
        assert http(ep.url, ep.token, {"text": "hi"})[0] == 404
        missing = runner.cli("endpoints", "show", "t-echo")
        assert missing.returncode == 2 and "t-echo" in missing.stderr
    finally:
        stop_app_of_session("t-echo")


def test_a_name_another_app_holds_is_refused_at_deploy(
    runner: RunningRunner, shell: InteractiveShell, tmp_path: Path
) -> None:
    @nr.remote
    def first() -> int:
        return 1

    script = tmp_path / "clash_app.py"
    script.write_text(
        "import nbremote as nr\n"
        "app = nr.App('t-clash-other')\n"
        "@app.function()\n"
        "@nr.fastapi_endpoint(label='t-clash')\n"
        "def second() -> int:\n"
        "    return 2\n"
    )
    try:
        first.serve(name="t-clash")
        refused = runner.cli("deploy", str(script))
        assert refused.returncode == 2 and "t-clash" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert nr.Endpoint.from_name("t-clash").describe().app == "t-clash"  # left as it was
    finally:
        stop_app_of_session("t-clash")
        stop_app_of_session("t-clash-other")
