"""The REST resources of web endpoints, under ``/api/v1`` (behind the runner's token); routes in
``ENDPOINT_ROUTES``. The endpoints themselves (``/endpoints/{name}[/...]``, each behind its own
bearer token, never the runner's) are served by `nbremote_runner.endpoint_front`.

A name in a REST URL is looked up, never used as a path: either ``a%2Fb`` or the two segments
``a/b``; ``{name}/logs`` is the log of the one-segment endpoint ``name`` (an endpoint named
``x/logs`` is reached with ``x%2Flogs``).
"""

from __future__ import annotations

from typing import Any

from nbremote.wire.endpoints import DescribeEndpoint, ListEndpointsResponse

from .endpoints import Endpoint, Endpoints
from .errors import ApiError
from .handlers import API, BaseHandler, Operation

BODY_LIMIT = 16 << 20  # an endpoint's request body, at most
# Headers of one hop: the runner frames its own response (its length, or chunks).
HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
NO_BODY = (204, 304)


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
        await self.write_log(endpoint.log_path, endpoint.followers)


NAME = r"(?P<name>[^/]{1,200})"
TWO = r"(?P<app>[^/]{1,200})/(?P<function>[^/]{1,200})"
ENDPOINT_ROUTES: list[tuple[str, Any]] = [
    (f"{API}/endpoints", EndpointsHandler),
    (f"{API}/endpoints/{NAME}/logs", EndpointLogsHandler),
    (f"{API}/endpoints/{TWO}/logs", EndpointLogsHandler),
    (f"{API}/endpoints/{NAME}", EndpointItemHandler),
    (f"{API}/endpoints/{TWO}", EndpointItemHandler),
]
