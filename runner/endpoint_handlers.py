"""HTTP resources of web endpoints: the endpoints themselves (``/endpoints/{name}[/...]``, each
behind its own bearer token, never the runner's) and their REST resources under ``/api/v1``
(behind the runner's token). Routes in ``ENDPOINT_ROUTES``.

A name in a REST URL is looked up, never used as a path: either ``a%2Fb`` or the two segments
``a/b``; ``{name}/logs`` is the log of the one-segment endpoint ``name`` (an endpoint named
``x/logs`` is reached with ``x%2Flogs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from tornado.iostream import StreamClosedError

from nbremote.wire.endpoints import DescribeEndpoint, ListEndpointsResponse

from .endpoint_serve import WebCall
from .endpoints import Endpoint, Endpoints
from .errors import ApiError
from .handlers import API, BaseHandler, Operation

BODY_LIMIT = 16 << 20  # an endpoint's request body, at most
# Headers of one hop: the runner frames its own response (its length, or chunks).
HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
NO_BODY = (204, 304)


class EndpointHandler(BaseHandler):
    """Serves an endpoint's requests: its own token (`authorize`), any method, any sub-path."""

    public = True  # the runner's token is not asked for: the endpoint's own is
    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")
    _endpoint: Endpoint | None = None
    _call: WebCall | None = None

    def body_limit(self) -> int:
        return BODY_LIMIT

    def authorize(self) -> None:
        self._began = time.perf_counter()
        found = self.runner.endpoints.find(self.path_kwargs["path"])
        if found is None:
            raise ApiError(404, "NotFound", f"no endpoint at {self.request.path}")
        self._endpoint, self._sub = found
        if not self._endpoint.authorized(self.request.headers.get("Authorization", "")):
            raise ApiError(
                401,
                "Unauthorized",
                f"endpoint {self._endpoint.name!r} needs its bearer token "
                "(Authorization: Bearer T; nbremote endpoints show NAME)",
            )

    async def get(self, path: str) -> None:
        endpoint = self._endpoint
        assert endpoint is not None
        app = self.runner.apps.apps.get(endpoint.app)
        if app is None or endpoint.function not in app.objects:
            raise ApiError(404, "NotFound", f"endpoint {endpoint.name!r}: its app is not deployed")
        self._call = WebCall(endpoint, app, self)
        request = self.request
        headers = list(request.headers.get_all())
        body = b"".join(self._chunks)
        await self._call.run(request.method or "GET", self._sub, request.query, headers, body)
        if not self._finished:
            self.finish()

    head = post = delete = patch = put = options = get

    # -- the WebCall's caller ------------------------------------------------------------------

    def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.set_status(status)
        names = {name.lower() for name, _ in headers}
        for default in ("Content-Type", "Server", "Date"):
            if default == "Content-Type" or default.lower() in names:
                self.clear_header(default)
        for name, value in headers:
            if name.lower() not in HOP:
                self.add_header(name, value)

    def chunk(self, data: bytes, more: bool) -> None:
        if self._finished:
            return
        sent = bool(data) and self.request.method != "HEAD" and self.get_status() not in NO_BODY
        if sent:
            self.write(data)
        if not more:  # the caller has its answer now, whatever the app does after (tasks)
            self.finish()
        elif sent:  # sent now: a stream's events must not wait for its end
            self.flush().add_done_callback(lambda done: done.exception())

    def compute_etag(self) -> None:
        return None  # the app's answer as it is: no ETag of ours (nor a 304 for it)

    def error(self, status: int, kind: str, message: str, retry_after: str | None = None) -> None:
        self.clear()
        self.set_status(status)
        if retry_after is not None:
            self.set_header("Retry-After", retry_after)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": {"type": kind, "message": message}}))

    def on_connection_close(self) -> None:
        if self._call is not None:
            self._call.hang_up()

    def on_finish(self) -> None:
        if self._endpoint is not None:
            latency = (time.perf_counter() - self._began) * 1000
            method = self.request.method or "?"
            self.runner.endpoints.record(
                self._endpoint, method, self._sub[:200], self.get_status(), latency
            )


class EndpointResource(BaseHandler):
    """An endpoint named in a REST URL (``a%2Fb`` or ``a/b``), or a 404 listing those there are."""

    @property
    def endpoints(self) -> Endpoints:
        return self.runner.endpoints

    def find(self, name: str | None, app: str | None, function: str | None) -> Endpoint:
        key = name if name is not None else f"{app}/{function}"
        endpoint = self.endpoints.endpoints.get(key)
        if endpoint is None:
            there = ", ".join(sorted(self.endpoints.endpoints)) or "none"
            raise ApiError(404, "NotFound", f"no endpoint {key!r} (endpoints: {there})")
        return endpoint

    def describe(self, endpoint: Endpoint, with_token: bool = False) -> DescribeEndpoint:
        return endpoint.describe(self.runner.url, with_token)


class EndpointsHandler(EndpointResource):
    api = {"get": Operation("List web endpoints (without their tokens)", ListEndpointsResponse)}

    def get(self) -> None:
        found = [self.describe(e) for _, e in sorted(self.endpoints.endpoints.items())]
        self.reply(ListEndpointsResponse(endpoints=found))


class EndpointItemHandler(EndpointResource):
    api = {
        "get": Operation("Describe an endpoint, its token included", DescribeEndpoint),
        "delete": Operation("Stop serving an endpoint (its app stays deployed)", status=204),
    }

    def get(
        self, name: str | None = None, app: str | None = None, function: str | None = None
    ) -> None:
        self.reply(self.describe(self.find(name, app, function), with_token=True))

    def delete(
        self, name: str | None = None, app: str | None = None, function: str | None = None
    ) -> None:
        self.endpoints.remove(self.find(name, app, function).name)
        self.set_status(204)


class EndpointLogsHandler(EndpointResource):
    api = {
        "get": Operation(
            "An endpoint's request log: time, method, path, status, latency (text; ?follow=1 "
            "keeps streaming)"
        )
    }

    async def get(
        self, name: str | None = None, app: str | None = None, function: str | None = None
    ) -> None:
        endpoint = self.find(name, app, function)
        await self.endpoints.written()
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        if endpoint.log_path.exists():
            self.write(endpoint.log_path.read_bytes())
        if not self.get_argument("follow", ""):
            return
        follower: asyncio.Queue[str] = asyncio.Queue()
        endpoint.followers.add(follower)
        try:
            while True:  # until the client hangs up (flush then raises)
                await self.flush()
                with contextlib.suppress(TimeoutError):
                    self.write(await asyncio.wait_for(follower.get(), 1.0))
        except StreamClosedError:
            pass
        finally:
            endpoint.followers.discard(follower)


NAME = r"(?P<name>[^/]{1,200})"
TWO = r"(?P<app>[^/]{1,200})/(?P<function>[^/]{1,200})"
ENDPOINT_ROUTES: list[tuple[str, Any]] = [
    (f"{API}/endpoints", EndpointsHandler),
    (f"{API}/endpoints/{NAME}/logs", EndpointLogsHandler),
    (f"{API}/endpoints/{TWO}/logs", EndpointLogsHandler),
    (f"{API}/endpoints/{NAME}", EndpointItemHandler),
    (f"{API}/endpoints/{TWO}", EndpointItemHandler),
    (r"/endpoints/(?P<path>.*)", EndpointHandler),
]
