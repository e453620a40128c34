"""``python -P -m nbremote_runner.embedded DATA_DIR``: a kernel's embedded runner.

`nbremote._embedded` starts it (``nbremote runner --embedded`` runs the same). It is the runner
that ``nbremote runner --port 0 --data-dir DATA_DIR`` would be, with every other option at its
default, on loopback with a token of its own (made here, kept in ``runner.json``, never on a
command line), idling out after ``NBREMOTE_IDLE_TIMEOUT`` seconds (1800). Its own entry point so
that a kernel's first cell does not wait for the command line's imports (click and every verb),
and so that its spare worker starts before anything heavy is imported (`backends.early`).
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path


def run(data_dir: Path) -> None:
    """Run the embedded runner of ``data_dir`` in the foreground until it stops or idles out."""
    from .backends.early import launch_spare

    launch_spare(data_dir)  # it boots while the rest is imported
    _no_pydantic_plugins()
    from .server import serve
    from .service import Runner, RunnerConfig

    config = RunnerConfig(
        data_dir=data_dir,
        port=0,
        token=secrets.token_urlsafe(32),
        idle_timeout=float(os.environ.get("NBREMOTE_IDLE_TIMEOUT", "1800")),
        embedded=True,
    )

    def announce(runner: Runner) -> None:
        where = f"backend {runner.backend.name}, data in {data_dir}"
        print(f"nbremote runner listening on {runner.url} ({where})", flush=True)
        print(f"token: in {data_dir / 'runner.json'}", flush=True)

    serve(config, announce)


def _no_pydantic_plugins() -> None:
    """Check the runner's own models without pydantic plugins. pydantic looks for them at its
    first model, in every installed distribution's entry points (~25 ms of CPU on the way to the
    first result in this project's environment, more in a big one); a plugin that observes
    validation (logfire) has no business with the runner's wire frames. Its private cache, set
    to "none found": with another pydantic the assignment does nothing, and the look-up happens
    as before. Not the documented ``PYDANTIC_DISABLE_PLUGINS``: workers, whose user code may
    use plugins, would inherit it."""
    try:
        from pydantic.plugin import _loader
    except ImportError:  # another pydantic: it looks them up as usual
        return
    if getattr(_loader, "_plugins", None) is None:
        _loader._plugins = {}


if __name__ == "__main__":
    run(Path(sys.argv[1]))
