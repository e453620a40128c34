"""`nbremote volumes ...` and `nbremote secrets ...`: named storage on the runner, from a shell."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from ._config import resolve_runner
from .cli import display, main
from .errors import NbremoteError, RunnerError

url_option = click.option("--url", help="Runner URL [NBREMOTE_URL, else the embedded runner].")
token_option = click.option("--token", help="Runner token [NBREMOTE_TOKEN].")
json_option = click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")


def _connect(url: str | None, token: str | None) -> Any:
    from . import _session

    return _session.connect(*resolve_runner(url, token)).client


def _human(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    raise AssertionError("unreachable")


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def _volume(name: str) -> Any:
    from .volume import Volume

    return Volume.from_name(name)


@main.group()
def volumes() -> None:
    """Named volumes: list, create, delete them; upload, download and list their files."""


@volumes.command("ls")
@url_option
@token_option
@json_option
def volumes_ls(url: str | None, token: str | None, as_json: bool) -> None:
    """List volumes with their size and last commit."""
    listed = _connect(url, token).request("GET", "/api/v1/volumes")["volumes"]
    lines = [
        f"{v['name']:<24} {v['files']:>6} files {_human(v['size']):>10}  "
        f"modified {_when(v['modified_at'])}  (version {v['version']})"
        for v in listed
    ]
    display(listed, lines or ["no volumes"], as_json)


@volumes.command("create")
@click.argument("name")
@url_option
@token_option
def volumes_create(name: str, url: str | None, token: str | None) -> None:
    """Create a volume."""
    _call(lambda: _connect(url, token).request("POST", "/api/v1/volumes", {"name": name}))
    click.echo(f"created volume {name!r}")


@volumes.command("rm")
@click.argument("name")
@url_option
@token_option
def volumes_rm(name: str, url: str | None, token: str | None) -> None:
    """Delete a volume and every file in it."""
    _call(lambda: _connect(url, token).request("DELETE", f"/api/v1/volumes/{name}"))
    click.echo(f"deleted volume {name!r}")


@volumes.command("files")
@click.argument("name")
@click.argument("path", default="/")
@click.option("--recursive", "-r", is_flag=True, help="List folders' content too.")
@url_option
@token_option
@json_option
def volumes_files(
    name: str, path: str, recursive: bool, url: str | None, token: str | None, as_json: bool
) -> None:
    """List a volume's files under PATH."""
    _connect(url, token)
    entries = _call(lambda: _volume(name).listdir(path, recursive=recursive))
    documents = [
        {"path": e.path, "type": e.type.value, "size": e.size, "mtime": e.mtime} for e in entries
    ]
    lines = [
        f"{'d' if e.type.value == 'directory' else '-'} {_human(e.size):>10}  {_when(e.mtime)}  "
        f"{e.path}{'/' if e.type.value == 'directory' else ''}"
        for e in entries
    ]
    display(documents, lines or [f"nothing under {path}"], as_json)


@volumes.command("put")
@click.argument("name")
@click.argument("local", type=click.Path(exists=True, path_type=Path))
@click.argument("remote", default="/")
@click.option("--force", "-f", is_flag=True, help="Replace files that exist.")
@url_option
@token_option
def volumes_put(
    name: str, local: Path, remote: str, force: bool, url: str | None, token: str | None
) -> None:
    """Upload a file or folder to REMOTE (into it, if REMOTE ends with '/')."""
    _connect(url, token)
    volume = _volume(name)
    if local.is_dir():
        target = remote if not remote.endswith("/") else f"{remote}{local.name}"
    else:
        target = f"{remote}{local.name}" if remote.endswith("/") else remote

    def upload() -> None:
        with volume.batch_upload(force=force) as batch:
            (batch.put_directory if local.is_dir() else batch.put_file)(local, target)

    _call(upload)
    click.echo(f"uploaded {local} to {name}:{target}")


