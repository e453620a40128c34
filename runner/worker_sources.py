"""The worker's copy of the notebook's local modules (see `nbremote._sources`).

Files arrive with the cell that needs them, under their content hash. A file whose hash changed
is rewritten, its stale bytecode dropped, and its module (with its submodules) forgotten, so the
next ``import`` loads the new code. Standard library only: the worker imports this module.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FOLDER = ".nbremote-src"  # in the worker's working directory


class LocalSources:
    """The local modules this worker holds, by relative path and hash."""

    def __init__(self) -> None:
        self.root = Path.cwd() / FOLDER
        self.hashes: dict[str, str] = {}

    def sync(self, sources: Iterable[dict[str, Any]]) -> None:
        """Write the files that are new or changed; forget the modules they belong to."""
        changed = set()
        for item in sources:
            if self.hashes.get(item["path"]) == item["hash"]:
                continue
            if not self.hashes and str(self.root) not in sys.path:
                sys.path.insert(0, str(self.root))  # before site-packages, as '' is locally
            path = self.root / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(item["text"])
            tmp.replace(path)
            # The size and the mtime in seconds may not change with an edit: drop the bytecode.
            cached = Path(importlib.util.cache_from_source(str(path)))
            if cached.exists():
                os.unlink(cached)
            self.hashes[item["path"]] = item["hash"]
            changed.add(item["module"])
        if not changed:
            return
        importlib.invalidate_caches()
        for name in list(sys.modules):
            if name.partition(".")[0] in changed:
                del sys.modules[name]
