"""A set of named values packed together, so that what they share survives the trip.

Pickled one by one, ``a = [1]`` and ``b = {"k": a}`` arrive as two lists, and ``v = x[:2]`` as
an array of its own: a later ``a.append(2)`` or ``v[0] = 99`` no longer shows through the other
name. Packed as a set, a reference from one value to another value of the set travels as that
value's name, and a numpy array lying in the memory of another (contiguous) array of the set as
a view of it: (name, byte offset, shape, strides, dtype). The unpacking side resolves those once
the named values are loaded, so the same objects are shared there.

A value's content hash covers its own pickle, its references included (by name, not by
content), so an unchanged value is still recognised by hash. Atoms, tuples, functions, classes
and modules are never referred to by name: their identity does not matter, and naming them would
make hashes depend on which other names happen to travel.

Standard library only (numpy is used when the values hold arrays): the worker imports this.
"""

from __future__ import annotations

import io
import pickle
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import SerializationError
from .serialize import PROTOCOL, Payload, Pickled, content_hash, dumps

_REF, _VIEW = "ref", "view"
_ATOMS = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    tuple,
    frozenset,
    range,
    slice,
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
)


def _referable(obj: object) -> bool:
    return not isinstance(obj, _ATOMS) and obj is not Ellipsis


class _Arrays:
    """The contiguous arrays of a set that views may point into, with their memory extents."""

    def __init__(self, values: Mapping[str, object]) -> None:
        np = sys.modules.get("numpy")
        self.np: Any = np
        found: list[tuple[str, Any, int, int]] = []
        if np is not None:
            for name, value in values.items():
                if type(value) is np.ndarray and _viewable(np, value) and _contiguous(value):
                    found.append((name, value, *_extent(value)))
        # A target is not inside another target (equal extents: the first name is the target).
        self.targets = [
            (name, value, lo, hi)
            for index, (name, value, lo, hi) in enumerate(found)
            if not any(
                olo <= lo and hi <= ohi and (olo < lo or hi < ohi or other < index)
                for other, (_, _, olo, ohi) in enumerate(found)
                if other != index
            )
        ]

    def view(self, obj: Any, name: str) -> tuple[Any, ...] | None:
        """``obj`` as a view of another value's array (a persistent id), if it is one."""
        if type(obj) is not self.np.ndarray or not _viewable(self.np, obj):
            return None
        lo, hi = _extent(obj)
        for target, array, tlo, thi in self.targets:
            if target != name and tlo <= lo and hi <= thi:
                offset = obj.ctypes.data - array.ctypes.data
                return (_VIEW, target, offset, obj.shape, obj.strides, obj.dtype)
        return None


def _viewable(np: Any, array: Any) -> bool:
    return array.size > 0 and not array.dtype.hasobject


def _contiguous(array: Any) -> bool:
    return bool(array.flags.c_contiguous or array.flags.f_contiguous)


def _extent(array: Any) -> tuple[int, int]:
    """The first and one-past-last byte an array's elements occupy."""
    start = array.ctypes.data
    low = sum((n - 1) * s for n, s in zip(array.shape, array.strides, strict=True) if s < 0)
    high = sum((n - 1) * s for n, s in zip(array.shape, array.strides, strict=True) if s > 0)
    return start + low, start + high + array.itemsize


class _Refs:
    """Persistent ids for the members of a set: what an object is to be pickled as, when it is
    (or lies in) another member."""

    def __init__(self, values: Mapping[str, object], excluded: Iterable[str] = ()) -> None:
        left_out = set(excluded)
        self.owner: dict[int, str] = {}
        for name, value in values.items():  # an object of several names belongs to the first
            if name not in left_out and _referable(value):
                self.owner.setdefault(id(value), name)
        self.table = {key: (_REF, name) for key, name in self.owner.items()}
        self.arrays = _Arrays({n: v for n, v in values.items() if n not in left_out})

    def persistent_id(self, name: str, seen: set[str]) -> Callable[[object], Any]:
        """The ``persistent_id`` for pickling the member ``name`` (its own object excluded by
        the caller); the names it refers to are added to ``seen``."""
        get, arrays = self.table.get, self.arrays

        def hit(ref: tuple[Any, ...]) -> tuple[Any, ...]:
            seen.add(ref[1])
            return ref

        if not arrays.targets:  # the common case, called for every object pickled: keep it lean
            return lambda obj: None if (ref := get(id(obj))) is None else hit(ref)

        def with_views(obj: object) -> Any:
            ref = get(id(obj))
            if ref is None:
                ref = arrays.view(obj, name)
            return None if ref is None else hit(ref)

        return with_views


def _pickle_with(label: str, obj: object, pid: Callable[[object], Any]) -> Pickled:
    if label == "pickle":
        base: Any = pickle.Pickler
    elif label == "cloudpickle":
        import cloudpickle

        base = cloudpickle.Pickler
    else:
        import dill

        base = dill.Pickler
    buffers: list[pickle.PickleBuffer] = []
    stream = io.BytesIO()
    pickler = base(stream, protocol=PROTOCOL, buffer_callback=buffers.append)
    # An attribute, not a method of a subclass: that saves a Python call per object pickled.
    pickler.persistent_id = pid
    pickler.dump(obj)
    data = stream.getvalue()
    # Plain pickle refers to __main__'s classes and functions by a name the other side cannot
    # resolve: those need cloudpickle, which pickles them by value.
    if label == "pickle" and b"__main__" in data:
        raise pickle.PicklingError("refers to objects defined in __main__")
    return data, buffers


def _dump(name: str, obj: object, refs: _Refs, seen: set[str], hashed: bool = True) -> Payload:
    """One member of the set: pickle, then cloudpickle, then dill (as `serialize.dumps`)."""
    own = refs.table.pop(id(obj)) if refs.owner.get(id(obj)) == name else None
    failures: dict[str, list[str]] = {}
    try:
        for label in ("pickle", "cloudpickle", "dill"):
            seen.clear()
            try:
                stream, buffers = _pickle_with(label, obj, refs.persistent_id(name, seen))
            except Exception as exc:  # every pickler fails in its own way
                failures.setdefault(f"{type(exc).__name__}: {exc}", []).append(label)
                continue
            parts = [memoryview(stream), *(buf.raw() for buf in buffers)]
            return Payload(parts, content_hash(parts) if hashed else "")
    finally:
        if own is not None:
            refs.table[id(obj)] = own
    reasons = "; ".join(f"{reason} ({', '.join(by)})" for reason, by in failures.items())
    raise SerializationError(name, f"a {type(obj).__name__} object: {reasons}")


def dumps_set(
    values: Mapping[str, object], names: Iterable[str] | None = None, hashed: bool = True
) -> tuple[dict[str, Payload], dict[str, SerializationError]]:
    """Serialize the named values (all by default) as members of ``values``: references to
    another member travel by its name. Returns payloads, and errors for those that failed;
    without ``hashed``, the payloads' hashes are "" (the caller hashes what it must).

    An object bound to several names belongs to the first in ``values``' order, and a memory
    area shared by arrays of equal extent to the first of them: put the values the other side
    already holds first, so that the new ones refer to them, not the other way round.
    """
    wanted = list(values if names is None else names)
    payloads: dict[str, Payload] = {}
    failed: dict[str, SerializationError] = {}
    excluded: set[str] = set()
    edges: dict[str, set[str]] = {}
    todo = wanted
    while todo:
        if sum(1 for n, v in values.items() if n not in excluded and _referable(v)) < 2:
            # Nothing to share: the plain picklers (no call per object) give the same bytes.
            for name in todo:
                try:
                    payloads[name] = dumps(name, values[name], hashed=hashed)
                except SerializationError as exc:
                    failed[name] = exc
            break
        refs = _Refs(values, excluded)
        for name in todo:
            seen: set[str] = set()
            try:
                payloads[name] = _dump(name, values[name], refs, seen, hashed)
            except SerializationError as exc:
                failed[name] = exc
                payloads.pop(name, None)
            edges[name] = set(seen)
        # A member that failed cannot be referred to; members on a circle of references could
        # not be loaded one after the other: pack those again with them as plain content.
        stale = excluded | set(failed) | _on_circles(edges)
        todo = [n for n in wanted if n not in failed and edges[n] & (stale - excluded)]
        excluded = stale
    return payloads, failed


