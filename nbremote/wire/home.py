"""``NBREMOTE_HOME``: where the embedded runner lives, known to both sides.

The client finds (or starts) the embedded runner there; the runner hides it from sandboxed
workers, since it holds the runner's address and token file. Standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path


def nbremote_home() -> Path:
    """``NBREMOTE_HOME``, or ``~/.nbremote``: the embedded runner's data dir."""
    return Path(os.environ.get("NBREMOTE_HOME") or Path.home() / ".nbremote")
