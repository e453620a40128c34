"""``nbremote images ls|build|rm|prune``: the runner's image cache."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ._options import (
    DURATION,
    SIZE,
    AliasGroup,
    json_option,
    runner_client,
    runner_options,
    usage_errors,
)
from ._utils import display_table, format_ago, format_bytes

if TYPE_CHECKING:
    from ..image import Image
    from ..wire.images import DescribeImage


@click.group(cls=AliasGroup, aliases={"list": "ls", "delete": "rm"})
def images() -> None:
    """Images in the runner's cache: list, build, remove, prune."""


@images.command("ls")
@runner_options
@json_option
def images_ls(url: str | None, token: str | None, as_json: bool) -> None:
    """List images, most recently used first, with their size and last use."""
    from ..wire.images import ListImagesResponse

    listed = runner_client(url, token).call("GET", "/api/v1/images", response=ListImagesResponse)
    display_table(
        ["ID", "NAME", "PYTHON", "STATE", "SIZE", "LAST USED", "WORKERS"],
        [_image_row(image) for image in listed.images],
        listed.model_dump(mode="json")["images"],
        as_json,
        empty="no images",
        right={"SIZE", "WORKERS"},
    )


def _image_row(image: DescribeImage) -> list[str]:
    return [
        image.id,
        image.name or "-",
        f"py{image.python_version or '?'}",
        "built" if image.built else "not built",
        format_bytes(image.bytes),
        format_ago(image.last_used),
        str(image.in_use or ""),
    ]


@images.command("build")
@click.argument("target", required=False, metavar="FILE.py[::NAME]")
@click.option("--pip", "pip", help='Build debian_slim().pip_install(...) of these: "six==1.16.0".')
@runner_options
def images_build(target: str | None, pip: str | None, url: str | None, token: str | None) -> None:
    """Build the images a script defines (or the one called NAME), printing the build log."""
    if (target is None) == (pip is None):
        raise click.UsageError("give FILE.py[::NAME] or --pip PACKAGES (one of them)")
    from ..wire.images import DescribeImage

    found = _pip_image(pip) if pip is not None else _script_images(target or "")
    client = runner_client(url, token)
    failed = False
    for label, image in found.items():
        body = image.create_request(label)
        described = client.call("POST", "/api/v1/images", body, response=DescribeImage)
        for chunk in client.stream(f"/api/v1/images/{described.id}/build", method="POST"):
            for line in chunk.decode(errors="replace").splitlines():
                failed = failed or line.startswith("result: error")
                click.echo(line.removeprefix("result: ok ").removeprefix("result: error "))
    sys.exit(1 if failed else 0)


def _pip_image(pip: str) -> dict[str | None, Image]:
    import shlex

    from ..image import Image

    return {None: Image.debian_slim().pip_install(*shlex.split(pip))}


def _script_images(target: str) -> dict[str | None, Image]:
    """The images a script defines at its top level (only NAME's, with ``FILE.py::NAME``)."""
    import runpy

    from ..image import Image

    path, _, name = target.partition("::")
    if not Path(path).is_file():
        raise click.UsageError(f"{path}: no such file")
    namespace = runpy.run_path(path, run_name="__nbremote_images__")
    found: dict[str | None, Image] = {
        k: v for k, v in namespace.items() if isinstance(v, Image) and name in ("", k)
    }
    if not found:
        raise click.UsageError(f"{target} defines no nr.Image" + (f" {name!r}" if name else ""))
    return found


@images.command("rm")
@click.argument("refs", nargs=-1, required=True, metavar="ID_OR_NAME...")
@runner_options
def images_rm(refs: tuple[str, ...], url: str | None, token: str | None) -> None:
    """Remove images and the layers no other image uses."""
    client = runner_client(url, token)
    for ref in refs:
        with usage_errors():
            client.call("DELETE", f"/api/v1/images/{ref}")
        click.echo(f"removed image {ref}")


@images.command("prune")
@click.option("--keep-bytes", type=int, help="Remove least recently used images beyond this.")
@click.option("--keep", "keep_size", type=SIZE, help="The same in units: 500M, 20G.")
@click.option("--older-than", type=DURATION, help="Remove images unused for this long: 12h, 7d.")
@runner_options
def images_prune(
    keep_bytes: int | None,
    keep_size: int | None,
    older_than: float | None,
    url: str | None,
    token: str | None,
) -> None:
    """Free space, least recently used images first (without limits: only unused layers)."""
    from .._client import build
    from ..wire.images import PruneImages, PruneImagesResponse

    if keep_size is not None:
        keep_bytes = keep_size
    body = build(PruneImages, keep_bytes=keep_bytes, older_than_s=older_than)
    client = runner_client(url, token)
    pruned = client.call("POST", "/api/v1/images/prune", body, response=PruneImagesResponse)
    click.echo(
        f"removed {len(pruned.removed)} images ({', '.join(pruned.removed) or 'none'}), "
        f"freed {format_bytes(pruned.freed_bytes)}; "
        f"the cache holds {format_bytes(pruned.kept_bytes)}"
    )
