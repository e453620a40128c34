"""One layer of an image on the process backend: a virtual environment, built with uv.

The base layer (``debian_slim``) is a fresh relocatable venv holding what the worker itself
imports (IPython, cloudpickle, dill, matplotlib-inline, xxhash) at the runner's own versions,
with the runner's ``nbremote``/``nbremote_runner`` code made importable by a ``.pth`` file.
Every later layer starts as a hard-linked copy of its parent's venv (cheap: no file is copied)
and runs its one step in it, so adding a package to a built image costs one ``uv pip install``.
Nothing here writes to a parent layer: uv and pip replace files, they never edit them in place,
and ``run_function`` (the user's function, run from its source) gets copies of the image's
files to change. ``uv_sync`` installs what a uv project's lock pins; ``workdir`` and ``env``
only add to the image's environment (`step_env`); ``entrypoint`` is the docker backend's.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import os
import platform
import shlex
import shutil
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbremote
from nbremote.wire.http import FILE_HASH
from nbremote.wire.images import ImageStep

from .backends.sandbox import Sandbox, bwrap_command
from .children import die_with_runner
from .errors import RunnerError

Log = Callable[[str], Awaitable[None]]
WORKER_NEEDS = ("ipython", "cloudpickle", "dill", "matplotlib-inline", "xxhash")
TAIL_LINES = 30
FILES_DIR = "nbremote-files"  # add_local_dir content, linked into each worker's working dir
CODE_DIR = "nbremote-code"  # links to the runner's nbremote and nbremote_runner packages


class StepFailed(RunnerError):
    """A step did not succeed; ``tail`` holds the last lines of its log."""

    def __init__(self, reason: str, tail: list[str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tail = tail or []


@dataclass
class LayerContext:
    """What building one layer needs besides its step."""

    python: str  # the interpreter the base venv is made from
    blobs: Path  # sha256 -> file content, for steps that copy files
    env: dict[str, str] = field(default_factory=dict)  # the image's variables so far
    sandbox: Sandbox | None = None  # where steps run: a pip install runs a package's code too


def uv_bin() -> str:
    """The uv executable: the one the ``uv`` package ships, else one on PATH."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise StepFailed("uv is not installed on the runner: pip install uv") from None
        return found


def uv_env() -> dict[str, str]:
    """The environment uv runs in: the runner's (its global cache included), no downloads of
    Pythons, plain output."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return env | {"UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1", "UV_NO_PROGRESS": "1"}


@functools.cache
def worker_pins() -> tuple[str, ...]:
    """What the worker imports, pinned at the runner's own versions (pickles must match)."""
    return tuple(f"{name}=={importlib.metadata.version(name)}" for name in WORKER_NEEDS)


@functools.cache
def _constraints() -> str:
    """Every package of the runner's environment at its version: the worker's dependencies
    resolve as in the runner (and from uv's cache) when the Python is the same."""
    pins = {
        dist.metadata["Name"].lower(): dist.version
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"] and dist.metadata["Name"].lower() != "nbremote"
    }
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def code_dirs() -> dict[str, Path]:
    """The runner's packages the worker imports, by import name."""
    import nbremote_runner

    return {
        "nbremote": Path(nbremote.__file__).parent,
        "nbremote_runner": Path(nbremote_runner.__file__).parent,
    }


def fingerprint(python: str) -> str:
    """What, besides an image's steps, its layers depend on: the base Python, the worker's
    pinned packages, and where the runner's code lives."""
    parts = [python, *worker_pins(), *(str(path) for path in code_dirs().values())]
    return "\n".join(parts)


async def run(
    command: list[str], log: Log, env: dict[str, str], cwd: Path, sandbox: Sandbox | None = None
) -> None:
    """Run a command (in ``sandbox``, if given), streaming its output lines to ``log``.

    Raises:
        StepFailed: it exited non-zero (with the tail of its output).
    """
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    if sandbox is not None:  # it does not see the runner's secrets, and all of it dies with it
        command = bwrap_command(command, sandbox, cwd)
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=die_with_runner(),  # a build step does not outlive a killed runner
    )
    assert proc.stdout is not None
    try:
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            tail.append(line)
            await log(line)
        code = await proc.wait()
    except BaseException:  # cancelled (runner stopping): leave no builder behind
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if code != 0:
        program = " ".join([Path(command[0]).name, *command[1:3]])
        raise StepFailed(f"{program} exited with code {code}", list(tail))


