"""The Promote dialog's "try it" box: one request to an endpoint, sent by the Jupyter server.

The browser cannot call the runner's endpoints itself (another origin, and it should not need the
endpoint's token in a script), so the server sends the request: to the endpoint's path under the
runner this server talks to (never a URL the browser gives), with the endpoint's own token (looked
up here), a JSON body, and answers what came back, cut to ``ANSWER_LIMIT``.
"""

from __future__ import annotations

import asyncio
import http.client
import json
from typing import Any
from urllib.parse import quote, urlsplit

from jupyter_server.auth.decorator import authorized
from pydantic import Field, ValidationError
from tornado import web

from nbremote._client import client_context
from nbremote.errors import NbremoteError
from nbremote.wire.endpoints import DescribeEndpoint
from nbremote.wire.http import ApiModel

from .handlers import API, RunnerHandler, segment

ANSWER_LIMIT = 64 << 10  # characters of an answer shown in the dialog
TIMEOUT = 60.0


class TryEndpoint(ApiModel):
    """``POST /nbremote/api/endpoints/{name}/try``: what to send."""

    method: str = Field(default="POST", pattern="^(GET|POST|PUT|PATCH|DELETE)$")
    path: str = Field(default="/", pattern=r"^/[^\s#]{0,2000}$", description="under the endpoint")
    body: Any = Field(default=None, description="sent as JSON (not for GET)")


def send(url: str, token: str | None, request: TryEndpoint) -> dict[str, Any]:
    """One request, blocking; its status, content type and (cut) text."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=TIMEOUT, context=client_context()
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    payload = None
    if request.method != "GET":
        payload = json.dumps(request.body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(request.method, parts.path, payload, headers)
        answer = conn.getresponse()
        text = answer.read(ANSWER_LIMIT + 1).decode(errors="replace")
    finally:
        conn.close()
    return {
        "status": answer.status,
        "content_type": answer.getheader("Content-Type", ""),
        "body": text[:ANSWER_LIMIT],
        "truncated": len(text) > ANSWER_LIMIT,
    }


class TryEndpointHandler(RunnerHandler):
    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        try:
            request = TryEndpoint.model_validate_json(self.request.body or b"{}")
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "body"
            self.answer(
                {"error": {"type": "ValidationError", "message": f"{field}: {first['msg']}"}}, 422
            )
            return
        try:
            found = await self.link.call(
                "GET", f"{API}/endpoints/{segment(name)}", response=DescribeEndpoint
            )
        except NbremoteError as exc:
            self.fail(exc)
            return
        assert found is not None and self.link.url is not None
        # Under the runner this server talks to, whatever URL the runner calls itself.
        path = request.path if request.path != "/" else ""
        url = f"{self.link.url}/endpoints/{quote(found.name)}{path}"
        try:
            answer = await asyncio.get_running_loop().run_in_executor(
                None, send, url, found.token, request
            )
        except (OSError, http.client.HTTPException) as exc:
            message = f"the endpoint {found.name!r} did not answer: {exc}"
            self.answer({"error": {"type": "EndpointUnavailable", "message": message}}, 502)
            return
        self.answer(answer)
