"""The ``nbremote`` command line: one click group per noun, every listing as a table or JSON."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import click

from ._config import nbremote_home, resolve_runner


def display(document: Any, lines: list[str], as_json: bool) -> None:
    """Print a listing: one JSON document with ``--json``, else the human lines."""
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo("\n".join(lines))


class _Size(click.ParamType[int, Any]):
    """A size in bytes, or with a unit: 500M, 20G."""

    name = "size"
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        scale = self.units.get(text[-1:].upper())
        try:
            size = int(float(text[:-1] if scale else text) * (scale or 1))
        except ValueError:
            size = -1
        if size < 0:
            self.fail(f"{value!r}: expected a size like 500M or 20G", param, ctx)
        return size


SIZE = _Size()


@click.group()
@click.version_option(package_name="nbremote")
def main() -> None:
    """nbremote: run notebook cells and functions on your own GPU runner."""


@main.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, help="Port (0: any free port).")
@click.option("--backend", default="process", show_default=True, type=click.Choice(["process"]))
@click.option("--data-dir", type=click.Path(path_type=Path), help="State dir [NBREMOTE_HOME].")
@click.option(
    "--token-file",
    type=click.Path(path_type=Path),
    help="A 0600 file holding the API's bearer token (needed beyond loopback) [NBREMOTE_TOKEN].",
)
@click.option(
    "--store-limit", default=100_000, show_default=True, help="Most items per Dict/Queue."
)
@click.option("--gpus", metavar="SPEC", help='Declare the GPUs ("A100-80GB:2,H100") [NVML].')
@click.option(
    "--max-frame-size",
    type=SIZE,
    default="32G",
    show_default=True,
    help="The most one frame (a cell's inputs, a call's arguments) may claim.",
)
@click.option(
    "--max-body-size", type=SIZE, default="128M", show_default=True, help="Largest JSON body."
)
@click.option("--certfile", type=click.Path(path_type=Path), help="Serve HTTPS: PEM certificate.")
@click.option("--keyfile", type=click.Path(path_type=Path), help="Serve HTTPS: its PEM key.")
@click.option("--embedded", is_flag=True, hidden=True, help="Run as a kernel's embedded runner.")
@click.pass_context
def runner(
    ctx: click.Context,
    host: str,
    port: int,
    backend: str,
    data_dir: Path | None,
    token_file: Path | None,
    store_limit: int,
    gpus: str | None,
    max_frame_size: int,
    max_body_size: int,
    certfile: Path | None,
    keyfile: Path | None,
    embedded: bool,
) -> None:
    """Run a runner in the foreground (or `nbremote runner stop` the embedded one).

    Its token comes from NBREMOTE_TOKEN or --token-file, never from the command line (where any
    local user could read it), and is never printed.
    """
    if ctx.invoked_subcommand is not None:
        return
    from nbremote_runner.server import serve
    from nbremote_runner.service import Runner, RunnerConfig

    from .wire.codec import FrameLimits

    data_dir = data_dir or nbremote_home()
    try:
        token, kept = runner_token(token_file, embedded, data_dir)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    idle = float(os.environ.get("NBREMOTE_IDLE_TIMEOUT", "1800")) if embedded else None
    config = RunnerConfig(
        data_dir=data_dir,
        host=host,
        port=port,
        backend=backend,
        token=token,
        token_file=token_file,
        idle_timeout=idle,
        embedded=embedded,
        store_limit=store_limit,
        gpus=gpus,
        frame_limits=FrameLimits(
            max_buffer_bytes=min(max_frame_size, FrameLimits.max_buffer_bytes),
            max_frame_bytes=max_frame_size,
        ),
        max_body_bytes=max_body_size,
        certfile=certfile,
        keyfile=keyfile,
    )

    def announce(runner: Runner) -> None:
        where = f"backend {backend}, data in {config.data_dir}"
        click.echo(f"nbremote runner listening on {runner.url} ({where})")
        click.echo(f"token: {kept}")
        sys.stdout.flush()

    try:
        serve(config, announce)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def runner_token(token_file: Path | None, embedded: bool, data_dir: Path) -> tuple[str | None, str]:
    """The runner's token, and where it is kept in words (what the runner prints instead).

    Raises:
        ValueError: the token file cannot be used (the message says why and what to do).
    """
    from ._config import forget_token_variable, read_token_file

    token = forget_token_variable()
    if embedded:
        return secrets.token_urlsafe(32), f"in {data_dir / 'runner.json'}"
    if token_file is not None:
        return read_token_file(token_file), f"in {token_file}"
    if token:
        return token, "from NBREMOTE_TOKEN"
    return None, "none (loopback only: anyone on this machine may connect)"


@runner.command("stop")
def runner_stop() -> None:
    """Stop the embedded runner of this NBREMOTE_HOME."""
    from ._embedded import stop

    home = nbremote_home()
    click.echo(
        f"stopped the embedded runner of {home}" if stop(home) else f"no embedded runner in {home}"
    )


def _client(url: str | None, token: str | None) -> Any:
    from ._client import RunnerClient

    return RunnerClient(*resolve_runner(url, token))


@main.command()
@click.option("--url", help="Runner URL [NBREMOTE_URL, else the embedded runner].")
@click.option("--token", help="Runner token [NBREMOTE_TOKEN].")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def status(url: str | None, token: str | None, as_json: bool) -> None:
    """Show the runner, its sessions and their workers."""
    client = _client(url, token)
    described = client.request("GET", "/api/v1/runner")
    sessions = client.request("GET", "/api/v1/sessions")["sessions"]
    lines = [
        f"runner    {client.url}  v{described['version']}, {described['backend']} backend, "
        f"Python {described['python']}, pid {described['pid']}",
        f"data      {described['data_dir']}",
        f"sessions  {described['sessions']}, workers {described['workers']}, "
        f"cells run {described['cells_run']}",
    ]
    for session in sessions:
        pids = ", ".join(str(worker["pid"]) for worker in session["workers"]) or "no worker"
        lines.append(f"  {session['id']}  {session['notebook'] or '-'}  ({pids})")
    display({"runner": described, "sessions": sessions}, lines, as_json)


def _gib(nbytes: int | None) -> str:
    return "?" if nbytes is None else f"{nbytes / 2**30:.1f} GiB"


def _gpu_lines(listed: dict[str, Any]) -> list[str]:
    if not listed["gpus"]:
        return [f"no GPUs: {listed['unavailable']}"]
    lines = []
    for gpu in listed["gpus"]:
        used, total = gpu["memory_used_bytes"], gpu["memory_total_bytes"]
        busy = gpu["utilization_percent"]
        holder = gpu["holder"]
        who = "free"
        if holder is not None:
            owner = holder["notebook"] or holder["session"] or ""
            what = "cells" if holder["kind"] == "cell" else f"{holder['kind']} {holder['name']}"
            state = "idle" if holder["idle"] else "busy"
            worker = holder["worker"] or "starting"
            who = f"{what} {owner} (worker {worker}, {state})".replace("  ", " ")
        lines.append(
            f"{gpu['index']:>3}  {gpu['name']:<28} {_gib(used)} / {_gib(total)}"
            f"  {'-' if busy is None else f'{busy:.0f}%':>4}  {who}"
        )
    for waiting in listed["waiting"]:
        holder = waiting["holder"]
        who = holder["notebook"] or holder["session"] or holder["name"]
        lines.append(f"  waiting #{waiting['position']}: {waiting['request']} for {who}")
    return lines


@main.command()
@click.option("--url", help="Runner URL [NBREMOTE_URL, else the embedded runner].")
@click.option("--token", help="Runner token [NBREMOTE_TOKEN].")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def gpus(url: str | None, token: str | None, as_json: bool) -> None:
    """Show the runner's GPUs: memory, utilization, who holds each; why there are none."""
    listed = _client(url, token).request("GET", "/api/v1/gpus")
    display(listed, _gpu_lines(listed), as_json)


