"""IPython syntax in a cell: ``%magic`` and ``!command`` turned into the Python IPython would run
(``get_ipython().run_line_magic(...)``), and those calls recognised again in the tree."""

from __future__ import annotations

import ast
import functools

from IPython.core.inputtransformer2 import TransformerManager

_TRANSFORMER = TransformerManager()  # IPython leaves it untyped


@functools.lru_cache(maxsize=8)
def parse_cell(source: str) -> ast.Module:
    """Parse cell source, after turning IPython syntax into the equivalent Python.

    Cached: a cell's inputs, outputs, imports and local sources are each read from its one tree
    (callers only read it). A SyntaxError is not cached, and is raised again.
    """
    return ast.parse(_TRANSFORMER.transform_cell(source), filename="<cell>")


def python_of(source: str) -> str:
    """Cell source as the plain Python IPython runs (``%magic`` and ``!command`` as calls)."""
    text: str = _TRANSFORMER.transform_cell(source)
    return text


def ipython_call(node: ast.Call) -> tuple[str, list[str]] | None:
    """``get_ipython().method("text", ...)`` as ``(method, texts)``, other calls as None."""
    match node:
        case ast.Call(
            func=ast.Attribute(value=ast.Call(func=ast.Name(id="get_ipython")), attr=method),
            args=args,
        ):
            texts = [
                a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)
            ]
            return (method, texts) if len(texts) == len(args) else None
    return None
