"""``nbremote runner``: run a runner in the foreground; ``nbremote runner stop``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .._config import nbremote_home
from ._options import DURATION, SIZE


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, help="Port (0: any free port).")
@click.option(
    "--backend",
    default="process",
    show_default=True,
    type=click.Choice(["process", "docker", "ray"]),
)
@click.option("--ray-address", metavar="ADDR", help="The ray backend's cluster [a local Ray].")
@click.option(
    "--ray-volume-root",
    type=click.Path(path_type=Path),
    help="The ray backend's volumes: a folder every node sees at this path [none: no volumes].",
)
@click.option("--docker-host", metavar="URL", help="The docker backend's daemon [DOCKER_HOST].")
@click.option(
    "--docker-network",
    default="none",
    show_default=True,
    type=click.Choice(["none", "host"]),
    help="The docker backend's containers: no network, or the host's.",
)
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
@click.option(
    "--session-grace",
    type=DURATION,
    default="5m",
    show_default=True,
    help="How long a session outlives a kernel that died without a goodbye (a crash), for "
    "`%remote attach`; a kernel that exits or restarts frees its workers at once.",
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
    docker_host: str | None,
    docker_network: str,
    ray_address: str | None,
    ray_volume_root: Path | None,
    data_dir: Path | None,
    token_file: Path | None,
    store_limit: int,
    gpus: str | None,
    max_frame_size: int,
    max_body_size: int,
    session_grace: float,
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
    data_dir = data_dir or nbremote_home()
    if embedded:  # a kernel's embedded runner: every other option at its default
        from nbremote_runner.embedded import run

        run(data_dir)
        return
    from nbremote_runner.server import serve
    from nbremote_runner.service import Runner, RunnerConfig

    from ..wire.codec import FrameLimits

    try:
        token, kept = runner_token(token_file)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    config = RunnerConfig(
        data_dir=data_dir,
        host=host,
        port=port,
        backend=backend,
        docker_host=docker_host,
        docker_network=docker_network,
        ray_address=ray_address,
        ray_volume_root=ray_volume_root,
        token=token,
        token_file=token_file,
        store_limit=store_limit,
        gpus=gpus,
        frame_limits=FrameLimits(
            max_buffer_bytes=min(max_frame_size, FrameLimits.max_buffer_bytes),
            max_frame_bytes=max_frame_size,
        ),
        max_body_bytes=max_body_size,
        session_grace=session_grace,
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


def runner_token(token_file: Path | None) -> tuple[str | None, str]:
    """The runner's token, and where it is kept in words (what the runner prints instead).

    Raises:
        ValueError: the token file cannot be used (the message says why and what to do).
    """
    from .._config import forget_token_variable, read_token_file

    token = forget_token_variable()
    if token_file is not None:
        return read_token_file(token_file), f"in {token_file}"
    if token:
        return token, "from NBREMOTE_TOKEN"
    return None, "none (loopback only: anyone on this machine may connect)"


@runner.command("stop")
def runner_stop() -> None:
    """Stop the embedded runner of this NBREMOTE_HOME."""
    from .._embedded import stop

    home = nbremote_home()
    click.echo(
        f"stopped the embedded runner of {home}" if stop(home) else f"no embedded runner in {home}"
    )
