"""Values between a namespace and frames: inputs packed by hash, outputs unpacked for binding.

A module travels as its import path (re-imported on the other side, never pickled); every other
value as a content-hashed `Payload`, whose bytes are left out when the other side already holds
that hash.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from ._lazy_import import import_lazily
from .errors import SerializationError
from .wire.codec import Header
from .wire.ops import Op
from .wire.serialize import Payload, dumps, loads


class Packed:
    """Inputs ready to send: the frame's item list, its buffers, and every payload by hash."""

    def __init__(self) -> None:
        self.items: list[Header] = []
        self.buffers: list[memoryview] = []
        self.payloads: dict[str, Payload] = {}

    def add(self, name: str, value: object, known: set[str]) -> None:
        """Add one value; its bytes only if ``known`` lacks its hash."""
        if isinstance(value, ModuleType):
            self.items.append({"name": name, "module": value.__name__})
            return
        payload = dumps(name, value)
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
        for content_hash in hashes:
            payload = self.payloads[content_hash]
            items.append({"hash": content_hash, "name": "", "nbuf": len(payload.parts)})
            buffers.extend(payload.parts)
        return {"op": Op.BLOBS, "items": items}, buffers


def pack(names: Iterable[str], namespace: Mapping[str, Any], known: set[str]) -> Packed:
    """Serialize each named value on its own.

    Raises:
        SerializationError: naming the first value that no pickler could serialize.
    """
    packed = Packed()
    for name in names:
        packed.add(name, namespace[name], known)
    return packed


def unpack(
    items: list[Header], buffers: list[bytearray], namespace: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Rebuild returned values; and, for those that cannot live here, why (name -> reason)."""
    values: dict[str, Any] = {}
    failed: dict[str, str] = {}
    position = 0
    for item in items:
        name = item["name"]
        if "module" in item:
            # A package of the worker's image only stays bound there, quietly.
            with contextlib.suppress(ImportError):
                values[name] = import_lazily(item["module"])  # here on first use
            continue
        count = item["nbuf"]
        if count == 0:  # unchanged: what was sent is still right
            values[name] = namespace[name]
            continue
        parts = buffers[position : position + count]
        position += count
        try:
            values[name] = loads(name, parts)
        except SerializationError as exc:
            failed[name] = exc.reason
    return values, failed
