"""Values between a namespace and frames: inputs packed by hash, outputs unpacked for binding.

A module travels as its import path (re-imported on the other side, never pickled); every other
value as a content-hashed `Payload`, whose bytes are left out when the other side already holds
that hash. The values of one frame are packed as a set (`nbremote.wire.aliases`), so that what
they share (one list in two names, a view of an array) is shared on the other side too.

A value that comes back to a name whose object can take it in place (a list, dict, set,
bytearray, an array of the same shape and dtype, a plain object of the same class) is written
into that object, as the cell would have done locally: other names of the notebook referring to
the same object see the change. Anything else is rebound.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Container, Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

from ._output import notebook_shell
from .wire.aliases import SetLoader, dumps_set
from .wire.codec import Header
from .wire.ops import Op
from .wire.pulled import withhold
from .wire.serialize import Payload


def pulls(header: Header, shm_dir: str | None) -> bool:
    """Whether a request's big buffers go by digest (`nbremote.wire.pulled`): a single call's
    (not a batched function's, whose inputs the runner joins with others'), on a channel
    without shared memory."""
    return header["op"] == Op.CALL and not shm_dir and "batch" not in header


class Packed:
    """Inputs ready to send: the frame's item list, its buffers, and every payload by hash."""

    def __init__(self) -> None:
        self.items: list[Header] = []
        self.buffers: list[memoryview] = []
        self.payloads: dict[str, Payload] = {}
        self.pulled: dict[str, Any] = {}  # big call buffers sent by digest (`wire.pulled`)

    def add(self, name: str, payload: Payload, known: Container[str]) -> None:
        """Add one value's payload; its bytes only if ``known`` lacks its hash."""
        self.payloads[payload.hash] = payload
        sent = payload.hash not in known
        self.items.append(
            {"name": name, "hash": payload.hash, "nbuf": len(payload.parts) if sent else 0}
        )
        if sent:
            self.buffers.extend(payload.parts)

    def blobs(self, hashes: Iterable[str]) -> tuple[Header, list[memoryview]]:
        """The ``blobs`` answer to a ``need`` for these hashes."""
        items, buffers = [], []
        for content_hash in hashes:  # another request's hash is left out: the worker says so
            if content_hash in self.pulled:  # one buffer, by digest
                items.append({"hash": content_hash, "name": "", "nbuf": 1})
                buffers.append(self.pulled[content_hash])
            elif content_hash in self.payloads:
                payload = self.payloads[content_hash]
                items.append({"hash": content_hash, "name": "", "nbuf": len(payload.parts)})
                buffers.extend(payload.parts)
        return {"op": Op.BLOBS, "items": items}, buffers

    def withhold(self, header: Header, buffers: Sequence[Any]) -> tuple[Header, list[Any]]:
        """A call's frame with its big buffers sent by digest, for the worker to pull those it
        does not keep (`nbremote.wire.pulled`): for a channel without shared memory."""
        entries, sent, self.pulled = withhold(buffers)
        return ({**header, "pulled": entries} if entries else header), sent


def pack(names: Iterable[str], namespace: Mapping[str, Any], known: Container[str]) -> Packed:
    """Serialize the named values, as one set.

    Raises:
        SerializationError: naming the first value that no pickler could serialize.
    """
    names = list(names)
    packed = Packed()
    shell = notebook_shell()  # get_ipython() travels as such: each side has its own
    values = {
        n: namespace[n]
        for n in names
        if not isinstance(namespace[n], ModuleType) and namespace[n] is not shell
    }
    payloads, failed = dumps_set(values)
    for name in names:
        if name in failed:
            raise failed[name]
        if name in payloads:
            packed.add(name, payloads[name], known)
        elif namespace[name] is shell:
            packed.items.append({"name": name, "shell": True})
        else:
            packed.items.append({"name": name, "module": namespace[name].__name__})
    return packed


def unpack(
    items: list[Header], buffers: list[bytearray], namespace: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Rebuild returned values; and, for those that cannot live here, why (name -> reason).

    A value refers to others of its set by name: those sent are loaded first, the others (sent
    back unchanged, or not at all) are the namespace's.
    """
    values: dict[str, Any] = {}
    parts: dict[str, list[bytearray]] = {}
    position = 0
    for item in items:
        name = item["name"]
        if item.get("shell"):
            values[name] = notebook_shell()
            continue
        if "module" in item:
            # A package of the worker's image only stays bound there, quietly.
            with contextlib.suppress(ImportError, AttributeError):
                module = importlib.import_module(item["module"])
                values[name] = getattr(module, item["attr"]) if "attr" in item else module
            continue
        count = item["nbuf"]
        if count == 0:  # unchanged: what was sent is still right
            values[name] = namespace[name]
            continue
        parts[name] = buffers[position : position + count]
        position += count
    inplace = {item["name"] for item in items if item.get("inplace")}
    loader = SetLoader(
        parts,
        lambda name: values[name] if name in values else namespace[name],
        # Only a value the cell changed in place: one it rebound is a new object here too.
        lambda name, new: in_place(namespace.get(name, _ABSENT), new) if name in inplace else new,
    )
    loaded, failed = loader.load_all()
    return values | loaded, failed


_ABSENT = object()


def in_place(old: Any, new: Any) -> Any:
    """``old`` holding ``new``'s content, where its type allows that; else ``new``."""
    kind = type(old)
    if kind is not type(new):
        return new
    if kind is list or kind is bytearray:
        old[:] = new
    elif kind is dict or kind is set:
        old.clear()
        old.update(new)
    elif _same_array(old, new):
        old[...] = new
    elif _plain_object(kind):
        vars(old).clear()
        vars(old).update(vars(new))
    else:
        return new
    return old


def _same_array(old: Any, new: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return (
        numpy is not None
        and type(old) is numpy.ndarray
        and old.shape == new.shape
        and old.dtype == new.dtype
        and bool(old.flags.writeable)
    )


def _plain_object(kind: type) -> bool:
    """Whether instances of ``kind`` are just their ``__dict__`` (no slots, no own pickling)."""
    cls: Any = kind
    base: Any = object
    return (
        type(cls) is type
        and cls.__module__ != "builtins"  # a function or a class is more than its __dict__
        and "__dict__" in dir(cls)
        and not hasattr(cls, "__slots__")
        and cls.__reduce_ex__ is base.__reduce_ex__
        and cls.__reduce__ is base.__reduce__
        and getattr(cls, "__getstate__", base.__getstate__) is base.__getstate__
        and not hasattr(cls, "__setstate__")
    )
