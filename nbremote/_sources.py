"""Local modules: Python files of the notebook's own folder, shipped along with a cell.

A cell that imports ``utils`` (a ``utils.py`` beside the notebook, not installed anywhere) needs
that file on the worker too. The cell's imports, the modules its inputs come from, and what
those local files import in turn are looked up in the notebook's folder; each file found goes
with the cell under its content hash, so the worker rewrites (and re-imports) only what changed.
No image is rebuilt for it.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from .wire.codec import Header

_SKIPPED = ("__pycache__", ".ipynb_checkpoints", ".git")
# (path, mtime_ns, size) -> (text, hash, the top-level modules the file imports)
_read_cache: dict[tuple[str, int, int], tuple[str, str, list[str]]] = {}


def imported_modules(tree: ast.AST) -> list[str]:
    """Top-level names of the absolute imports anywhere in ``tree``."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name.partition(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module.partition(".")[0])
    return names


def modules_of(names: Iterable[str], namespace: Mapping[str, Any]) -> list[str]:
    """The top-level modules the named values come from."""
    modules = []
    for name in names:
        value = namespace.get(name)
        if isinstance(value, ModuleType):
            module = value.__name__
        else:
            module = getattr(value, "__module__", None) or type(value).__module__
        if isinstance(module, str):
            modules.append(module.partition(".")[0])
    return modules


def _read(path: Path) -> tuple[str, str, list[str]]:
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _read_cache:
        data = path.read_bytes()
        try:
            imports = imported_modules(ast.parse(data))
        except SyntaxError:
            imports = []  # the worker reports it when the module is imported
        _read_cache[key] = (
            data.decode(errors="replace"),
            hashlib.sha256(data).hexdigest(),
            imports,
        )
    return _read_cache[key]


def _files(top: str, root: Path) -> list[Path]:
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top == "nbremote":
        return []
    single = root / f"{top}.py"
    if single.is_file():
        return [single]
    package = root / top
    if (package / "__init__.py").is_file():
        return sorted(
            path
            for path in package.rglob("*.py")
            if not any(part in _SKIPPED for part in path.relative_to(root).parts)
        )
    return []


def local_sources(modules: Iterable[str], root: Path | None = None) -> list[Header]:
    """The files of ``modules`` (and of the local modules they import) found in ``root`` (the
    notebook's folder: the kernel's working directory), each with its content hash."""
    root = root or Path.cwd()
    pending, seen = list(modules), set()
    found: dict[str, Header] = {}
    while pending:
        top = pending.pop()
        if top in seen:
            continue
        seen.add(top)
        for path in _files(top, root):
            text, digest, imports = _read(path)
            rel = path.relative_to(root).as_posix()
            found[rel] = {"module": top, "path": rel, "hash": digest, "text": text}
            pending += imports
    return list(found.values())