def _on_circles(edges: Mapping[str, set[str]]) -> set[str]:
    """Names that reach themselves through references (iteratively, sets may be large)."""
    on_circle: set[str] = set()
    for start in edges:
        stack, reached = list(edges[start]), set()
        while stack:
            name = stack.pop()
            if name == start:
                on_circle.add(start)
                break
            if name not in reached:
                reached.add(name)
                stack.extend(edges.get(name, ()))
    return on_circle


class SetLoader:
    """Loads the payloads of a set, resolving references between them in any order.

    Args:
        parts: each sent value's pickle stream and buffers, by name.
        known: the value of a name the set refers to but did not send (raises KeyError if none).
        adopt: the object to bind for a loaded value (an existing one updated in place, say);
            called only for values that are not themselves another value or a view of one.
    """

    def __init__(
        self,
        parts: Mapping[str, list[Any]],
        known: Callable[[str], object],
        adopt: Callable[[str, object], object] = lambda name, value: value,
    ) -> None:
        self.parts = parts
        self.known = known
        self.adopt = adopt
        self.loaded: dict[str, object] = {}
        self.failed: dict[str, str] = {}
        self._loading: list[str] = []
        self._members: list[object] = []  # what references resolved to: never adopted

    def _persistent_load(self, pid: tuple[Any, ...]) -> object:
        kind, name = pid[0], pid[1]
        if kind == _REF:
            value = self.load(name)
        elif kind == _VIEW:
            value = _view_of(self.load(name), *pid[2:])
        else:
            raise pickle.UnpicklingError(f"unknown reference {kind!r}")
        self._members.append(value)
        return value

    def _unpickle(self, name: str) -> object:
        parts = self.parts[name]
        unpickler = pickle.Unpickler(io.BytesIO(parts[0]), buffers=parts[1:])
        unpickler.persistent_load = self._persistent_load  # type: ignore[method-assign]
        try:
            return unpickler.load()
        except SerializationError:
            raise
        except Exception as exc:
            hint = (
                f"{type(exc).__name__}: {exc} (is the same package, at the same version, "
                "installed on both sides?)"
            )
            raise SerializationError(name, hint) from exc

    def load(self, name: str) -> object:
        """The value called ``name``: loaded (once), or known."""
        if name in self.loaded:
            return self.loaded[name]
        if name in self.failed:
            raise SerializationError(name, self.failed[name])
        if name not in self.parts:
            try:
                return self.known(name)
            except KeyError:
                raise SerializationError(name, "is referred to but was not sent") from None
        if name in self._loading:
            raise SerializationError(name, "refers to itself through other values")
        self._loading.append(name)
        try:
            value = self._unpickle(name)
        except SerializationError as exc:
            self.failed[name] = exc.reason
            raise
        finally:
            self._loading.pop()
        if not any(value is other for other in self._members):
            value = self.adopt(name, value)
        self.loaded[name] = value
        return value

    def load_all(self) -> tuple[dict[str, object], dict[str, str]]:
        """Every sent value by name, and why each that could not be loaded failed."""
        for name in self.parts:
            try:
                self.load(name)
            except SerializationError as exc:
                self.failed.setdefault(name, exc.reason)
        return dict(self.loaded), dict(self.failed)


def _view_of(
    base: Any, offset: int, shape: tuple[int, ...], strides: tuple[int, ...], dtype: Any
) -> Any:
    """An array in the memory of ``base`` (contiguous, as it was packed)."""
    import numpy as np

    buffer = base if base.flags.c_contiguous else base.T  # .T of an F-ordered array is C-ordered
    return np.ndarray(shape, dtype, buffer=buffer, offset=offset, strides=strides)