def site_packages(env: Path) -> Path:
    """The venv's site-packages folder."""
    return next(env.glob("lib/python*/site-packages"))


async def build_layer(
    step: ImageStep, tmp: Path, parent: Path | None, context: LayerContext, log: Log
) -> None:
    """Build ``step`` into ``tmp / "env"`` (from a copy of ``parent``'s venv, unless a base).

    Raises:
        StepFailed: the step failed; the message says why and the way out.
    """
    env = tmp / "env"
    tmp.mkdir(parents=True)
    if step.kind in ("from_registry", "from_dockerfile"):
        raise StepFailed(
            f"Image.{step.kind}() needs the docker backend; this runner's process backend "
            "builds virtual environments: start from Image.debian_slim() instead"
        )
    if step.kind == "debian_slim":
        await _base(env, context, log)
        return
    assert parent is not None, "every image starts with a base step"
    await run(["cp", "-al", str(parent), str(env)], log, uv_env(), tmp)
    if step.kind in ("pip_install", "uv_pip_install"):
        await pip_install(env, step, step.args, log, tmp, context.sandbox)
    elif step.kind == "pip_install_from_requirements":
        requirements = tmp / "requirements.txt"
        requirements.write_text(step.options["requirements"])
        await pip_install(env, step, ["-r", str(requirements)], log, tmp, context.sandbox)
    elif step.kind == "run_commands":
        await _commands(env, step.args, context, log, tmp)
    elif step.kind == "apt_install":
        await _apt_check(step.args, log, tmp)
    elif step.kind in ("add_local_python_source", "add_local_dir", "add_local_file"):
        target = _copy_target(env, step)
        await asyncio.get_running_loop().run_in_executor(
            None, copy_files, step, context.blobs, target
        )
    elif step.kind == "workdir":
        worker_path(step.options["path"], "workdir")  # refused here, not when a worker starts
    elif step.kind == "run_function":
        await _run_function(env, step, context, log)
    elif step.kind == "uv_sync":
        await _uv_sync(env, step, context, log)
    # env, entrypoint: kept in the image's definition (see `step_env`); the layer is its parent's


def step_env(step: ImageStep) -> dict[str, str]:
    """What a step adds to the environment of later steps and of the image's workers: an
    ``env`` step its variables; ``workdir`` the folder workers start in (``NBREMOTE_WORKDIR``,
    relative to the worker's own folder, which the worker enters)."""
    if step.kind == "env":
        return dict(step.options)
    if step.kind == "workdir":
        return {"NBREMOTE_WORKDIR": worker_path(step.options["path"], "workdir") or "."}
    return {}


def worker_path(remote: str, what: str) -> str:
    """A remote path as the process backend has it: relative to the worker's working folder.
    Modal's containers start in ``/root``: paths under it are taken as relative to that.

    Raises:
        StepFailed: an absolute path elsewhere, or one with ``..``.
    """
    if remote.startswith("/"):
        if remote != "/root" and not remote.startswith("/root/"):
            raise StepFailed(
                f"{what}({remote!r}): the process backend cannot create absolute paths on the "
                "host; use a relative path (or one under /root), which is relative to the "
                "worker's working directory"
            )
        remote = remote.removeprefix("/root").lstrip("/")
    if ".." in Path(remote).parts:
        raise StepFailed(f"{what}({remote!r}): '..' is not allowed")
    return remote


