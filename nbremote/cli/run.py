"""``nbremote run``, ``deploy`` and ``demo``: what a script or notebook does, from a shell."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._options import connect, runner_options, usage_errors

if TYPE_CHECKING:
    from .._client import RunnerClient


@click.command(
    "run",
    # Everything after FILE.py[::NAME] is the target's: ``--help`` there is the target's help.
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("target", metavar="FILE.py[::NAME]")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[--PARAM VALUE]...")
def run_command(target: str, args: tuple[str, ...]) -> None:
    """Run a script's local entrypoint (or NAME: an entrypoint or a remote function); its
    parameters are options (``--x 3``; ``FILE.py::NAME --help`` lists them)."""
    from .._script import ScriptError, call_target, find_target, load_apps
    from ..functions import Function
    from ._params import command_for

    path, _, name = target.partition("::")
    if not Path(path).is_file():
        raise click.UsageError(f"{path}: no such file")
    try:
        app, name, fn = find_target(Path(path), load_apps(Path(path)), name or None)
    except ScriptError as exc:
        raise click.UsageError(str(exc)) from None
    results: list[Any] = []
    signature_of = fn.raw_f if isinstance(fn, Function) else fn
    assert signature_of is not None, "a script's function has its code"
    command = command_for(
        signature_of, name, lambda *a, **k: results.append(call_target(app, fn, *a, **k))
    )
    command.main(list(args), prog_name=f"nbremote run {target}", standalone_mode=False)
    if results and results[0] is not None:
        click.echo(repr(results[0]))


@click.command()
@click.argument(
    "path", metavar="FILE.py", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@runner_options
def deploy(path: Path, url: str | None, token: str | None) -> None:
    """Deploy a script's apps: their functions and classes stay callable on the runner."""
    from .._script import load_apps

    apps = [app for app in load_apps(path) if app.registered_functions or app.registered_classes]
    if not apps:
        raise click.UsageError(f"{path} defines no app with functions or classes")
    client = connect(url, token)
    with usage_errors():
        for line in deploy_lines(client, apps):
            click.echo(line)


def deploy_lines(client: RunnerClient, apps: list[Any], verb: str = "deployed") -> Iterator[str]:
    """Deploy each app (`nbremote.App`), saying so as each is done, with its endpoints' URLs."""
    from .._deploy import deploy as deploy_app

    for app in apps:
        described = deploy_app(client, app)
        names = ", ".join(f"{obj.name} ({obj.kind})" for obj in described.objects)
        yield f"{verb} app {app.name!r} on {client.url}: {names}"
        if any(fn.options.web for fn in app.registered_functions.values()):
            yield from endpoint_lines(client, app.name)


def endpoint_lines(client: RunnerClient, app: str) -> list[str]:
    """The endpoints of a deployed app, one line each: its URL and how to get its token."""
    from ..endpoint import Endpoint

    served = [endpoint for endpoint in Endpoint.list(client=client) if endpoint.app == app]
    return [
        f"  endpoint {endpoint.name}: {endpoint.url}"
        + (f"  (token: nbremote endpoints show {endpoint.name})" if endpoint.requires_auth else "")
        for endpoint in served
    ]


@click.command()
@click.argument("notebook", default="notebooks/quickstart.ipynb", type=click.Path(path_type=Path))
@click.option("--output", type=click.Path(path_type=Path), help="Also save the executed notebook.")
def demo(notebook: Path, output: Path | None) -> None:
    """Run a notebook (the quickstart) headless on the embedded runner and show its outputs."""
    from .._demo import run_demo

    if not notebook.exists():
        raise click.UsageError(f"{notebook} not found: run this from the nbremote checkout")
    sys.exit(run_demo(notebook, output))
