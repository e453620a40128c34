"""``nbremote endpoints ls|show|rm|logs``: web endpoints on the runner.

Each verb is one call of `nbremote.endpoint.Endpoint` (the notebook's ``nr.Endpoint``), so the
command line and the notebook read the same answers the same way.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from ._options import echo_until_done, json_option, runner_client, runner_options, usage_errors
from ._utils import format_when

if TYPE_CHECKING:
    from ..endpoint import Endpoint
    from ..wire.endpoints import DescribeEndpoint


def _endpoint(name: str, url: str | None, token: str | None) -> Endpoint:
    from ..endpoint import Endpoint

    return Endpoint(name, client=runner_client(url, token))


def show_lines(described: DescribeEndpoint) -> list[str]:
    """``nbremote endpoints show``'s lines: where it answers, with what token, for what."""
    lines = {
        "endpoint": f"{described.name} ({described.kind}"
        + (f", {described.method}" if described.method else "")
        + ")",
        "url": described.url,
        "token": described.token if described.requires_auth else "none (public)",
        "app": f"{described.app} (function {described.function})",
        "docs": f"{described.url}/docs" if described.docs else None,
        "created": format_when(described.created_at),
    }
    return [f"{key:<9} {value}" for key, value in lines.items() if value]


@click.group()
def endpoints() -> None:
    """Web endpoints: deployed web functions and f.serve()."""


@endpoints.command("ls")
@runner_options
@json_option
def endpoints_ls(url: str | None, token: str | None, as_json: bool) -> None:
    """List endpoints: kind, method, auth, app, URL (no tokens: `show NAME` has it)."""
    from ..endpoint import ENDPOINT_COLUMNS, Endpoint, endpoint_row
    from ._utils import display_table

    with usage_errors():
        listed = Endpoint.list(client=runner_client(url, token))
    display_table(
        ENDPOINT_COLUMNS,
        [endpoint_row(endpoint) for endpoint in listed],
        [endpoint.model_dump(mode="json") for endpoint in listed],
        as_json,
        empty="no endpoints",
    )


@endpoints.command("show")
@click.argument("name")
@runner_options
@json_option
def endpoints_show(name: str, url: str | None, token: str | None, as_json: bool) -> None:
    """Show an endpoint: its URL and token, its app and function."""
    with usage_errors():
        described = _endpoint(name, url, token).describe()
    if as_json:
        click.echo(json.dumps(described.model_dump(mode="json"), indent=2))
        return
    for line in show_lines(described):
        click.echo(line)


@endpoints.command("rm")
@click.argument("name")
@runner_options
def endpoints_rm(name: str, url: str | None, token: str | None) -> None:
    """Stop serving an endpoint (its app stays deployed: `nbremote apps stop` ends that)."""
    with usage_errors():
        _endpoint(name, url, token).delete()
    click.echo(f"deleted endpoint {name!r}")


@endpoints.command("logs")
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing requests as they come.")
@runner_options
def endpoints_logs(name: str, follow: bool, url: str | None, token: str | None) -> None:
    """Print an endpoint's request log: time, method, path, status, latency."""
    endpoint = _endpoint(name, url, token)
    echo_until_done(lambda: endpoint.follow_logs() if follow else [endpoint.logs()])
