"""``nbremote apps ls|logs|stop``: deployed apps."""

from __future__ import annotations

import click

from ._options import (
    AliasGroup,
    echo_stream,
    json_option,
    runner_client,
    runner_options,
    usage_errors,
)
from ._utils import display_table


@click.group(cls=AliasGroup, aliases={"list": "ls"})
def apps() -> None:
    """Deployed apps: list or stop them."""


@apps.command("ls")
@runner_options
@json_option
def apps_ls(url: str | None, token: str | None, as_json: bool) -> None:
    """List deployed apps with their functions, classes and warm workers."""
    from ..wire.http import ListAppsResponse

    listed = runner_client(url, token).call("GET", "/api/v1/apps", response=ListAppsResponse)
    rows = [
        [app.name, len(app.objects), app.workers, ", ".join(o.name for o in app.objects)]
        for app in listed.apps
    ]
    display_table(
        ["NAME", "OBJECTS", "WORKERS", "FUNCTIONS AND CLASSES"],
        rows,
        listed.model_dump(mode="json")["apps"],
        as_json,
        empty="no deployed apps",
        right={"OBJECTS", "WORKERS"},
    )


@apps.command("logs")
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output as it comes.")
@runner_options
def apps_logs(name: str, follow: bool, url: str | None, token: str | None) -> None:
    """Print what an app's functions and classes printed (and, with --follow, what they print)."""
    echo_stream(url, token, f"/api/v1/apps/{name}/logs" + ("?follow=1" if follow else ""))


@apps.command("stop")
@click.argument("name")
@runner_options
def apps_stop(name: str, url: str | None, token: str | None) -> None:
    """Stop an app: its workers stop (running @nr.exit methods) and it is no longer deployed."""
    with usage_errors():
        runner_client(url, token).call("DELETE", f"/api/v1/apps/{name}")
    click.echo(f"stopped app {name!r}")
