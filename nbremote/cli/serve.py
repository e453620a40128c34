"""``nbremote serve FILE.py``: a script's apps served while it runs, redeployed as it changes.

Modal's ``modal serve``: the file's apps are deployed as ``nbremote deploy`` does, their
endpoints' URLs printed; the file is watched (its modification time, every half second: no
dependency for it) and deployed again when it changes. A version that fails to load, or that the
runner refuses, is reported and the last good deploy keeps serving. Ctrl-C (or SIGTERM) stops
the apps it deployed: their endpoints go away with them.
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from ..errors import NbremoteError, RunnerError
from ._options import connect, runner_options
from .run import deploy_lines

if TYPE_CHECKING:
    from .._client import RunnerClient

POLL = 0.5  # seconds between two looks at the file


def _say(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()  # a pipe (a terminal multiplexer, a test) sees each line as it comes


def _apps(path: Path) -> list[Any]:
    from .._script import load_apps

    return [app for app in load_apps(path) if app.registered_functions or app.registered_classes]


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # an editor replacing the file: look again next time
        return None


def _deploy(client: RunnerClient, path: Path, verb: str) -> list[str] | None:
    """Load the file and deploy its apps; their names, or None if it failed (said why)."""
    try:
        apps = _apps(path)
    except Exception as exc:  # the user's file: whatever it raises is theirs to fix
        error = "".join(traceback.format_exception_only(exc)).strip()
        _say(f"{path} does not load: {error}; still serving the last good version")
        return None
    if not apps:
        _say(f"{path} defines no app with functions or classes; still serving the last version")
        return None
    try:
        for line in deploy_lines(client, apps, verb):
            _say(line)
    except (RunnerError, NbremoteError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        _say(f"{path} was not deployed: {message}; still serving the last good version")
        return None
    return [app.name for app in apps]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command()
@click.argument(
    "path", metavar="FILE.py", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@runner_options
def serve(path: Path, url: str | None, token: str | None) -> None:
    """Serve a script's apps while this runs, deployed again when the file changes; Ctrl-C
    stops them (their endpoints go away)."""
    client = connect(url, token)
    signal.signal(signal.SIGTERM, _interrupt)
    seen = _mtime(path)
    served = _deploy(client, path, "serving")
    if served is None:
        raise click.UsageError(f"{path} could not be served (see above)")
    deployed = set(served)
    _say(f"watching {path} for changes; Ctrl-C stops serving")
    try:
        while True:
            time.sleep(POLL)
            now = _mtime(path)
            if now is None or now == seen:
                continue
            seen = now
            _say(f"{path} changed")
            deployed.update(_deploy(client, path, "redeployed") or ())
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for name in sorted(deployed):
        try:
            client.call("DELETE", f"/api/v1/apps/{name}")
            _say(f"stopped app {name!r}")
        except RunnerError as exc:
            _say(f"app {name!r} could not be stopped: {exc.message}")
