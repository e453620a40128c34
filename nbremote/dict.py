"""``nr.Dict``: a dictionary held by the runner, shared by notebooks and workers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._stores import RunnerStore
from .wire.ops import Op
from .wire.serialize import dumps, loads

_MISSING = object()
_EMPTY: Mapping[Any, Any] = {}


def _key_parts(key: Any) -> list[memoryview]:
    return dumps(f"the key {key!r}", key).parts


class Dict(RunnerStore):
    """A dictionary held by the runner: ``d[k] = v`` from a notebook, ``d[k]`` in a worker.

    Keys and values are pickled (so anything picklable goes); it survives a runner restart.

    Example:
        >>> d = Dict.from_name("results", create_if_missing=True)  # doctest: +SKIP
        >>> d["best"] = 0.93                                       # doctest: +SKIP
    """

    kind = Op.DICT

    def put(self, key: Any, value: Any) -> None:
        """Set ``key`` to ``value``.

        Raises:
            SerializationError: the value cannot be pickled (naming its key).
        """
        key_parts = _key_parts(key)
        value_parts = dumps(f"the value for key {key!r}", value).parts
        self._call("put", [*key_parts, *value_parts], nkey=len(key_parts))

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    def _fetch(self, action: str, key: Any) -> Any:
        done, out = self._call(action, _key_parts(key))
        return loads(f"the value for key {key!r}", out) if done["found"] else _MISSING

    def get(self, key: Any, default: Any = None) -> Any:
        """The value for ``key``, or ``default``."""
        value = self._fetch("get", key)
        return default if value is _MISSING else value

    def __getitem__(self, key: Any) -> Any:
        value = self._fetch("get", key)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return its value (or ``default``; KeyError without one)."""
        value = self._fetch("pop", key)
        if value is _MISSING:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return value

    def __delitem__(self, key: Any) -> None:
        self.pop(key)

    def contains(self, key: Any) -> bool:
        """Whether ``key`` is in it (``key in d``)."""
        done, _ = self._call("contains", _key_parts(key))
        return bool(done["found"])

    __contains__ = contains

    def len(self) -> int:
        """How many keys it holds (``len(d)``)."""
        done, _ = self._call("len")
        return int(done["len"])

    __len__ = len

    def keys(self) -> Iterator[Any]:
        """An iterator over its keys, as they are now (one request: later changes are not seen).

        As in Modal, a plain iterator, not a view; ``for key in d`` does the same.
        """
        _, out = self._call("keys")
        return (loads("a key", [part]) for part in out)

    __iter__ = keys

    def items(self) -> Iterator[tuple[Any, Any]]:
        """An iterator over its ``(key, value)`` pairs, as they are now (one request, values
        unpickled one by one as the iterator reaches them)."""
        done, out = self._call("items")
        return _pairs(done["sizes"], out)

    def values(self) -> Iterator[Any]:
        """An iterator over its values, as they are now (see `items`)."""
        return (value for _, value in self.items())

    def update(self, other: Mapping[Any, Any] = _EMPTY, /, **kwargs: Any) -> None:
        """Set every key of ``other`` and of ``kwargs``, as `dict.update` does."""
        for key, value in {**other, **kwargs}.items():
            self.put(key, value)

    def clear(self) -> None:
        """Remove every key."""
        self._call("clear")


def _pairs(sizes: list[int], parts: list[Any]) -> Iterator[tuple[Any, Any]]:
    """``(key, value)`` from an ``items`` answer: each key's one buffer, then its value's parts."""
    position = 0
    for size in sizes:
        key = loads("a key", [parts[position]])
        value = loads(f"the value for key {key!r}", parts[position + 1 : position + 1 + size])
        position += 1 + size
        yield key, value
