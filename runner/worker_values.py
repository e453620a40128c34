"""What a worker holds of the notebook's values, and what a cell changed of them.

Inputs arrive as one set of content-hashed payloads (`nbremote.wire.aliases`): references
between them (one list in two names, a view of an array) are resolved to the same objects here.
The worker keeps each object it received or sent back under its hash while that object is still
bound, so an unchanged input is not sent twice; a kept object is re-hashed before reuse, so one
changed since (by a failed cell, or through another name) is asked for again.

After a cell, every input is hashed again and (unless the cell's outputs were given exactly, by
``--out``) sent back if its hash changed, whatever changed it
(``xs.append(4)``, ``next(it)``, ``rng.random()``, a write through a view): the notebook then
holds the newer value, and never sends an older one over it. Both hashes are this side's own,
since the same value may pickle differently in the kernel's process.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Collection, Container, Mapping
from types import ModuleType
from typing import Any

from IPython import get_ipython

from nbremote.errors import SerializationError
from nbremote.wire.aliases import SetLoader, dumps_set
from nbremote.wire.codec import Header
from nbremote.wire.names import travels
from nbremote.wire.serialize import Payload, content_hash
from nbremote.wire.shm import THRESHOLD

_MISSING = object()
AskFor = Callable[[list[str]], tuple[Header, list[bytearray]]]


class InputError(Exception):
    """An input could not be bound; becomes the cell's error without running it."""

    def __init__(self, ename: str, evalue: str) -> None:
        super().__init__(evalue)
        self.error = {"ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}


class HeldValues:
    """Objects by content hash, and the hash each name last had on both sides."""

    def __init__(self) -> None:
        self.cache: dict[str, object] = {}  # content hash -> object, while bound
        self.agreed: dict[str, str] = {}  # name -> the hash both sides last held for it
        # name -> its hash at the end of the last cell, while no other request has run since:
        # a held value with that hash need not be hashed again before the next cell.
        self.fresh: dict[str, str] = {}

    def _held(self, ns: Mapping[str, Any], name: str, content_hash: str) -> object:
        """The name's own object if it was last agreed with that hash (never another object of
        the same content, which would make two names one), else any object of that hash."""
        if self.agreed.get(name) == content_hash and name in ns:
            return ns[name]
        return self.cache.get(content_hash, _MISSING)

    def receive(
        self,
        ns: Mapping[str, Any],
        inputs: list[Header],
        buffers: list[bytearray],
        ask_for: AskFor,
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The inputs' values by name, and each value's hash as this side computes it.

        A value sent by hash alone is the held object if it still hashes the same among the
        cell's other held inputs (a reference to a value sent anew makes it differ); else it is
        asked for.
        """
        values: dict[str, Any] = {}
        parts: dict[str, list[bytearray]] = {}
        held: dict[str, Any] = {}
        hashes: dict[str, str] = {}
        fresh, self.fresh = self.fresh, {}
        position = 0
        for item in inputs:
            name = item["name"]
            if item.get("shell"):  # the notebook's shell: this side's own
                values[name] = get_ipython()
            elif "module" in item:
                values[name] = _import(name, item["module"])
            elif item.get("nbuf"):
                parts[name] = buffers[position : position + item["nbuf"]]
                position += item["nbuf"]
            elif (obj := self._held(ns, name, item["hash"])) is not _MISSING:
                held[name] = obj
                if fresh.get(name) == item["hash"] and obj is ns.get(name):
                    hashes[name] = item["hash"]  # as the last cell left it: no need to hash
        payloads, _ = dumps_set(held, [name for name in held if name not in hashes])
        hashes.update((name, payload.hash) for name, payload in payloads.items())
        missing = [
            item
            for item in inputs
            if "hash" in item and not item.get("nbuf") and hashes.get(item["name"]) != item["hash"]
        ]
        if missing:
            parts.update(_asked(missing, *ask_for([item["hash"] for item in missing])))
        values.update((name, obj) for name, obj in held.items() if name not in parts)
        loaded, failed = SetLoader(parts, values.__getitem__).load_all()
        for name, reason in failed.items():
            raise SerializationError(name, reason)
        values.update(loaded)
        for item in inputs:
            if item["name"] in loaded:
                self.cache[item["hash"]] = loaded[item["name"]]
        hashes = {name: hashes[name] for name in values if name in hashes and name not in loaded}
        if loaded:  # this side's own hash of what it loaded, among all the inputs
            plain = {n: v for n, v in values.items() if not isinstance(v, ModuleType)}
            payloads, _ = dumps_set(plain, list(loaded), hashed=False)
            claimed = {item["name"]: item["hash"] for item in inputs if item["name"] in loaded}
            hashes.update(
                (name, _own_hash(payload, parts[name], claimed[name]))
                for name, payload in payloads.items()
            )
        return values, hashes

    def send_back(
        self,
        ns: Mapping[str, Any],
        names: list[str],
        before: dict[str, str],
        changed: bool,
        kept: Collection[str] = (),
        star: Collection[str] = (),
    ) -> tuple[list[Header], list[Any], list[Header]]:
        """Serialize the named values, and (if ``changed``) each input whose hash changed from
        ``before``, as one set, inputs first (so that a new name for an input's object refers
        to the input); a named value whose hash did not change goes by hash alone. Those named
        in ``kept`` (inputs the cell changed in place, not rebound) are marked ``inplace``.
        A name still bound to the attribute of that name of a module in ``star`` (the cell ran
        ``from m import *``) goes as that import, as a module goes by its name."""
        wanted = set(names)
        present = [name for name in dict.fromkeys([*before, *names]) if name in ns]
        imported = {name: _star_source(name, ns[name], star) for name in present if star}
        shell = get_ipython()
        values = {
            name: ns[name]
            for name in present
            if not isinstance(ns[name], ModuleType)
            and not imported.get(name)
            and ns[name] is not shell
        }
        payloads, failed = dumps_set(values)
        self.fresh = {name: payload.hash for name, payload in payloads.items()}
        items: list[Header] = []
        buffers: list[Any] = []
        unreturnable: list[Header] = []
        for name in present:
            if name in failed:
                if name in wanted or changed:
                    unreturnable.append({"name": name, "reason": failed[name].reason})
                continue
            if name not in values:  # a module, or a module's attribute: its import is enough
                if name in wanted and ns[name] is shell:  # get_ipython(): each side's own
                    items.append({"name": name, "shell": True})
                elif name in wanted:
                    module = imported.get(name)
                    attribute = {"attr": name} if module else {}
                    items.append({"name": name, "module": module or ns[name].__name__, **attribute})
                continue
            payload = payloads[name]
            unchanged = before.get(name) == payload.hash
            if name not in wanted and (unchanged or not changed):
                continue
            self.cache[payload.hash] = ns[name]
            self.agreed[name] = payload.hash
            nbuf = 0 if unchanged else len(payload.parts)
            item: Header = {"name": name, "hash": payload.hash, "nbuf": nbuf}
            if name in kept:
                item["inplace"] = True
            items.append(item)
            if not unchanged:
                buffers.extend(payload.parts)
        return items, buffers, unreturnable

    def prune(self, ns: Mapping[str, Any]) -> None:
        """Forget objects no longer bound in the namespace."""
        bound = {id(value) for value in ns.values()}
        self.cache = {h: obj for h, obj in self.cache.items() if id(obj) in bound}
        self.agreed = {n: h for n, h in self.agreed.items() if self.cache.get(h) is ns.get(n)}


def _own_hash(payload: Payload, received: list[bytearray], claimed: str) -> str:
    """This side's hash of a value it just loaded: the sender's, ``claimed``, when this side
    pickles it to the very bytes it received (the same stream; its big buffers the very memory
    they arrived in, untouched since), which saves hashing a big array a second time."""
    parts = payload.parts
    if len(parts) != len(received) or not all(map(_same, parts, received)):
        return content_hash(parts)
    return claimed


def _same(part: memoryview, received: bytearray) -> bool:
    view = memoryview(received)
    if part.nbytes != view.nbytes:
        return False
    if part.nbytes < THRESHOLD:
        return bytes(part) == bytes(view)
    return _address(part) is not None and _address(part) == _address(view)


def _address(view: memoryview) -> int | None:
    """Where a buffer's memory starts (None for a read-only or scattered one)."""
    import ctypes  # only when a big input arrived

    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(view))
    except (TypeError, ValueError):
        return None


def _star_source(name: str, value: object, modules: Collection[str]) -> str | None:
    """The module of ``modules`` whose attribute ``name`` is ``value``, if one is."""
    for module_name in modules:
        module = sys.modules.get(module_name)
        if module is not None and getattr(module, name, _MISSING) is value:
            return module_name
    return None


def rebound(
    ns: Mapping[str, Any], hidden: Container[str], before: Mapping[str, int]
) -> tuple[list[str], list[str]]:
    """Names a cell bound anew or rebound, and names it deleted, by any means (a star import,
    ``globals()``, ``exec``), from the ids of the namespace's values before it ran."""
    bound = [n for n, v in ns.items() if before.get(n) != id(v) and travels(n, hidden)]
    gone = [n for n in before if n not in ns and travels(n, hidden)]
    return bound, gone


def _asked(
    missing: list[Header], header: Header, blobs: list[bytearray]
) -> dict[str, list[bytearray]]:
    """The ``blobs`` answer to a ``need``, by the name of each value asked for."""
    by_hash, position = {}, 0
    for blob in header["items"]:
        by_hash[blob["hash"]] = blobs[position : position + blob["nbuf"]]
        position += blob["nbuf"]
    return {item["name"]: by_hash[item["hash"]] for item in missing}


def _import(name: str, module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InputError(
            "ModuleNotFoundError",
            f"{name!r} is the module {module!r}, which the worker cannot import ({exc}); "
            "install it in the worker's image",
        ) from exc