@volumes.command("get")
@click.argument("name")
@click.argument("remote")
@click.argument("local", default=".", type=click.Path(path_type=Path))
@click.option("--force", "-f", is_flag=True, help="Replace local files that exist.")
@url_option
@token_option
def volumes_get(
    name: str, remote: str, local: Path, force: bool, url: str | None, token: str | None
) -> None:
    """Download a file or folder (LOCAL '-' writes a file to stdout)."""
    from .volume import FileEntryType, _progress

    _connect(url, token)
    volume = _volume(name)
    entries = _call(lambda: volume.listdir(remote, recursive=True))
    files = [e for e in entries if e.type == FileEntryType.FILE]
    if str(local) == "-":
        if len(files) != 1:
            raise click.UsageError(f"{remote} is not one file: give a local folder instead of -")
        for chunk in volume.read_file(files[0].path):
            sys.stdout.buffer.write(chunk)
        return
    root = remote.strip("/")
    single = len(entries) == 1 and entries[0].path == root and files
    with _progress(sum(e.size for e in files), f"download {name}:{remote}") as bar:
        for entry in files:
            if single:
                target = local / Path(root).name if local.is_dir() else local
            else:
                relative = entry.path[len(root) :].lstrip("/") if root else entry.path
                target = local / Path(root).name / relative if root else local / relative
            if target.exists() and not force:
                raise click.UsageError(f"{target} exists; pass --force to replace it")
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as out:
                for chunk in volume.read_file(entry.path):
                    out.write(chunk)
                    bar.update(len(chunk))
    click.echo(f"downloaded {len(files)} file(s) from {name}:{remote} to {local}")


@main.group()
def secrets() -> None:
    """Named secrets: environment variables for workers (values are write-only)."""


@secrets.command("set")
@click.argument("name")
@click.argument("pairs", nargs=-1, metavar="KEY=VALUE...")
@click.option("--from-dotenv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@url_option
@token_option
def secrets_set(
    name: str, pairs: tuple[str, ...], from_dotenv: Path | None, url: str | None, token: str | None
) -> None:
    """Create or replace a secret from KEY=VALUE pairs (and/or a .env file)."""
    from .secret import parse_dotenv

    values: dict[str, str] = {}
    if from_dotenv is not None:
        values.update(
            _call(lambda: parse_dotenv(from_dotenv.read_text().splitlines(), str(from_dotenv)))
        )
    for number, pair in enumerate(pairs, 1):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.UsageError(f"argument {number} is not KEY=VALUE")  # never echo a value
        values[key] = value
    if not values:
        raise click.UsageError("give KEY=VALUE pairs or --from-dotenv FILE")
    client = _connect(url, token)
    described = _call(lambda: client.request("PUT", f"/api/v1/secrets/{name}", {"values": values}))
    click.echo(f"secret {name!r} set: {', '.join(described['keys'])}")


@secrets.command("ls")
@url_option
@token_option
@json_option
def secrets_ls(url: str | None, token: str | None, as_json: bool) -> None:
    """List secrets: names, keys and dates (never values)."""
    listed = _connect(url, token).request("GET", "/api/v1/secrets")["secrets"]
    lines = [
        f"{s['name']:<24} updated {_when(s['updated_at'])}  keys: {', '.join(s['keys'])}"
        for s in listed
    ]
    display(listed, lines or ["no secrets"], as_json)


@secrets.command("rm")
@click.argument("name")
@url_option
@token_option
def secrets_rm(name: str, url: str | None, token: str | None) -> None:
    """Delete a secret (workers started with it keep their environment until they stop)."""
    _call(lambda: _connect(url, token).request("DELETE", f"/api/v1/secrets/{name}"))
    click.echo(f"deleted secret {name!r}")


def _call(action: Any) -> Any:
    """Run ``action``; the runner's refusals become usage errors (message, no traceback)."""
    try:
        return action()
    except RunnerError as exc:
        raise click.UsageError(exc.message) from None
    except NbremoteError as exc:
        raise click.UsageError(str(exc)) from None
