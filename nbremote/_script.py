"""``nbremote run FILE.py[::NAME]``: run a script's local entrypoint, or one of its functions.

The file runs as ``__main__`` (its functions travel by value, as a notebook's do). Without
``::NAME`` the app's single ``@app.local_entrypoint()`` is called; with it, that entrypoint, or
that remote function with ``.remote()``.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

from .app import App
from .functions import Function


class ScriptError(Exception):
    """The script has no such entrypoint or function; the message lists what it has."""


def load_apps(path: Path) -> list[App]:
    """Run the script (as ``__main__``) and return the apps it defines."""
    namespace = runpy.run_path(str(path), run_name="__main__")
    return [value for value in namespace.values() if isinstance(value, App)]


def run_script(path: Path, name: str | None = None) -> Any:
    """Run the script, then its entrypoint (or ``name``); what that returned."""
    apps = load_apps(path)
    entrypoints = {key: fn for app in apps for key, fn in app.local_entrypoints.items()}
    functions = {key: fn for app in apps for key, fn in app.registered_functions.items()}
    choices = ", ".join(sorted({*entrypoints, *functions})) or "none"
    if name is None:
        if len(entrypoints) != 1:
            raise ScriptError(
                f"{path} has {len(entrypoints)} local entrypoints; name one with {path}::NAME "
                f"(entrypoints and functions: {choices})"
            )
        name = next(iter(entrypoints))
    target = entrypoints.get(name) or functions.get(name)
    if target is None:
        raise ScriptError(f"{path} has no entrypoint or function {name!r} (it has: {choices})")
    app = next(
        app for app in apps if name in app.local_entrypoints or name in app.registered_functions
    )
    with app.run():
        return target.remote() if isinstance(target, Function) else target()
