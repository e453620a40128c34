"""Source lines shipped with a function pickled by value, so that its remote traceback shows them.

cloudpickle (from 3.1.3 on) names the file of every code object it pickles by value
``<dynamic-code>``, and the worker has no copy of a notebook's cells anyway: a traceback there
would name no file and show no line. `with_lines` wraps such a function (or class) with the lines
of its code; unpickling it on the worker (`restore`) puts back each code object's file name and
registers the lines in the worker's `linecache`, which `traceback` reads. Only the lines that
belong to the shipped code travel, not whole files.

Standard library only: the worker imports this module.
"""

from __future__ import annotations

import linecache
import types
from collections.abc import Iterator
from typing import Any

CodeKey = tuple[str, int]  # (qualified name, first line): a code object, across a pickle
Lines = dict[str, dict[int, str]]  # file name -> line number -> line


def _functions(obj: Any) -> Iterator[types.FunctionType]:
    """The functions pickled along with ``obj``: itself or a class's methods, and the functions
    and classes of its own module that its code names, transitively."""
    module = getattr(obj, "__module__", None)
    pending, seen = [obj], set()
    while pending:
        value = pending.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, staticmethod | classmethod):
            pending.append(value.__func__)
        elif isinstance(value, property):
            pending += [f for f in (value.fget, value.fset, value.fdel) if f is not None]
        elif isinstance(value, type) and value.__module__ == module:
            pending += vars(value).values()
        elif isinstance(value, types.FunctionType) and value.__module__ == module:
            yield value
            named = value.__globals__
            pending += [named[name] for name in value.__code__.co_names if name in named]
            pending += [getattr(value, "__wrapped__", None)]


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):  # nested functions, lambdas, comprehensions
            yield from _codes(const)


def collect(obj: Any) -> tuple[dict[CodeKey, str], Lines]:
    """Each code object's file name, and the source lines of those code objects."""
    names: dict[CodeKey, str] = {}
    lines: Lines = {}
    for function in _functions(obj):
        for code in _codes(function.__code__):
            source = linecache.getlines(code.co_filename)
            numbers = [line for _, _, line in code.co_lines() if line is not None]
            if not source or not numbers:
                continue
            names[code.co_qualname, code.co_firstlineno] = code.co_filename
            kept = lines.setdefault(code.co_filename, {})
            for number in range(code.co_firstlineno, min(max(numbers), len(source)) + 1):
                kept[number] = source[number - 1]
    return names, lines


class WithLines:
    """``obj``, pickled so that it unpickles as itself with its source lines registered."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.names, self.lines = collect(obj)

    def __reduce__(self) -> tuple[Any, ...]:
        return restore, (self.obj, self.names, self.lines)


def _renamed(code: types.CodeType, names: dict[CodeKey, str]) -> types.CodeType:
    consts = tuple(
        _renamed(const, names) if isinstance(const, types.CodeType) else const
        for const in code.co_consts
    )
    filename = names.get((code.co_qualname, code.co_firstlineno), code.co_filename)
    return code.replace(co_filename=filename, co_consts=consts)


def restore(obj: Any, names: dict[CodeKey, str], lines: Lines) -> Any:
    """``obj`` with its code's file names put back and their lines in `linecache`."""
    for filename, numbered in lines.items():
        merged = list(linecache.getlines(filename))
        merged += ["\n"] * (max(numbered) - len(merged))
        for number, line in numbered.items():
            merged[number - 1] = line
        # No mtime: linecache.checkcache leaves the entry alone (there is no file to compare).
        linecache.cache[filename] = (sum(map(len, merged)), None, merged, filename)
    for function in _functions(obj):
        function.__code__ = _renamed(function.__code__, names)
    return obj