async def _base(env: Path, context: LayerContext, log: Log) -> None:
    uv = uv_bin()
    work = env.parent
    command = [uv, "venv", "--no-config", "--relocatable", "--seed", "--python", context.python]
    await run([*command, str(env)], log, uv_env(), work, context.sandbox)
    install = [uv, "pip", "install", "--no-config", "--python", str(env / "bin" / "python")]
    same_python = Path(context.python).resolve() == Path(base_python()).resolve()
    if same_python:
        (work / "constraints.txt").write_text(_constraints())
        install += ["--constraint", str(work / "constraints.txt")]
    await run([*install, *worker_pins()], log, uv_env(), work, context.sandbox)
    # The worker imports the runner's own code: links to it, on sys.path through a .pth file.
    code = env / CODE_DIR
    code.mkdir()
    for name, path in code_dirs().items():
        (code / name).symlink_to(path, target_is_directory=True)
    (site_packages(env) / "_nbremote.pth").write_text(f"../../../{CODE_DIR}\n")


async def pip_install(
    env: Path, step: ImageStep, args: list[str], log: Log, cwd: Path, sandbox: Sandbox | None
) -> None:
    command = [uv_bin(), "pip", "install", "--no-config", "--python", str(env / "bin" / "python")]
    if step.options.get("index_url"):
        command += ["--index-url", step.options["index_url"]]
    if step.options.get("extra_index_url"):
        command += ["--extra-index-url", step.options["extra_index_url"]]
    if step.options.get("pre"):
        command += ["--prerelease", "allow"]
    command += shlex.split(step.options.get("extra_options", ""))
    await run([*command, *args], log, uv_env(), cwd, sandbox)


async def _commands(
    env: Path, commands: list[str], context: LayerContext, log: Log, tmp: Path
) -> None:
    if "NBREMOTE_WORKDIR" in context.env:  # after workdir(), as Docker's RUN after WORKDIR
        work = await _image_folder(env, context)
    else:  # a folder of its own, left out of the image (as before workdir() existed)
        work = tmp / "work"
        work.mkdir()
    variables = _step_variables(env, context)
    for command in commands:
        await log(f"$ {command}")
        await run(["/bin/sh", "-c", command], log, variables, work, context.sandbox)


async def _apt_check(packages: list[str], log: Log, cwd: Path) -> None:
    """The process backend cannot install system packages: it checks that the host has them."""
    missing = []
    for package in packages:
        dpkg = shutil.which("dpkg-query")
        if dpkg is None:
            missing.append(package)
            continue
        proc = await asyncio.create_subprocess_exec(
            dpkg,
            "-W",
            "-f=${Status}",
            package,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=die_with_runner(),
        )
        status, _ = await proc.communicate()
        if proc.returncode != 0 or not status.decode().endswith("installed"):
            missing.append(package)
        else:
            await log(f"{package}: installed on the host")
    if missing:
        raise StepFailed(
            f"apt packages not on the runner's host: {', '.join(missing)}. The process backend "
            "cannot install system packages: install them on the runner's machine "
            f"(apt-get install {' '.join(missing)}), or use the docker backend"
        )


def _copy_target(env: Path, step: ImageStep) -> Path:
    if step.kind == "add_local_python_source":
        return site_packages(env)
    if step.kind == "add_local_file":
        return env / FILES_DIR / worker_path(step.options["remote_dir"], "add_local_file")
    return env / FILES_DIR / worker_path(step.options["remote_path"], "add_local_dir")


def copy_files(step: ImageStep, blobs: Path, target: Path) -> None:
    for rel, sha in step.files.items():
        # The schema checked both; a definition read back from disk is checked again here.
        if not FILE_HASH.fullmatch(sha) or rel.startswith("/") or ".." in rel.split("/"):
            raise StepFailed(f"{step.kind}: {rel[:80]!r} -> {sha[:80]!r} is not an image file")
        destination = target / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(blobs / sha, destination)


async def _run_function(env: Path, step: ImageStep, context: LayerContext, log: Log) -> None:
    """Run the function in the image's venv, in the image's working directory (its files
    folder, or the ``workdir`` under it): what it writes there is part of the image."""
    cwd = await _image_folder(env, context)
    name = step.options["name"]
    if not name.isidentifier():  # it is written into the script below
        raise StepFailed(f"run_function: {name[:80]!r} is not a function name")
    script = env.parent / f"run_function_{name}.py"
    script.write_text(
        step.options["source"]
        + f"\n\nimport json as _json\n_call = _json.loads({step.options['call']!r})\n"
        + f"{name}(*_call['args'], **_call['kwargs'])\n"
    )
    await log(f"$ {name}(...)")
    command = [str(env / "bin" / "python"), str(script)]
    await run(command, log, _step_variables(env, context), cwd, context.sandbox)


