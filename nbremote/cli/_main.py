"""The ``nbremote`` group: every noun's command or group, added in one place."""

from __future__ import annotations

import click

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


@click.group()
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
