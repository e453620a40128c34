"""The runner's data dir: readable by the runner's user only, and cleared of what dead runners
left behind.

It holds every secret, the state, the runtime file with the token, logs and volumes: the folder
is 0700 and what the runner writes there 0600 (a umask of 077 for the runner and its children;
a data dir made by an older runner has its modes fixed at start-up). A runner killed with
SIGKILL cannot remove its workers' scratch folders or its shared-memory folder; each is named by
its runner's pid, so a runner starting up removes those of runners that are gone (two live
runners may share one data dir).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

from nbremote.wire.shm import SHM_ROOT

SCRATCH = "scratch"
PRIVATE_UMASK = 0o077


def make_private(data_dir: Path) -> None:
    """Create the data dir (or fix an existing one) readable by this user only, and make
    everything this process creates from now on private too."""
    os.umask(PRIVATE_UMASK)
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    for path in [*data_dir.iterdir(), *_children(data_dir / "logs")]:
        with contextlib.suppress(OSError):
            mode = path.lstat().st_mode
            if not path.is_symlink() and mode & 0o077:
                path.chmod(mode & 0o700)


_prepared: set[Path] = set()


def prepare(data_dir: Path) -> None:
    """`make_private`, then `clear_leftovers`: once per data dir in a process. The embedded
    runner prepares its data dir before its first worker starts (`backends.early`), and its
    `Runner` must not then take that worker's folders, named by this pid, for a dead runner's."""
    key = data_dir.resolve()
    make_private(data_dir)
    if key not in _prepared:
        clear_leftovers(data_dir)
        _prepared.add(key)


def _children(folder: Path) -> list[Path]:
    try:
        return list(folder.rglob("*"))
    except OSError:
        return []


def scratch_root(data_dir: Path) -> Path:
    """This runner's folder of worker scratch folders."""
    return data_dir / SCRATCH / str(os.getpid())


def _alive(pid: int) -> bool:
    # Our own pid on a folder: a previous runner's, which had it before us. Signal 0 only asks
    # whether it exists (psutil, imported for this, delayed the embedded runner's early worker).
    if pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def clear_leftovers(data_dir: Path) -> list[Path]:
    """Remove scratch and shared-memory folders of runners that are gone; those removed."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in (data_dir / SCRATCH).iterdir():
            # Folders named by a worker id come from runners before scratch/<pid>/.
            if not entry.name.isdigit() or not _alive(int(entry.name)):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    ours = re.compile(rf"^nbremote-{os.getuid()}-(\d+)$")
    with contextlib.suppress(OSError):
        for entry in SHM_ROOT.iterdir():
            match = ours.match(entry.name)
            if match and not _alive(int(match.group(1))):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed
