"""What image steps copy from this machine: module sources, folders, single files, a function's
source (``run_function``) and a uv project's metadata (``uv_sync``), each read and checked here,
with the error naming the file or function and the way out.

A copied file travels once, under its sha256; the step names it by that hash, so the step's
layer id changes exactly when a file's content does.
"""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import importlib.util
import inspect
import json
import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import NbremoteError
from .wire.images import ImageStep

MAX_LOCAL_BYTES = 64 << 20  # beyond this, data belongs in a Volume, not an image
_SKIPPED = ("__pycache__", ".git", ".ipynb_checkpoints", ".venv", "node_modules")


def module_source(module: str) -> Path:
    """The source file or package folder of an importable module, without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise NbremoteError(f"add_local_python_source: cannot find {module!r} ({exc})") from None
    if spec is None:
        raise NbremoteError(
            f"add_local_python_source: no module {module!r} is importable here; run from the "
            "folder that holds it, or add that folder to sys.path"
        )
    if spec.submodule_search_locations:
        folders = list(spec.submodule_search_locations)
        return Path(folders[0])
    if spec.origin is None or not spec.origin.endswith(".py"):
        raise NbremoteError(
            f"add_local_python_source: {module!r} is not Python source ({spec.origin})"
        )
    return Path(spec.origin)


def read_tree(root: Path, ignore: list[str], only_py: bool) -> Iterator[tuple[str, bytes]]:
    total = 0
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or any(part in _SKIPPED for part in rel.parts):
            continue
        if only_py and path.suffix != ".py":
            continue
        if any(fnmatch.fnmatch(rel.as_posix(), pattern) for pattern in ignore):
            continue
        content = path.read_bytes()
        total += len(content)
        if total > MAX_LOCAL_BYTES:
            raise NbremoteError(
                f"{root} holds more than {MAX_LOCAL_BYTES >> 20} MiB: put data in a Volume "
                "(or pass ignore=[...] to leave files out)"
            )
        yield rel.as_posix(), content


def copy_step(
    kind: str, args: list[str], options: dict[str, str], files: dict[str, bytes]
) -> tuple[ImageStep, dict[str, bytes]]:
    hashes = {rel: hashlib.sha256(content).hexdigest() for rel, content in files.items()}
    blobs = {hashes[rel]: content for rel, content in files.items()}
    step = ImageStep(kind=kind, args=args, options=options, files=hashes)  # type: ignore[arg-type]
    return step, blobs


def local_file(local_path: str | os.PathLike[str], remote_path: str) -> tuple[str, str, bytes]:
    """``add_local_file``'s file: (remote folder, file name, content). A ``remote_path`` ending
    in ``/`` is a folder, which the file goes into under its own name (as in Modal)."""
    local = Path(local_path)
    if not local.is_file():
        raise FileNotFoundError(f"add_local_file: {local} is not a file")
    if local.stat().st_size > MAX_LOCAL_BYTES:
        raise NbremoteError(
            f"add_local_file: {local} is over {MAX_LOCAL_BYTES >> 20} MiB: put data in a Volume"
        )
    remote = remote_path + local.name if remote_path.endswith("/") else remote_path
    folder, _, name = remote.rpartition("/")
    if not name:
        raise NbremoteError(f"add_local_file: remote_path={remote_path!r} names no file")
    return folder or ("/" if remote.startswith("/") else ""), name, local.read_bytes()


def function_source(fn: Callable[..., Any]) -> str:
    """The source of a ``def`` (its decorators left out): what ``run_function`` runs.

    Raises:
        NbremoteError: ``fn`` is not a plain function whose source can be read.
    """
    name = getattr(fn, "__name__", type(fn).__name__)
    if not inspect.isfunction(fn) or name == "<lambda>":
        raise NbremoteError(
            f"run_function takes a function defined with def, got {name!r}: "
            "define one (it may import what it needs inside its body)"
        )
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise NbremoteError(f"run_function: cannot read the source of {name!r} ({exc})") from None
    node = ast.parse(source).body[0]
    return "\n".join(source.splitlines()[node.lineno - 1 :]) + "\n"


def call_json(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """``run_function``'s arguments, as JSON (they are part of the step, so of its cache key)."""
    try:
        return json.dumps({"args": list(args), "kwargs": kwargs}, sort_keys=True)
    except TypeError as exc:
        raise NbremoteError(
            f"run_function({name}): args and kwargs go into the image's definition as JSON "
            f"({exc}); pass numbers, strings, lists and dicts"
        ) from None


def uv_project(folder: str | os.PathLike[str], frozen: bool) -> dict[str, bytes]:
    """``uv_sync``'s files: the project's ``pyproject.toml`` and ``uv.lock``."""
    root = Path(folder)
    if not (root / "pyproject.toml").is_file():
        raise NbremoteError(f"uv_sync: no pyproject.toml in {root}: give the uv project's folder")
    files = {"pyproject.toml": (root / "pyproject.toml").read_bytes()}
    if (root / "uv.lock").is_file():
        files["uv.lock"] = (root / "uv.lock").read_bytes()
    elif frozen:
        raise NbremoteError(
            f"uv_sync: no uv.lock in {root}: run `uv lock` there, or pass frozen=False"
        )
    return files
