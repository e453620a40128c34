"""``nbremote secrets set|ls|rm``: named secrets on the runner (values are never shown)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ._options import AliasGroup, connect, json_option, runner_options, usage_errors
from ._utils import display_table, format_when


@click.group(cls=AliasGroup, aliases={"create": "set", "list": "ls", "delete": "rm"})
def secrets() -> None:
    """Named secrets: environment variables for workers (values are write-only)."""


@secrets.command("set")
@click.argument("name")
@click.argument("pairs", nargs=-1, metavar="KEY=VALUE...")
@click.option("--from-dotenv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, hidden=True)  # Modal's `secret create --force`: set replaces
@runner_options
def secrets_set(
    name: str,
    pairs: tuple[str, ...],
    from_dotenv: Path | None,
    force: bool,
    url: str | None,
    token: str | None,
) -> None:
    """Create or replace a secret from KEY=VALUE pairs (and/or a .env file); KEY=- reads that
    value from stdin (so it is neither in the shell's history nor in `ps`)."""
    from ..secret import parse_dotenv
    from ..wire.http import DescribeSecret, SetSecret

    values: dict[str, str] = {}
    stdin_read = False
    if from_dotenv is not None:
        with usage_errors():
            values.update(parse_dotenv(from_dotenv.read_text().splitlines(), str(from_dotenv)))
    for number, pair in enumerate(pairs, 1):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.UsageError(f"argument {number} is not KEY=VALUE")  # never echo a value
        if value == "-":
            if stdin_read:
                raise click.UsageError(f"argument {number}: only one KEY=- can read stdin")
            stdin_read = True
            value = sys.stdin.read().removesuffix("\n")  # `echo` ends it with a newline
        values[key] = value
    if not values:
        raise click.UsageError("give KEY=VALUE pairs or --from-dotenv FILE")
    client = connect(url, token)
    with usage_errors():
        body = SetSecret(values=values)
        described = client.call("PUT", f"/api/v1/secrets/{name}", body, response=DescribeSecret)
    click.echo(f"secret {name!r} set: {', '.join(described.keys)}")


@secrets.command("ls")
@runner_options
@json_option
def secrets_ls(url: str | None, token: str | None, as_json: bool) -> None:
    """List secrets: names, keys and dates (never values)."""
    from ..wire.http import ListSecretsResponse

    listed = connect(url, token).call("GET", "/api/v1/secrets", response=ListSecretsResponse)
    display_table(
        ["NAME", "UPDATED", "KEYS"],
        [[s.name, format_when(s.updated_at), ", ".join(s.keys)] for s in listed.secrets],
        listed.model_dump(mode="json")["secrets"],
        as_json,
        empty="no secrets",
    )


@secrets.command("rm")
@click.argument("name")
@runner_options
def secrets_rm(name: str, url: str | None, token: str | None) -> None:
    """Delete a secret (workers started with it keep their environment until they stop)."""
    with usage_errors():
        connect(url, token).call("DELETE", f"/api/v1/secrets/{name}")
    click.echo(f"deleted secret {name!r}")
