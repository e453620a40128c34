"""``nbremote sessions ls|rm``: the notebook sessions a runner holds, and ending one.

A session whose kernel is gone without a goodbye (a crash) stays, detached, for the runner's
``--session-grace``; ``rm`` ends it (or any other) now and frees its workers and GPUs.
"""

from __future__ import annotations

import click

from ._options import json_option, runner_client, runner_options, usage_errors
from ._utils import display_table


@click.group()
def sessions() -> None:
    """Notebook sessions on the runner: their workers and what they hold."""


@sessions.command("ls")
@runner_options
@json_option
def sessions_ls(url: str | None, token: str | None, as_json: bool) -> None:
    """List every session: notebook, age, attached or detached, workers, names held."""
    from .._sessions import COLUMNS, row
    from ..wire.http import ListSessionsResponse

    with usage_errors():
        client = runner_client(url, token)
        listed = client.call("GET", "/api/v1/sessions", response=ListSessionsResponse)
    display_table(
        COLUMNS,
        [row(session) for session in listed.sessions],
        listed.model_dump(mode="json"),
        as_json,
        empty="no sessions",
        right={"WORKERS"},
    )


@sessions.command("rm")
@click.argument("session_id", metavar="ID")
@runner_options
def sessions_rm(session_id: str, url: str | None, token: str | None) -> None:
    """End a session now (its id, or the start of it): its workers stop, its GPUs are free."""
    from .._sessions import find
    from ..wire.http import ListSessionsResponse

    with usage_errors():
        client = runner_client(url, token)
        listed = client.call("GET", "/api/v1/sessions", response=ListSessionsResponse)
        try:
            found = find(listed.sessions, session_id)
        except LookupError as exc:
            raise click.UsageError(str(exc)) from None
        client.call("DELETE", f"/api/v1/sessions/{found.id}")
    workers = len(found.workers)
    click.echo(f"ended session {found.id} ({workers} worker{'s' * (workers != 1)} stopped)")