@main.command("run")
@click.argument("target", metavar="FILE.py[::NAME]")
def run_command(target: str) -> None:
    """Run a script's local entrypoint (or NAME: an entrypoint or a remote function)."""
    from ._script import ScriptError, run_script

    path, _, name = target.partition("::")
    if not Path(path).is_file():
        raise click.UsageError(f"{path}: no such file")
    try:
        result = run_script(Path(path), name or None)
    except ScriptError as exc:
        raise click.UsageError(str(exc)) from None
    if result is not None:
        click.echo(repr(result))


@main.command()
@click.argument(
    "path", metavar="FILE.py", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--url", help="Runner URL [NBREMOTE_URL, else the embedded runner].")
@click.option("--token", help="Runner token [NBREMOTE_TOKEN].")
def deploy(path: Path, url: str | None, token: str | None) -> None:
    """Deploy a script's apps: their functions and classes stay callable on the runner."""
    from . import _session
    from ._deploy import deploy as deploy_app
    from ._script import load_apps

    apps = [app for app in load_apps(path) if app.registered_functions or app.registered_classes]
    if not apps:
        raise click.UsageError(f"{path} defines no app with functions or classes")
    client = _session.connect(*resolve_runner(url, token)).client
    for app in apps:
        described = deploy_app(client, app)
        names = ", ".join(f"{obj['name']} ({obj['kind']})" for obj in described["objects"])
        click.echo(f"deployed app {app.name!r} on {client.url}: {names}")


@main.group()
def apps() -> None:
    """Deployed apps: list or stop them."""


@apps.command("ls")
@click.option("--url", help="Runner URL [NBREMOTE_URL, else the embedded runner].")
@click.option("--token", help="Runner token [NBREMOTE_TOKEN].")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def apps_ls(url: str | None, token: str | None, as_json: bool) -> None:
    """List deployed apps with their functions, classes and warm workers."""
    listed = _client(url, token).request("GET", "/api/v1/apps")["apps"]
    lines = [
        f"{app['name']:<20} {len(app['objects'])} objects, {app['workers']} workers: "
        + ", ".join(obj["name"] for obj in app["objects"])
        for app in listed
    ]
    display(listed, lines or ["no deployed apps"], as_json)


@apps.command("logs")
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output as it comes.")
@click.option("--url", help="Runner URL [NBREMOTE_URL, else the embedded runner].")
@click.option("--token", help="Runner token [NBREMOTE_TOKEN].")
def apps_logs(name: str, follow: bool, url: str | None, token: str | None) -> None:
    """Print what an app's functions and classes printed (and, with --follow, what they print)."""
    from .errors import RunnerError

    path = f"/api/v1/apps/{name}/logs" + ("?follow=1" if follow else "")
    try:
        for chunk in _client(url, token).stream(path):
            click.echo(chunk.decode(errors="replace"), nl=False)
            sys.stdout.flush()
    except RunnerError as exc:
        raise click.UsageError(exc.message) from None
    except KeyboardInterrupt:
        pass


@apps.command("stop")
@click.argument("name")
@click.option("--url", help="Runner URL [NBREMOTE_URL, else the embedded runner].")
@click.option("--token", help="Runner token [NBREMOTE_TOKEN].")
def apps_stop(name: str, url: str | None, token: str | None) -> None:
    """Stop an app: its workers stop (running @nr.exit methods) and it is no longer deployed."""
    from .errors import RunnerError

    try:
        _client(url, token).request("DELETE", f"/api/v1/apps/{name}")
    except RunnerError as exc:
        raise click.UsageError(exc.message) from None
    click.echo(f"stopped app {name!r}")


def _size(nbytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def _ago(when: float | None) -> str:
    if when is None:
        return "never"
    seconds = time.time() - when
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _duration(text: str) -> float:
    """``30``, ``90s``, ``15m``, ``12h``, ``7d`` in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text[-1:] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected a duration: 90s, 15m, 12h, 7d") from None


@main.group()
def images() -> None:
    """Images in the runner's cache: list, build, remove, prune."""


@images.command("ls")
@click.option("--url", help="Runner URL [NBREMOTE_URL, else the embedded runner].")
@click.option("--token", help="Runner token [NBREMOTE_TOKEN].")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def images_ls(url: str | None, token: str | None, as_json: bool) -> None:
    """List images, most recently used first, with their size and last use."""
    listed = _client(url, token).request("GET", "/api/v1/images")["images"]
    lines = [
        f"{image['id']:<28} {image['name'] or '-':<16} py{image['python_version'] or '?':<5} "
        f"{'built' if image['built'] else 'not built':<9} {_size(image['bytes']):>10}  "
        f"used {_ago(image['last_used'])}"
        + (f", {image['in_use']} workers" if image["in_use"] else "")
        for image in listed
    ]
    display(listed, lines or ["no images"], as_json)


@images.command("build")
@click.argument("target", required=False, metavar="FILE.py[::NAME]")
@click.option("--pip", "pip", help='Build debian_slim().pip_install(...) of these: "six==1.16.0".')
@click.option("--url", help="Runner URL [NBREMOTE_URL, else the embedded runner].")
@click.option("--token", help="Runner token [NBREMOTE_TOKEN].")
def images_build(target: str | None, pip: str | None, url: str | None, token: str | None) -> None:
    """Build the images a script defines (or the one called NAME), printing the build log."""
    import runpy
    import shlex

    from .image import Image

    if (target is None) == (pip is None):
        raise click.UsageError("give FILE.py[::NAME] or --pip PACKAGES (one of them)")
    if pip is not None:
        found: dict[str | None, Image] = {None: Image.debian_slim().pip_install(*shlex.split(pip))}
    else:
        path, _, name = (target or "").partition("::")
        if not Path(path).is_file():
            raise click.UsageError(f"{path}: no such file")
        namespace = runpy.run_path(path, run_name="__nbremote_images__")
        found = {k: v for k, v in namespace.items() if isinstance(v, Image) and name in ("", k)}
        if not found:
            raise click.UsageError(f"{target} defines no nr.Image" + (f" {name!r}" if name else ""))
    client = _client(url, token)
    failed = False
    for label, image in found.items():
        described = client.request("POST", "/api/v1/images", image.create_request(label))
        for chunk in client.stream(f"/api/v1/images/{described['id']}/build", method="POST"):
            for line in chunk.decode(errors="replace").splitlines():
                failed = failed or line.startswith("result: error")
                click.echo(line.removeprefix("result: ok ").removeprefix("result: error "))
    sys.exit(1 if failed else 0)


@images.command("rm")
@click.argument("refs", nargs=-1, required=True, metavar="ID_OR_NAME...")
@click.option("--url", help="Runner URL [NBREMOTE_URL, else the embedded runner].")
@click.option("--token", help="Runner token [NBREMOTE_TOKEN].")
def images_rm(refs: tuple[str, ...], url: str | None, token: str | None) -> None:
    """Remove images and the layers no other image uses."""
    from .errors import RunnerError

    client = _client(url, token)
    for ref in refs:
        try:
            client.request("DELETE", f"/api/v1/images/{ref}")
        except RunnerError as exc:
            raise click.UsageError(exc.message) from None
        click.echo(f"removed image {ref}")


@images.command("prune")
@click.option("--keep-bytes", type=int, help="Remove least recently used images beyond this.")
@click.option("--keep", "keep_size", type=SIZE, help="The same in units: 500M, 20G.")
@click.option("--older-than", help="Remove images unused for this long: 12h, 7d.")
@click.option("--url", help="Runner URL [NBREMOTE_URL, else the embedded runner].")
@click.option("--token", help="Runner token [NBREMOTE_TOKEN].")
def images_prune(
    keep_bytes: int | None,
    keep_size: int | None,
    older_than: str | None,
    url: str | None,
    token: str | None,
) -> None:
    """Free space, least recently used images first (without limits: only unused layers)."""
    if keep_size is not None:
        keep_bytes = keep_size
    body = {
        "keep_bytes": keep_bytes,
        "older_than_s": _duration(older_than) if older_than is not None else None,
    }
    pruned = _client(url, token).request("POST", "/api/v1/images/prune", body)
    click.echo(
        f"removed {len(pruned['removed'])} images ({', '.join(pruned['removed']) or 'none'}), "
        f"freed {_size(pruned['freed_bytes'])}; the cache holds {_size(pruned['kept_bytes'])}"
    )


@main.command()
@click.argument("notebook", default="notebooks/quickstart.ipynb", type=click.Path(path_type=Path))
@click.option("--output", type=click.Path(path_type=Path), help="Also save the executed notebook.")
def demo(notebook: Path, output: Path | None) -> None:
    """Run a notebook (the quickstart) headless on the embedded runner and show its outputs."""
    from ._demo import run_demo

    if not notebook.exists():
        raise click.UsageError(f"{notebook} not found: run this from the nbremote checkout")
    sys.exit(run_demo(notebook, output))


# `nbremote volumes` and `nbremote secrets` live in a module of their own, built on `main`.
from . import _storage_cli  # noqa: E402, F401
