"""Each worker in a sandbox of its own, with bubblewrap (``bwrap``), where the host has it.

A worker runs other people's pickled code as the runner's user. Without a sandbox it could read
the runner's data dir (every secret, the state, the token), other workers' environments through
/proc, and signal or trace them. In the sandbox it sees:

- the host's file system as it is, through one bind per top-level entry of an empty tmpfs root
  (so a volume's mount point like ``/models`` is made inside the tmpfs, never on the host);
- but not the runner's data dir (an empty tmpfs over it; only the worker's own scratch folder and
  the image environment it runs in are bound back), nor any file the runner keeps private;
- its own PID namespace and /proc: no other process of the host is visible, its own pid is small
  (the runner finds the host pid, see `host_pid`), and every process in it dies with it;
- its own /tmp and /dev/shm (an empty tmpfs each; only the runner's shared-memory folder for
  frames is bound into /dev/shm);
- the host's network (workers serve a same-host client over an abstract Unix socket, which lives
  in the network namespace), unless ``block_network`` gives it a namespace of its own with only
  a loopback (its socket to the runner is a socket pair, which crosses namespaces), and the
  host's devices (GPUs).

``--die-with-parent`` kills the sandbox when the runner dies, however it dies.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nbremote.wire.mounts import check_mount_paths

from ..errors import RunnerError

INSTALL_HINT = "install bubblewrap (`apt-get install -y bubblewrap`, or your system's package)"


class SandboxError(RunnerError):
    """Mounts that cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class Sandbox:
    """What one worker may see of the runner's files.

    Args:
        hidden: folders covered with an empty tmpfs (the runner's data dir).
        hidden_files: files covered with an empty one (a token file).
        writable: folders bound back read-write at their own path (the worker's scratch).
        readonly: folders bound back read-only at their own path (its image environment).
        mounts: mount path -> host folder (volumes' working copies).
        shm_dir: the runner's shared-memory folder for frames, if any.
        network: the host's network; False: a network namespace of its own, with only a
            loopback (``block_network``).
        tmp: a host folder to be its /tmp (a sandbox's, kept between its commands); None: an
            empty tmpfs.
    """

    hidden: Sequence[Path] = ()
    hidden_files: Sequence[Path] = ()
    writable: Sequence[Path] = ()
    readonly: Sequence[Path] = ()
    mounts: Mapping[str, Path] = field(default_factory=dict)
    shm_dir: str | None = None
    network: bool = True
    tmp: Path | None = None


def check_host_paths(paths: list[str]) -> None:
    """Refuse mount paths that would hide a host folder's top level, or that bwrap would have
    to create inside a folder bound from the host (which would create it on the host).

    Raises:
        SandboxError: naming the path and a way out.
    """
    try:
        check_mount_paths(paths)
    except ValueError as exc:
        raise SandboxError(str(exc)) from None
    for path in paths:
        top = "/" + path.strip("/").split("/")[0]
        if top == path and os.path.lexists(top):
            raise SandboxError(
                f"mount path {path}: the host's {top} would be hidden from the worker; "
                "mount at a path of its own, such as /models or /data"
            )
        if top != path and os.path.lexists(top) and not os.path.isdir(path):
            raise SandboxError(
                f"mount path {path}: it is inside the host's {top}, where it does not exist, and "
                "the runner will not create folders on the host; mount at a path of its own, "
                "such as /models or /data"
            )


def _under(path: Path, folder: str) -> bool:
    return path == Path(folder) or Path(folder) in path.parents


@functools.cache
def _code_under_tmp() -> list[Path]:
    """The runner's Python installation, environment and code where a worker's private /tmp
    would hide them (a checkout or a venv under /tmp): to bind back read-only."""
    import nbremote

    code = [Path(sys.prefix), Path(sys.base_prefix), Path(nbremote.__file__).parent]
    resolved = {path.resolve() for path in [*code, Path(__file__).parents[1]]}
    # Asked once: it does not change while the runner lives, and every worker start needs it.
    return sorted(path for path in resolved if _under(path, "/tmp") and path != Path("/tmp"))


