"""Web endpoints on the runner (``nr.Endpoint``): what ``f.serve`` returns and what a deployed
web function became.

The runner serves each at ``{runner}/endpoints/{name}`` with a bearer token of its own; this is
the notebook's (and the CLI's) view of them, through the runner's REST API, one call per method.
The token is read from the runner when asked for (``ep.token``), never shown in a repr: a
notebook's saved outputs must not leak it.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import quote

from .errors import NbremoteError, RunnerError
from .wire.endpoints import DescribeEndpoint, ListEndpointsResponse

if TYPE_CHECKING:
    from ._client import RunnerClient

API = "/api/v1/endpoints"


def _default_client() -> RunnerClient:
    from . import _session

    return _session.current_session().client


class Endpoint:
    """An HTTP endpoint served by the runner.

    Args:
        name: its name (``label``, or ``{app}/{function}``).
        client: the runner's client (default: this kernel's session's).

    Example:
        >>> ep = predict.serve(name="predict")  # doctest: +SKIP
        >>> import urllib.request, json  # doctest: +SKIP
        >>> request = urllib.request.Request(
        ...     ep.url, data=json.dumps({"x": 1}).encode(),
        ...     headers={"Authorization": f"Bearer {ep.token}",
        ...              "Content-Type": "application/json"})  # doctest: +SKIP
        >>> json.load(urllib.request.urlopen(request))  # doctest: +SKIP
    """

    def __init__(self, name: str, *, client: RunnerClient | None = None) -> None:
        self._name = name
        self._client = client or _default_client()
        self._described: DescribeEndpoint | None = None

    def __repr__(self) -> str:
        url = self._described.url if self._described else "?"
        return f"<nbremote.Endpoint {self._name!r} at {url} (its token: .token)>"

    @property
    def name(self) -> str:
        """Its name."""
        return self._name

    @classmethod
    def from_name(cls, name: str, *, client: RunnerClient | None = None) -> Endpoint:
        """The endpoint called ``name``.

        Raises:
            NbremoteError: there is none (the message lists those there are).
        """
        endpoint = cls(name, client=client)
        try:
            endpoint.describe()
        except RunnerError as exc:
            if exc.kind != "NotFound":
                raise
            there = ", ".join(e.name for e in cls.list(client=endpoint._client)) or "none"
            raise NbremoteError(
                f"no endpoint {name!r} on the runner; its endpoints: {there}"
            ) from None
        return endpoint

    @classmethod
    def list(cls, *, client: RunnerClient | None = None) -> builtins.list[DescribeEndpoint]:
        """Every endpoint on the runner (without tokens), by name."""
        client = client or _default_client()
        listed = client.call("GET", API, response=ListEndpointsResponse)
        return sorted(listed.endpoints, key=lambda endpoint: endpoint.name)

    def _path(self, tail: str = "") -> str:
        return f"{API}/{quote(self._name, safe='')}{tail}"

    def describe(self) -> DescribeEndpoint:
        """Its settings, URL and token, as the runner has them now.

        Raises:
            RunnerError: (``NotFound``) there is no such endpoint.
        """
        self._described = self._client.call("GET", self._path(), response=DescribeEndpoint)
        return self._described

    def _known(self) -> DescribeEndpoint:
        return self._described or self.describe()

    @property
    def url(self) -> str:
        """Where it answers: ``{runner}/endpoints/{name}``."""
        return self._known().url

    @property
    def token(self) -> str | None:
        """The bearer token its callers send (``Authorization: Bearer ...``; a public one's
        callers need none)."""
        return self._known().token

    def delete(self) -> None:
        """Stop serving it (the app it belongs to stays deployed; ``.url`` still says where it
        was)."""
        self._client.call("DELETE", self._path())

    def logs(self) -> str:
        """Its request log so far: a line per request (time, method, path, status, latency)."""
        return b"".join(self._client.stream(self._path("/logs"))).decode(errors="replace")

    def follow_logs(self) -> Iterator[str]:
        """Its request log as requests come, until interrupted."""
        for chunk in self._client.stream(self._path("/logs?follow=1")):
            yield chunk.decode(errors="replace")


# -- how endpoints are shown (the magics' and the CLI's) ---------------------------------------

ENDPOINT_COLUMNS = ["NAME", "KIND", "METHOD", "AUTH", "APP", "URL"]


def endpoint_row(endpoint: DescribeEndpoint) -> list[str]:
    """One endpoint as a row of `ENDPOINT_COLUMNS`."""
    return [
        endpoint.name,
        endpoint.kind,
        endpoint.method or "-",
        "token" if endpoint.requires_auth else "public",
        endpoint.app,
        endpoint.url,
    ]
