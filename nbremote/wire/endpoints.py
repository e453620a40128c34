"""The documents of web endpoints: a deployed function's web settings (``settings["web"]`` of a
`nbremote.wire.http.DeployObject`) and the runner's ``/api/v1/endpoints`` resources.

A function under one of Modal's web decorators is served by the runner at
``{runner}/endpoints/{name}``, with a bearer token of its own; its name is ``label`` or
``"{app}/{function}"``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field

from .http import ApiModel

ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,63})?$")
EndpointName = Annotated[
    str,
    Field(
        pattern=ENDPOINT_NAME.pattern,
        description="an endpoint's name: one or two segments of letters, digits, '_', '.', '-' "
        "(64 at most each, not first), joined by '/'",
    ),
]
WebKind = Literal["fastapi_endpoint", "asgi_app", "wsgi_app", "web_server"]


class WebSettings(ApiModel):
    """How a deployed function is served over HTTP (``settings["web"]`` of its deploy)."""

    kind: WebKind
    method: str = Field(default="GET", description="fastapi_endpoint only")
    docs: bool = Field(default=False, description="fastapi_endpoint: serve /docs, /openapi.json")
    requires_auth: bool = Field(
        default=True, description="False: public (an ASGI app's own auth still applies)"
    )
    label: EndpointName | None = Field(
        default=None, description='the endpoint\'s name instead of "{app}/{function}"'
    )
    port: int | None = Field(default=None, description="web_server only")
    startup_timeout: float | None = Field(
        default=None, gt=0, description="web_server only: seconds the server may take to listen"
    )


class DescribeEndpoint(ApiModel):
    """A served endpoint; ``token`` only from ``GET /api/v1/endpoints/{name}``."""

    name: EndpointName
    app: str
    function: str
    kind: WebKind
    method: str | None = None
    url: str = Field(description="absolute, from the runner's own URL")
    requires_auth: bool
    docs: bool
    created_at: float
    token: str | None = None


class ListEndpointsResponse(ApiModel):
    """``GET /api/v1/endpoints`` (no tokens)."""

    endpoints: list[DescribeEndpoint]