def _root_binds() -> list[str]:
    """Every top-level entry of the host's root but /dev, /proc and /tmp, as it is."""
    args: list[str] = []
    for entry in sorted(os.scandir("/"), key=lambda entry: entry.name):
        path = f"/{entry.name}"
        if path in ("/dev", "/proc", "/tmp"):
            continue
        if entry.is_symlink():
            args += ["--symlink", os.readlink(path), path]
        elif entry.is_dir(follow_symlinks=False):
            args += ["--dev-bind", path, path]
        else:
            args += ["--bind", path, path]
    return args


def bwrap_command(command: list[str], sandbox: Sandbox, cwd: Path) -> list[str]:
    """``command`` run in ``sandbox`` (see the module's docstring).

    Raises:
        SandboxError: bwrap is not installed, or a mount path is refused.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError(
            f"mounting volumes needs bubblewrap (bwrap), which is missing: {INSTALL_HINT}"
        )
    check_host_paths(list(sandbox.mounts))
    args = [bwrap, "--die-with-parent", "--unshare-pid", "--tmpfs", "/", *_root_binds()]
    if not sandbox.network:
        args.insert(3, "--unshare-net")
    args += ["--dev-bind", "/dev", "/dev", "--tmpfs", "/dev/shm", "--proc", "/proc"]
    args += ["--tmpfs", "/tmp"] if sandbox.tmp is None else ["--bind", str(sandbox.tmp), "/tmp"]
    for folder in sandbox.hidden:  # one under /tmp is already out of sight
        if folder.is_dir() and not _under(folder, "/tmp"):
            args += ["--tmpfs", str(folder)]
    for file in sandbox.hidden_files:
        if file.is_file() and not _under(file, "/tmp"):
            args += ["--ro-bind", "/dev/null", str(file)]
    if sandbox.shm_dir is not None:
        args += ["--bind", sandbox.shm_dir, sandbox.shm_dir]
    for folder in sandbox.writable:
        args += ["--bind", str(folder), str(folder)]
    for folder in [*sandbox.readonly, *_code_under_tmp()]:
        args += ["--ro-bind", str(folder), str(folder)]
    for path, source in sorted(sandbox.mounts.items()):
        args += ["--bind", str(source), path]
    return [*args, "--chdir", str(cwd), "--", *command]


_probe: subprocess.Popen[str] | None = None  # started ahead by `start_probe`


def _start_probe() -> subprocess.Popen[str]:
    probe = bwrap_command(["true"], Sandbox(), Path("/"))
    return subprocess.Popen(probe, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def start_probe() -> None:
    """Start `unavailable`'s probe now, in the background (a runner's start-up goes on beside
    it; it is a process of its own, ~0.1 s on a loaded machine)."""
    global _probe
    with contextlib.suppress(OSError):  # `unavailable` says why
        _probe = _probe or _start_probe()


@functools.cache
def unavailable() -> str | None:
    """Why workers cannot be sandboxed on this host (None: they can). Asked once: bwrap may be
    installed yet unable to make namespaces (no unprivileged user namespaces, say)."""
    global _probe
    if shutil.which("bwrap") is None:
        return f"bubblewrap (bwrap) is missing: {INSTALL_HINT}"
    try:
        proc, _probe = _probe or _start_probe(), None
        try:
            _, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not be run: {exc}"
    if proc.returncode != 0:
        return f"bwrap cannot make a sandbox here: {stderr.strip() or proc.returncode}"
    return None


def host_pid(bwrap_pid: int, inner_pid: int) -> int | None:
    """The host pid of the process that calls itself ``inner_pid`` in the PID namespace of the
    sandbox whose bwrap process is ``bwrap_pid`` (the last field of NSpid in its status)."""
    import psutil  # not at import: `early` imports this module before the early worker starts

    try:
        descendants = psutil.Process(bwrap_pid).children(recursive=True)
    except psutil.Error:
        return None
    for process in descendants:
        try:
            with open(f"/proc/{process.pid}/status") as status:
                for line in status:
                    if line.startswith("NSpid:"):
                        if int(line.split()[-1]) == inner_pid:
                            return process.pid
                        break
        except (OSError, ValueError):
            continue
    return None
