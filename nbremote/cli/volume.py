"""``nbremote volumes ls|create|rm|files|put|get``: named volumes on the runner, from a shell."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ._options import AliasGroup, connect, json_option, runner_options, usage_errors
from ._utils import display_table, format_bytes, format_when

if TYPE_CHECKING:
    from ..volume import FileEntry, Volume
    from ..wire.http import DescribeVolume


def _volume(name: str) -> Volume:
    from ..volume import Volume

    return Volume.from_name(name)


@click.group(cls=AliasGroup, aliases={"list": "ls", "delete": "rm"})
def volumes() -> None:
    """Named volumes: list, create, delete them; upload, download and list their files."""


@volumes.command("ls")
@click.argument("name", required=False)
@click.argument("path", default="/")
@click.option("--recursive", "-r", is_flag=True, help="With NAME: list folders' content too.")
@runner_options
@json_option
@click.pass_context
def volumes_ls(
    ctx: click.Context,
    name: str | None,
    path: str,
    recursive: bool,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """List volumes with their size and last commit; with NAME, its files under PATH (as
    Modal's ``volume ls VOL [PATH]``)."""
    from ..wire.http import ListVolumesResponse

    if name is not None:
        ctx.invoke(
            volumes_files,
            name=name,
            path=path,
            recursive=recursive,
            url=url,
            token=token,
            as_json=as_json,
        )
        return

    listed = connect(url, token).call("GET", "/api/v1/volumes", response=ListVolumesResponse)
    display_table(
        ["NAME", "FILES", "SIZE", "MODIFIED", "VERSION"],
        [_volume_row(volume) for volume in listed.volumes],
        listed.model_dump(mode="json")["volumes"],
        as_json,
        empty="no volumes",
        right={"FILES", "SIZE", "VERSION"},
    )


def _volume_row(volume: DescribeVolume) -> list[str]:
    return [
        volume.name,
        str(volume.files),
        format_bytes(volume.size),
        format_when(volume.modified_at),
        str(volume.version),
    ]


@volumes.command("create")
@click.argument("name")
@runner_options
def volumes_create(name: str, url: str | None, token: str | None) -> None:
    """Create a volume."""
    from .._client import build
    from ..wire.http import CreateVolume, DescribeVolume

    with usage_errors():
        body = build(CreateVolume, name=name)
        connect(url, token).call("POST", "/api/v1/volumes", body, response=DescribeVolume)
    click.echo(f"created volume {name!r}")


@volumes.command("rm")
@click.argument("name")
@runner_options
def volumes_rm(name: str, url: str | None, token: str | None) -> None:
    """Delete a volume and every file in it."""
    with usage_errors():
        connect(url, token).call("DELETE", f"/api/v1/volumes/{name}")
    click.echo(f"deleted volume {name!r}")


@volumes.command("files")
@click.argument("name")
@click.argument("path", default="/")
@click.option("--recursive", "-r", is_flag=True, help="List folders' content too.")
@runner_options
@json_option
def volumes_files(
    name: str, path: str, recursive: bool, url: str | None, token: str | None, as_json: bool
) -> None:
    """List a volume's files under PATH."""
    connect(url, token)
    with usage_errors():
        entries = _volume(name).listdir(path, recursive=recursive)
    documents = [
        {"path": e.path, "type": e.type.value, "size": e.size, "mtime": e.mtime} for e in entries
    ]
    display_table(
        ["TYPE", "SIZE", "MODIFIED", "PATH"],
        [_file_row(entry) for entry in entries],
        documents,
        as_json,
        empty=f"nothing under {path}",
        right={"SIZE"},
    )


def _file_row(entry: FileEntry) -> list[str]:
    folder = entry.type.value == "directory"
    return [
        "d" if folder else "-",
        format_bytes(entry.size),
        format_when(entry.mtime),
        entry.path + ("/" if folder else ""),
    ]


@volumes.command("put")
@click.argument("name")
@click.argument("local", type=click.Path(exists=True, path_type=Path))
@click.argument("remote", default="/")
@click.option("--force", "-f", is_flag=True, help="Replace files that exist.")
@runner_options
def volumes_put(
    name: str, local: Path, remote: str, force: bool, url: str | None, token: str | None
) -> None:
    """Upload a file or folder to REMOTE (into it, if REMOTE ends with '/')."""
    connect(url, token)
    volume = _volume(name)
    if local.is_dir():
        target = remote if not remote.endswith("/") else f"{remote}{local.name}"
    else:
        target = f"{remote}{local.name}" if remote.endswith("/") else remote
    with usage_errors(), volume.batch_upload(force=force) as batch:
        (batch.put_directory if local.is_dir() else batch.put_file)(local, target)
    click.echo(f"uploaded {local} to {name}:{target}")


@volumes.command("get")
@click.argument("name")
@click.argument("remote")
@click.argument("local", default=".", type=click.Path(path_type=Path))
@click.option("--force", "-f", is_flag=True, help="Replace local files that exist.")
@runner_options
def volumes_get(
    name: str, remote: str, local: Path, force: bool, url: str | None, token: str | None
) -> None:
    """Download a file or folder (LOCAL '-' writes a file to stdout)."""
    from ..volume import FileEntryType

    connect(url, token)
    volume = _volume(name)
    with usage_errors():
        entries = volume.listdir(remote, recursive=True)
    files = [e for e in entries if e.type == FileEntryType.FILE]
    if str(local) == "-":
        if len(files) != 1:
            raise click.UsageError(f"{remote} is not one file: give a local folder instead of -")
        for chunk in volume.read_file(files[0].path):
            sys.stdout.buffer.write(chunk)
        return
    _download(volume, name, remote, entries, local, force)
    click.echo(f"downloaded {len(files)} file(s) from {name}:{remote} to {local}")


def _download(
    volume: Volume, name: str, remote: str, entries: list[FileEntry], local: Path, force: bool
) -> None:
    """Write the files among ``entries`` (what ``remote`` holds) under ``local``."""
    from ..volume import FileEntryType, _progress

    files = [e for e in entries if e.type == FileEntryType.FILE]
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
