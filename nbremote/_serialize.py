"""Serialization of single values: pickle 5 first, cloudpickle when needed, dill as a last resort.

Each value is serialized on its own so that an error names it. Large buffers (numpy arrays,
pandas blocks, bytes-like objects supporting pickle 5) travel out of band: they are never copied
into the pickle stream. Every payload carries a content hash over the pickle and its buffers, so
that an unchanged value need not be sent again.

Standard library, xxhash and (lazily) cloudpickle/dill only: the worker imports this module.
"""

from __future__ import annotations

import functools
import pickle
import sys
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import xxhash

from .errors import SerializationError

PROTOCOL = 5


@dataclass(frozen=True)
class Payload:
    """One serialized value: the pickle stream, its out-of-band buffers, their content hash."""

    parts: list[memoryview]
    hash: str

    @property
    def nbytes(self) -> int:
        """Total size of the pickle stream and its buffers."""
        return sum(part.nbytes for part in self.parts)


def content_hash(parts: Sequence[bytes | bytearray | memoryview]) -> str:
    """A 128-bit hash over a pickle stream and its buffers (xxh3: several GB/s)."""
    digest = xxhash.xxh3_128()
    for part in parts:
        view = memoryview(part)
        digest.update(view if view.contiguous else view.tobytes())
        digest.update(view.nbytes.to_bytes(8, "little"))
    return digest.hexdigest()


Pickled = tuple[bytes, list[pickle.PickleBuffer]]


def _with(dumps: Any, obj: object) -> Pickled:
    buffers: list[pickle.PickleBuffer] = []
    stream: bytes = dumps(obj, protocol=PROTOCOL, buffer_callback=buffers.append)
    return stream, buffers


def _plain(obj: object) -> Pickled:
    stream, buffers = _with(pickle.dumps, obj)
    # Classes and functions of the sender's __main__ are pickled by reference, which the other
    # side cannot resolve: those need cloudpickle, which pickles them by value.
    if b"__main__" in stream:
        raise pickle.PicklingError("refers to objects defined in __main__")
    return stream, buffers


def _cloudpickle(obj: object) -> Pickled:
    import cloudpickle

    return _with(cloudpickle.dumps, obj)


def _dill(obj: object) -> Pickled:
    import dill

    return _with(dill.dumps, obj)


_PICKLERS = (("pickle", _plain), ("cloudpickle", _cloudpickle), ("dill", _dill))


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


def dumps(name: str, obj: object, start: int = 0) -> Payload:
    """Serialize one value, trying pickle, cloudpickle, then dill.

    Args:
        name: what the value is called, for the error message.
        obj: the value.
        start: skip the first picklers of the chain (1: start with cloudpickle).

    Raises:
        SerializationError: no pickler could serialize it; the message says why for each.

    Example:
        >>> payload = dumps("x", [1, 2, 3])
        >>> loads("x", payload.parts)
        [1, 2, 3]
    """
    failures: dict[str, list[str]] = {}  # reason -> the picklers that gave it
    for label, pickler in _PICKLERS[start:]:
        try:
            stream, buffers = pickler(obj)
        except Exception as exc:  # every pickler fails in its own way
            failures.setdefault(f"{type(exc).__name__}: {exc}", []).append(label)
            continue
        parts = [memoryview(stream), *(buf.raw() for buf in buffers)]
        return Payload(parts, content_hash(parts))
    reasons = "; ".join(f"{reason} ({', '.join(by)})" for reason, by in failures.items())
    raise SerializationError(name, f"a {type(obj).__name__} object: {reasons}")


def loads(name: str, parts: Sequence[bytes | bytearray | memoryview]) -> Any:
    """Rebuild a value from its pickle stream and out-of-band buffers (zero-copy for arrays).

    Raises:
        SerializationError: the stream cannot be unpickled here (a module missing on this side,
            a class that changed), naming the value.
    """
    try:
        return pickle.loads(parts[0], buffers=parts[1:])
    except Exception as exc:
        hint = (
            f"{type(exc).__name__}: {exc} (is the same package, at the same version, installed "
            "on both sides?)"
        )
        raise SerializationError(name, hint) from exc
