"""The ``nbremote`` command line: one module per noun, one click group per noun, every listing
through one table-or-JSON helper (`nbremote.cli._utils.display_table`).

Layout: `_main` (the ``nbremote`` group) adds `runner`, `status`, `gpu`, `app`, `image`, `job`,
`volume`, `secret` and `run` (run, deploy, demo), and Modal's singular spellings (``app list``,
``volume ls VOL``, ``secret create``) as aliases; `_options` holds what they share on the click
side (``--url/--token``, ``--json``, size and duration types, `AliasGroup`), `_params` a
function's parameters as options (``nbremote run FILE::f --x 3``), `_utils` the plain helpers.

`main` is imported on first use: the kernel imports `nbremote.cli._utils` (``%remote status``
formats bytes with it) and must not load click and every command with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._main import main

__all__ = ["main"]


def __getattr__(name: str) -> Any:
    if name == "main":
        from ._main import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
