"""The ``nbremote`` group: every noun's command or group, added in one place."""

from __future__ import annotations

import click

from ._options import AliasGroup
from .app import apps
from .endpoint import endpoints
from .gpu import gpus
from .image import images
from .job import jobs
from .run import demo, deploy, run_command
from .runner import runner
from .secret import secrets
from .serve import serve
from .sessions import sessions
from .status import status
from .volume import volumes

# Modal's singular nouns (``modal app list``, ``modal volume ls``) name the same groups.
MODAL_NOUNS = {"app": "apps", "volume": "volumes", "secret": "secrets", "image": "images"}


@click.group(cls=AliasGroup, aliases=MODAL_NOUNS)
@click.version_option(package_name="nbremote")
def main() -> None:
    """nbremote: run notebook cells and functions on your own GPU runner."""


# The order of `nbremote --help` (click sorts them by name anyway).
for command in (
    runner,
    status,
    sessions,
    gpus,
    run_command,
    deploy,
    serve,
    apps,
    jobs,
    endpoints,
    images,
    demo,
    volumes,
    secrets,
):
    main.add_command(command)
