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


if __name__ == "__main__":
    run(Path(sys.argv[1]))
