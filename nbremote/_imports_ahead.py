"""The modules a remote cell imports, imported here while the cell runs there.

A cell that runs ``import pandas, matplotlib.pyplot as plt`` on the worker binds ``pandas`` and
``plt`` in the notebook too, as the same cell would locally, so the notebook imports them as well.
Imported after the cell, they would cost seconds after its last output. So the client starts
importing them on a thread as it sends the cell: the worker imports the same modules meanwhile,
and binding them at the end finds them loaded. They are ordinary imports (a lazy module in
``sys.modules`` breaks the next unpickling that imports its submodules). A module only the
worker's image has is not found here, and stays bound on the worker only, as before.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import sys
import threading
from collections.abc import Iterator

from ._ipython_syntax import parse_cell
from ._session import OnFrame
from .wire.codec import Header
from .wire.ops import Op

# The frames a cell's output is made of (not the status line's, which may show at once).
_OUTPUT = frozenset({Op.STREAM, Op.DISPLAY, Op.CLEAR_OUTPUT, Op.RESULT, Op.ERROR, Op.PAGE})


def _module_level(tree: ast.AST) -> Iterator[ast.AST]:
    """The nodes that run at the cell's top level (not in a function or class body)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        yield node
        yield from _module_level(node)


@functools.lru_cache(maxsize=8)
def _imports(code: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The absolute modules the cell's top level imports, and those it star-imports."""
    try:
        tree = parse_cell(code)
    except SyntaxError:
        return (), ()
    names: list[str] = []
    star: list[str] = []
    for node in _module_level(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            for alias in node.names:
                if alias.name == "*":
                    star.append(node.module)
                else:  # in case it is a submodule
                    names.append(f"{node.module}.{alias.name}")
    return tuple(dict.fromkeys(names)), tuple(star)


def imported_names(code: str) -> list[str]:
    """Absolute module names the cell's top level imports (``from a.b import c``: ``a.b``, and
    ``a.b.c`` in case ``c`` is a submodule)."""
    return list(_imports(code)[0])


def star_imported(code: str) -> list[str]:
    """The modules of the cell's top-level ``from m import *`` statements."""
    return list(_imports(code)[1])


def _import_all(names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(Exception):  # not here, or broken here: binding will say so
            importlib.import_module(name)


def import_ahead(code: str) -> threading.Thread | None:
    """Start importing the modules ``code`` imports that this process has not imported yet;
    the thread doing it, or None when there is nothing to import."""
    names = [name for name in imported_names(code) if name not in sys.modules]
    if not names:
        return None
    thread = threading.Thread(target=_import_all, args=(names,), name="nbremote-import-ahead")
    thread.start()
    return thread


def output_after(importing: threading.Thread | None, on_frame: OnFrame) -> OnFrame:
    """``on_frame``, holding the cell's first output until ``importing`` has ended: what the
    imports print here (a module's import-time warning) then comes before the cell's output, as
    it does when the same cell runs locally, however late the import finishes on a loaded box."""
    if importing is None:
        return on_frame

    def shown(frame: Header, buffers: list[bytearray]) -> None:
        if importing.is_alive() and frame.get("op") in _OUTPUT:
            importing.join()
            sys.stderr.flush()  # a kernel's streams flush on a timer: what it wrote goes now
            sys.stdout.flush()
        on_frame(frame, buffers)

    return shown
