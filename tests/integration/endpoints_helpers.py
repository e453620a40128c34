"""Helpers of the endpoint tests: an app deployed through the REST API as `nbremote deploy`
sends it (functions pickled by value), REST calls, and plain HTTP requests to an endpoint."""

from __future__ import annotations

import base64
import http.client
import json
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

from nbremote.wire.serialize import dumps
from tests.conftest import RunningRunner

API = "/api/v1"


def api(runner: RunningRunner, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A REST call with the runner's token: its status and JSON answer (None if none)."""
    headers = {"Authorization": f"Bearer {runner.token}"}
    status, _, data = request(runner, method, f"{API}{path}", body, headers)
    return status, json.loads(data) if data and data[:1] in b"{[" else data


def request(
    runner: RunningRunner,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request on a connection of its own: status, headers (lower-case), body."""
    url = urllib.parse.urlsplit(runner.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        headers = dict(headers or {})
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        if data is not body:
            headers["Content-Type"] = "application/json"
        connection.request(method, path, data, headers)
        response = connection.getresponse()
        answer = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, answer
    finally:
        connection.close()


def deployed_object(source: str, function: str, settings: dict[str, Any]) -> dict[str, Any]:
    """``function`` of ``source`` (run as ``__main__``, so pickled by value) as a deploy sends
    it."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    # Compiled apart from this module's ``from __future__ import annotations``: FastAPI reads
    # the functions' annotations as classes, as in a user's own module.
    exec(compile(source, "<app>", "exec", dont_inherit=True), namespace)
    payload = dumps(function, namespace[function])
    return {
        "name": function,
        "kind": "function",
        "settings": settings,
        "payload": base64.b64encode(b"".join(payload.parts)).decode(),
        "sizes": [part.nbytes for part in payload.parts],
        "hash": payload.hash,
    }


def deploy(runner: RunningRunner, app: str, objects: list[dict[str, Any]]) -> tuple[int, Any]:
    """Deploy (or redeploy) ``app`` with ``objects``."""
    return api(runner, "PUT", f"/apps/{app}", {"objects": objects})


def token_of(runner: RunningRunner, name: str) -> str:
    """An endpoint's token, as `nbremote endpoints show` reads it."""
    status, described = api(runner, "GET", f"/endpoints/{urllib.parse.quote(name, safe='')}")
    assert status == 200, described
    token: str = described["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def own_app(runner: RunningRunner, prefix: str) -> Iterator[str]:
    """A fixture's body: an app name of the test's own, stopped afterwards (the runner is
    shared)."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    yield name
    api(runner, "DELETE", f"/apps/{name}")


def get(runner: RunningRunner, name: str, query: str = "") -> tuple[int, bytes]:
    """A GET of endpoint ``name`` with its own token: the status and body."""
    auth = bearer(token_of(runner, name))
    status, _, body = request(runner, "GET", f"/endpoints/{name}{query}", None, auth, 30)
    return status, body
