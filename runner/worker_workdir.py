"""The worker's working directory when its image sets one (``Image.workdir``).

The process backend starts a worker in a folder of its own, holding links to the files its
image copied (``add_local_dir``/``add_local_file``, read-only in a sandbox). The image's workdir
is a folder under it: one that is a link into the image becomes a real folder of links, so the
worker may write there as in Modal's containers, while the image's files stay as they are.
Standard library only: the worker imports this module.
"""

from __future__ import annotations

import os
from pathlib import Path


def enter_workdir() -> None:
    """Make ``$NBREMOTE_WORKDIR`` (relative, under the current folder) a writable folder and
    enter it."""
    relative = os.environ["NBREMOTE_WORKDIR"]
    here = Path.cwd()
    for part in Path(relative).parts:
        here = here / part
        if here.is_symlink() and here.is_dir():
            target = here.resolve()
            here.unlink()
            here.mkdir()
            for entry in target.iterdir():
                (here / entry.name).symlink_to(entry)
        else:
            here.mkdir(exist_ok=True)
    os.chdir(here)
