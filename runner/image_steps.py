"""The process backend's build steps that run the user's own things: ``run_function`` (a
function's source, run in the image's venv) and ``uv_sync`` (a uv project's locked
dependencies). Like every step they run in the build sandbox, in a layer that starts as a
hard-linked copy of its parent's venv (`nbremote_runner.image_build`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from nbremote.wire.images import ImageStep

from .image_build import (
    FILES_DIR,
    LayerContext,
    Log,
    StepFailed,
    copy_files,
    pip_install,
    run,
    uv_bin,
    uv_env,
)


async def run_function(env: Path, step: ImageStep, context: LayerContext, log: Log) -> None:
    """Run the function in the image's venv, in the image's working directory (its files
    folder, or the ``workdir`` under it): what it writes there is part of the image."""
    files = env / FILES_DIR
    # Files of earlier layers are hard links to theirs: the function gets copies to change.
    await asyncio.get_running_loop().run_in_executor(None, _unshare, files)
    cwd = files / context.env.get("NBREMOTE_WORKDIR", ".")
    cwd.mkdir(parents=True, exist_ok=True)
    name = step.options["name"]
    if not name.isidentifier():  # it is written into the script below
        raise StepFailed(f"run_function: {name[:80]!r} is not a function name")
    script = env.parent / f"run_function_{name}.py"
    script.write_text(
        step.options["source"]
        + f"\n\nimport json as _json\n_call = _json.loads({step.options['call']!r})\n"
        + f"{name}(*_call['args'], **_call['kwargs'])\n"
    )
    variables = uv_env() | context.env | {"VIRTUAL_ENV": str(env)}
    variables["PATH"] = f"{env / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    variables.pop("NBREMOTE_WORKDIR", None)
    await log(f"$ {name}(...)")
    await run([str(env / "bin" / "python"), str(script)], log, variables, cwd, context.sandbox)


def _unshare(folder: Path) -> None:
    if not folder.is_dir():
        return
    copy = folder.with_name(f"{folder.name}.copy")
    shutil.copytree(folder, copy, symlinks=True)
    shutil.rmtree(folder)
    copy.rename(folder)


async def uv_sync(env: Path, step: ImageStep, context: LayerContext, log: Log) -> None:
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
