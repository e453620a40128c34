"""Serialization of single values: pickle 5 first, cloudpickle when needed, dill as a last resort.

Each value is serialized on its own so that an error names it. Large buffers (numpy arrays,
pandas blocks, bytes-like objects supporting pickle 5) travel out of band: they are never copied
into the pickle stream. Every payload carries a content hash over the pickle and its buffers, so
that an unchanged value need not be sent again.

Standard library, xxhash and (lazily) cloudpickle/dill only: the worker imports this module.
Which functions are pickled by value, and when one need not be pickled again, is the client's
business (`nbremote._by_value`).
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import xxhash

from ..errors import SerializationError

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


def dumps(name: str, obj: object, start: int = 0, hashed: bool = True) -> Payload:
    """Serialize one value, trying pickle, cloudpickle, then dill.

    Args:
        name: what the value is called, for the error message.
        obj: the value.
        start: skip the first picklers of the chain (1: start with cloudpickle).
        hashed: compute the content hash (else it is ""): a value never sent by hash (a call's
            arguments) need not pay for hashing its buffers.

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
        return Payload(parts, content_hash(parts) if hashed else "")
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
