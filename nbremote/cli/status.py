"""``nbremote status``: the runner, its sessions and their workers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ._options import json_option, runner_client, runner_options
from ._utils import display_table

if TYPE_CHECKING:
    from ..wire.http import DescribeSession


@click.command()
@runner_options
@json_option
def status(url: str | None, token: str | None, as_json: bool) -> None:
    """Show the runner, its sessions and their workers."""
    from ..wire.http import DescribeRunner, ListSessionsResponse

    client = runner_client(url, token)
    described = client.call("GET", "/api/v1/runner", response=DescribeRunner)
    sessions = client.call("GET", "/api/v1/sessions", response=ListSessionsResponse).sessions
    if not as_json:
        click.echo(
            f"runner    {client.url}  v{described.version}, {described.backend} backend, "
            f"Python {described.python}, pid {described.pid}\n"
            f"data      {described.data_dir}\n"
            f"sessions  {described.sessions}, workers {described.workers}, "
            f"cells run {described.cells_run}" + ("\n" if sessions else "")
        )
    document = {
        "runner": described.model_dump(mode="json"),
        "sessions": [session.model_dump(mode="json") for session in sessions],
    }
    display_table(
        ["SESSION", "NOTEBOOK", "WORKER PIDS"],
        [_session_row(session) for session in sessions],
        document,
        as_json,
        empty=None,
    )


def _session_row(session: DescribeSession) -> list[str]:
    pids = ", ".join(str(worker.pid) for worker in session.workers) or "no worker"
    return [session.id, session.notebook or "-", pids]