def _step_variables(env: Path, context: LayerContext) -> dict[str, str]:
    """The environment of a step running the user's commands: the image's venv first."""
    variables = uv_env() | context.env | {"VIRTUAL_ENV": str(env)}
    variables["PATH"] = f"{env / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    variables.pop("NBREMOTE_WORKDIR", None)  # the worker's, not the build's
    return variables


async def _image_folder(env: Path, context: LayerContext) -> Path:
    """The image's working directory in this layer (its files folder, or the ``workdir``
    under it), made this layer's own: files of earlier layers are hard links to theirs, so a
    step gets copies to change."""
    files = env / FILES_DIR
    await asyncio.get_running_loop().run_in_executor(None, _unshare, files)
    folder = files / context.env.get("NBREMOTE_WORKDIR", ".")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _unshare(folder: Path) -> None:
    if not folder.is_dir():
        return
    copy = folder.with_name(f"{folder.name}.copy")
    shutil.copytree(folder, copy, symlinks=True)
    shutil.rmtree(folder)
    copy.rename(folder)


async def _uv_sync(env: Path, step: ImageStep, context: LayerContext, log: Log) -> None:
    """Install what the project's ``uv.lock`` pins (``uv export``, then ``uv pip install``:
    the worker's own packages stay, where ``uv sync`` would remove what the lock lacks)."""
    work = env.parent
    project = work / "project"
    await asyncio.get_running_loop().run_in_executor(None, copy_files, step, context.blobs, project)
    requirements = work / "requirements.txt"
    command = [uv_bin(), "export", "--no-config", "--format", "requirements-txt", "--no-hashes"]
    command += ["--no-emit-project", "--no-emit-workspace", "--directory", str(project)]
    command += ["--output-file", str(requirements)]
    if step.options.get("frozen"):
        command.append("--frozen")
    for group in filter(None, step.options.get("groups", "").split(",")):
        command += ["--group", group]
    for extra in filter(None, step.options.get("extras", "").split(",")):
        command += ["--extra", extra]
    await run(command, log, uv_env(), work, context.sandbox)
    await pip_install(env, step, ["-r", str(requirements)], log, work, context.sandbox)


def relocate_scripts(env: Path, layers: Path, final: Path) -> None:
    """Scripts written with an absolute interpreter path (pip's, in ``run_commands``) point at
    the folder they were built in: repoint them at ``final``, where the layer will live (as a
    new file: the old one's inode may be shared with a parent layer)."""
    prefix = f"#!{layers}/".encode()
    for script in (env / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        with script.open("rb") as file:
            first = file.readline()
        if not first.startswith(prefix) or b"/env/bin/" not in first:
            continue
        rest = first.split(b"/env/bin/", 1)[1]
        content = f"#!{final}/bin/".encode() + rest + script.read_bytes()[len(first) :]
        replacement = script.with_name(f".{script.name}.new")
        replacement.write_bytes(content)
        replacement.chmod(script.stat().st_mode)
        replacement.replace(script)


def new_bytes(env: Path, parent: Path | None) -> int:
    """Bytes on disk this layer adds: files whose inode its parent does not share."""
    seen = set()
    if parent is not None:
        for root, _, files in os.walk(parent):
            for name in files:
                with_stat = os.lstat(os.path.join(root, name))
                seen.add(with_stat.st_ino)
    total = 0
    for root, _, files in os.walk(env):
        for name in files:
            stat = os.lstat(os.path.join(root, name))
            if stat.st_ino not in seen:
                seen.add(stat.st_ino)
                total += stat.st_size
    return total


def base_python() -> str:
    """The interpreter the runner's own environment was made from."""
    return str(getattr(sys, "_base_executable", sys.executable))


def python_label() -> str:
    """The runner's own Python major.minor."""
    return ".".join(platform.python_version_tuple()[:2])
