"""Which namespace names travel between a notebook and its worker.

IPython's own output-history names (``_``, ``__``, ``_7``, ``_i7``, ``_ii``, ...) and the shell's
hidden names (``In``, ``Out``, ``get_ipython``, ...) belong to each side's own shell: they are
never sent, brought back, or reported as bound or deleted. Standard library only: the worker
imports this.
"""

from __future__ import annotations

import re
from collections.abc import Container

# The one exception: a cell's last expression comes back under this name, for the notebook's ``_``
# and ``Out[n]`` (the worker's ``_`` is that value).
RESULT = "_"

_HISTORY_NAME = re.compile(r"^_(_{0,2}|i{1,3}|\d+|i\d+|[ioh]h|dh)$")


def travels(name: str, hidden: Container[str]) -> bool:
    """Whether ``name`` is the user's, not the shell's."""
    return name not in hidden and not _HISTORY_NAME.match(name)
