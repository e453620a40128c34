"""Pickling functions: by reference where the worker can import them, else by value.

A function of an installed module travels as its name; one of a script, a notebook or a local
module travels by value (cloudpickle), with the local modules it uses and its source lines (so a
remote traceback shows them). A function whose captures are all immutable need not be pickled
again for its next call (`frozen_captures`). The values themselves are encoded by
`nbremote.wire.serialize`, which both sides share.
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Iterator
from typing import Any

from .wire.serialize import Payload, dumps


def installed(module_name: str) -> bool:
    """Whether a module is importable anywhere nbremote is (standard library, site-packages).

    Anything else (a script, a notebook's folder, a test suite) is pickled by value.
    """
    top = module_name.partition(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top == "nbremote":
        return True
    module = sys.modules.get(module_name)
    origin = getattr(module, "__file__", None)
    return origin is not None and any(origin.startswith(path) for path in _site_dirs())


@functools.cache
def _site_dirs() -> tuple[str, ...]:
    import site

    return (*site.getsitepackages(), site.getusersitepackages())


_IMMUTABLE = (
    int,
    float,
    complex,
    str,
    bytes,
    bool,
    type(None),
    types.ModuleType,
    types.BuiltinFunctionType,
)
_ABSENT = object()


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):  # nested functions, lambdas, comprehensions
            yield from _names(const)


def _unchanging(value: object) -> bool:
    if value is _ABSENT or isinstance(value, _IMMUTABLE):
        return True
    if isinstance(value, tuple | frozenset):
        return all(_unchanging(item) for item in value)
    # Functions and classes of installed modules are pickled by reference: their pickle is
    # their name, whatever happens to them.
    module = getattr(value, "__module__", None)
    return isinstance(value, types.FunctionType | type) and module is not None and installed(module)


def frozen_captures(fn: Any) -> tuple[object, ...] | None:
    """Everything a function's pickle captures besides its code (globals it names, closure
    cells, defaults), if all of it is immutable; else None (then it must be pickled anew)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    namespace = fn.__globals__
    try:
        captured = [
            code,
            *(namespace.get(name, _ABSENT) for name in _names(code)),
            *(cell.cell_contents for cell in fn.__closure__ or ()),
            *(fn.__defaults__ or ()),
            *(fn.__kwdefaults__ or {}).values(),
        ]
    except ValueError:  # an empty closure cell
        return None
    return tuple(captured) if all(_unchanging(value) for value in captured[1:]) else None


def same_objects(old: tuple[object, ...], new: tuple[object, ...]) -> bool:
    """Whether two captures hold the very same objects."""
    return len(old) == len(new) and all(a is b for a, b in zip(old, new, strict=True))


def dumps_function(name: str, fn: Any) -> Payload:
    """Serialize a function: by reference from an installed module, else by value with its module's
    globals (cloudpickle), so a function defined in a script or a notebook's folder travels too."""
    module_name = getattr(fn, "__module__", None) or "__main__"
    # Local modules it uses (a utils.py beside the notebook) are not on the worker: by value too.
    local = list(_local_modules_used(fn))
    if local:
        import cloudpickle

        for used in local:
            cloudpickle.register_pickle_by_value(used)
    if installed(module_name) or module_name not in sys.modules:
        return dumps(name, fn)
    import cloudpickle

    from ._code_lines import WithLines

    cloudpickle.register_pickle_by_value(sys.modules[module_name])
    # By value, its code has no file on the worker: its source lines go with it.
    return dumps(name, WithLines(fn), start=1)


def _local_module(value: object) -> types.ModuleType | None:
    """The module ``value`` is or comes from, if it is a local file (not installed)."""
    owner = value.__name__ if isinstance(value, types.ModuleType) else None
    owner = owner or getattr(value, "__module__", None)
    if not isinstance(owner, str) or owner == "__main__" or installed(owner):
        return None
    module = sys.modules.get(owner)
    return module if module is not None and getattr(module, "__file__", None) else None


def _local_modules_used(fn: Any) -> Iterator[types.ModuleType]:
    """Local modules the function's globals come from, and those these modules use in turn."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return
    pending = [fn.__globals__.get(name) for name in set(_names(code))]
    seen: set[str] = set()
    while pending:
        module = _local_module(pending.pop())
        if module is None or module.__name__ in seen:
            continue
        seen.add(module.__name__)
        yield module
        pending.extend(vars(module).values())
